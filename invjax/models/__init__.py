"""Models: the fully invertible RevNet and its presets."""

from invjax.models.cnn import CNN
from invjax.models.fi_revnet import FiRevNet, merge_latent, split_latent


def fi_revnet_mnist(**overrides) -> FiRevNet:
  """The authors' MNIST model (SPEC 3): 32x32x3 input, 3 levels x 16 additive
  steps, width 128, reverse permutations, logits at (2, 2) of the 4x4x48 output."""
  return FiRevNet(**{
      "image_shape": (32, 32, 3),
      "num_classes": 10,
      "num_levels": 3,
      "steps_per_level": 16,
      "width": 128,
      "coupling": "additive",
      "permutation": "reverse",
      "readout": "center",
      "dropout": 0.1,
      **overrides,
  })


FI_REVNET48_LAYOUT = {
    "num_levels": 5,
    "steps_per_level": (8, 8, 10, 10, 12),
    "split": False,
    "width": 256,
    "coupling": "affine",
    "permutation": "shuffle",  # 1x1 convolutions would add 9.4M parameters per step at 3072 channels
    "readout": "dct",
    "dropout": 0.0,
}
"""fiRevNet48's layout: the `FiRevNet` fields of `fi_revnet48_imagenet` and of configs/imagenet.py's model."""


def fi_revnet48_imagenet(**overrides) -> FiRevNet:
  """A 48-step fi-RevNet for 224x224 ImageNet (SPEC 3): five squeezes without
  splits give 7x7x3072 final maps, whose DCT DC coefficients hold the 1000
  logits (an invertible global average pooling). Our layout (`FI_REVNET48_LAYOUT`),
  never trained here (about 166M parameters); the paper gives only the step count
  and the DCT readout."""
  return FiRevNet(**{"image_shape": (224, 224, 3), "num_classes": 1000, **FI_REVNET48_LAYOUT, **overrides})


__all__ = [
    "CNN", "FI_REVNET48_LAYOUT", "FiRevNet", "fi_revnet48_imagenet", "fi_revnet_mnist", "merge_latent", "split_latent",
]
