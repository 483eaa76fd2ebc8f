"""invjax: fully invertible networks, metameric sampling and the independence
cross-entropy (Jacobsen et al., *Excessive Invariance Causes Adversarial
Vulnerability*, ICLR 2019) in JAX and Flax.

The library (installed alone it needs JAX, Flax, Optax and NumPy only):

* `blocks`: invertible Flax layers, each `x -> (y, logdet)` and back with `inverse`;
* `models`: `FiRevNet` with its presets, and a plain `CNN`;
* `losses`: cross-entropy, the nuisance game and the MLE terms of iCE;
* `independence`: label-independence penalties on z_n without a player;
* `objective`: the registry of loss terms the train step sums;
* `metamers`: metamers and nuisance interpolations of a trained fi-RevNet;
* `parallel`: the data-parallel mesh; `export`: a model's forward and inverse
  through `jax.export`.

With the training extra (`invjax[train]`: TensorFlow, TFDS, Orbax, absl,
ml_collections, matplotlib): `train`, `data`, `analysis` and `plotting`.

Every subpackage and the names below load on first use, so `import invjax` is
cheap and touches no accelerator::

    import invjax
    model = invjax.fi_revnet_mnist()          # invjax.models.fi_revnet_mnist
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "analysis", "blocks", "data", "export", "flops", "independence", "losses", "metamers", "models", "objective",
    "parallel", "plotting", "train",
)
# name -> the module that defines it.
_NAMES = {
    "Bijection": "invjax.blocks",
    "CNN": "invjax.models",
    "FiRevNet": "invjax.models",
    "fi_revnet48_imagenet": "invjax.models",
    "fi_revnet_mnist": "invjax.models",
    "merge_latent": "invjax.models",
    "split_latent": "invjax.models",
    "encode": "invjax.metamers",
    "metamer_grid": "invjax.metamers",
    "metameric_sample": "invjax.metamers",
    "nuisance_interpolation": "invjax.metamers",
    "export_forward_inverse": "invjax.export",
    "train_and_evaluate": "invjax.train",  # needs invjax[train]
}

__all__ = ["__version__", *_SUBMODULES, *_NAMES]


def __getattr__(name: str):
  if name in _SUBMODULES:
    return importlib.import_module(f"invjax.{name}")
  if name in _NAMES:
    return getattr(importlib.import_module(_NAMES[name]), name)
  raise AttributeError(f"module 'invjax' has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(__all__))
