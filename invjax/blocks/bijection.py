"""The contract every invertible block follows.

A `Bijection` is a Flax Linen module with two directions::

    y, logdet = block.apply(variables, x)                         # forward
    x, logdet = block.apply(variables, y, method=block.inverse)   # inverse

`logdet` has shape `(B,)`: log|det dy/dx| of each example for the forward
direction and log|det dx/dy| for the inverse, so the two are negatives of each
other at matching points. Both directions accept a keyword `train` (dropout on
or off); inverses are exact whenever `train=False`.

Blocks create their parameters in one `nn.compact` method that both directions
call. That lets data-dependent initialisation (ActNorm) see the batch given to
`init` and keeps parameter names identical in both directions.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class Bijection(nn.Module):
  """Base class: `__call__(x) -> (y, logdet)`, `inverse(y) -> (x, logdet)`."""

  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    raise NotImplementedError

  def inverse(self, y: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    raise NotImplementedError


def logdet_dtype(x: jax.Array) -> jnp.dtype:
  """Log-dets are float32 (float64 for float64 inputs) whatever the input's dtype: a sum over
  thousands of positions overflows float16 and loses the inverse's exactness in bfloat16."""
  return jnp.promote_types(x.dtype, jnp.float32)


def per_example(logdet: jax.Array, x: jax.Array) -> jax.Array:
  """Broadcasts a log-det shared by every example to shape `(B,)`."""
  return jnp.broadcast_to(logdet.astype(logdet_dtype(x)), x.shape[:1])


def zero_logdet(x: jax.Array) -> jax.Array:
  """The `(B,)` log-det of a volume-preserving map."""
  return jnp.zeros(x.shape[:1], logdet_dtype(x))


def require_batch(x: jax.Array, block: str) -> None:
  """Raises a one-line `ValueError` unless `x` is a floating point batch of at least one example
  with at least one channel (the last axis): what every block needs before it can map anything."""
  if x.ndim < 2 or x.shape[0] == 0 or x.shape[-1] == 0:
    raise ValueError(f"{block} expects a batch of at least one example with channels on the last axis; "
                     f"got an array of shape {x.shape}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"{block} expects floating point inputs; got {x.dtype}: convert them (images: float32 "
                     "x = v / 127.5 - 1 in [-1, 1] from raw pixels v).")


def require_images(x: jax.Array, block: str) -> None:
  """Raises a `ValueError` unless `x` is a batch of NHWC feature maps (`require_batch`)."""
  if x.ndim != 4:
    raise ValueError(
        f"{block} expects a batch of images of shape (batch, height, width, "
        f"channels); got an array of shape {x.shape}."
    )
  require_batch(x, block)
