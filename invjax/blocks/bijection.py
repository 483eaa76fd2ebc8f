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


def per_example(logdet: jax.Array, x: jax.Array) -> jax.Array:
  """Broadcasts a log-det shared by every example to shape `(B,)`."""
  return jnp.broadcast_to(logdet, x.shape[:1]).astype(x.dtype)


def zero_logdet(x: jax.Array) -> jax.Array:
  """The `(B,)` log-det of a volume-preserving map."""
  return jnp.zeros(x.shape[:1], x.dtype)


def require_images(x: jax.Array, block: str) -> None:
  """Raises a `ValueError` unless `x` is a batch of NHWC feature maps."""
  if x.ndim != 4:
    raise ValueError(
        f"{block} expects a batch of images of shape (batch, height, width, "
        f"channels); got an array of shape {x.shape}."
    )
