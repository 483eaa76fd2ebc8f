r"""How much a classifier's decisions depend on the training's dequantisation noise.

A flow trained by maximum likelihood sees dequantised images x + u,
u ~ U(-w/2, w/2) per pixel (`invjax.data.dequantize`, w = 2/256), but its
evaluation, its analyses and its metamers feed the pixel values x themselves
(one definition of the model's input: the bin centres). Where x is the same
in every image (the two blank channels of MNIST-like inputs), u is the only
variation training ever shows the flow there, and maximum likelihood rewards
stretching it to the prior's scale (a log-det of about log(1/w) per entry).
The noise-free image then maps to stretched noise of exactly 0 in all those
entries: a point of norm 0 where every training latent has norm about
sqrt(entries), far from anything the later layers were fitted on. Nothing
forces the logits to be stable there.

`noise_sensitivity` measures it. With one draw u_i of the training's noise per
image and m_G the indicator of a group G of channels, it gives the error

    error_G = 100 * mean_i [argmax l(x_i + m_G * u_i) != y_i]

for G = no channel (the images as evaluation feeds them), each channel alone,
and all channels. A classifier whose decisions do not depend on the noise has
every error_G equal up to the noise's own effect; one that reads the stretched
noise of a blank channel c has error_{no channel} far above error_{channel c}.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from invjax import data
from invjax.analysis import batching

NO_NOISE = "none"
ALL_CHANNELS = "all"


def channel_groups(num_channels: int) -> dict[str, np.ndarray]:
  """The channel masks (C,) noise is added through: none, each channel alone ("channel c"), all."""
  groups = {NO_NOISE: np.zeros(num_channels, np.float32)}
  groups |= {f"channel {c}": np.eye(num_channels, dtype=np.float32)[c] for c in range(num_channels)}
  return groups | {ALL_CHANNELS: np.ones(num_channels, np.float32)}


def noise_sensitivity(logits: Callable[[jax.Array], jax.Array], images: np.ndarray, labels: np.ndarray,
                      key: jax.Array, batch_size: int = 256) -> dict[str, float]:
  """error_G in % for every group of `channel_groups`, in its order (see the module doc).

  The masking and the argmax run eagerly around `logits`, so that a caller's jitted logits, already
  compiled for `batch_size` images, are reused for every group rather than compiled into a new program.

  Args:
    logits: images (B, H, W, C) in [-1, 1] -> logits (B, classes); jitted by the caller.
    images: (N, H, W, C) images as evaluation feeds them.
    labels: (N,) integer labels.
    key: the noise's key; every group adds the same draw, masked.
    batch_size: images per call of `logits`.
  """
  images, labels = np.asarray(images), np.asarray(labels)
  if images.ndim != 4 or labels.shape != images.shape[:1]:
    raise ValueError(f"Need images (N, H, W, C) and labels (N,): got {images.shape} and {labels.shape}.")
  noise = np.asarray(data.dequantize(key, jnp.zeros(images.shape, jnp.float32))).astype(images.dtype)
  groups = channel_groups(images.shape[-1])

  def predictions(x, u):
    return {name: jnp.argmax(logits(x + u * mask.astype(x.dtype)), axis=-1) for name, mask in groups.items()}

  predicted = batching.map_in_batches(predictions, images, noise, batch_size=batch_size)
  return {name: float(100 * np.mean(predicted[name] != labels)) for name in groups}  # in the groups' order
