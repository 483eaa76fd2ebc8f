"""Data for invjax: MNIST, Fashion-MNIST, shiftMNIST, spheres and ImageNet.

    from invjax import data
    batches = data.load("shift_mnist/binary", "train", batch_size=256, seed=0)
    batch = next(iter(batches))
    # {"image": float32 (256, 32, 32, 3) in [-1, 1], "label": int32 (256,), "mask": bool (256,)}

Datasets (`DATASETS`): "mnist", "fashion_mnist", "shift_mnist/binary",
"shift_mnist/textured", "spheres", "imagenet"; splits "train" and "test", plus
"test_shifted" and "test_none" for shiftMNIST. Modules, one concept each:

* `sources`: MNIST / Fashion-MNIST through TFDS, prepared offline from the
  original files (checksums verified).
* `preprocess`: the fi-RevNet input format and `dequantize`.
* `textures`, `shift_mnist`: DTD texture banks and the shiftMNIST variants.
* `spheres`, `imagenet`: the other datasets; `tiny_imagenet` writes a small
  ImageNet in the layout of the manual download, for tests and CI.
* `pipeline`: per-process slices, shuffling, batching, padding masks,
  dequantisation noise and global sharded arrays.
* `catalogue`: one record per dataset (classes, splits, sizes, shape, source,
  options); a new dataset is one entry there. `loading`: `load` and the other
  entry points, read from the records; `figures`: example grids.
"""

from invjax import _extras

with _extras.train_extra("invjax.data"):
  import tensorflow as tf

  from invjax.data.loading import (
      DATASETS,
      NUM_CLASSES,
      as_numpy,
      input_shape,
      load,
      num_examples,
      splits,
  )
  from invjax.data.pipeline import Batches
  from invjax.data.preprocess import DEQUANTIZATION_BIN_WIDTH, dequantize

# tf.data runs on the CPU; keep TensorFlow from claiming accelerator memory that JAX owns.
tf.config.set_visible_devices([], "GPU")

__all__ = [
    "DATASETS",
    "DEQUANTIZATION_BIN_WIDTH",
    "NUM_CLASSES",
    "Batches",
    "as_numpy",
    "dequantize",
    "input_shape",
    "load",
    "num_examples",
    "splits",
]
