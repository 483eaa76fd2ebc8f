"""Volume-preserving reshapes: squeeze (space-to-depth) and the channel split."""

import jax
import jax.numpy as jnp

from invjax.blocks import bijection


class Squeeze(bijection.Bijection):
  r"""Space-to-depth by a factor of 2.

    forward:  (B, H, W, C) -> (B, H/2, W/2, 4C),
              y[b, i, j, (2p + q) C + c] = x[b, 2i + p, 2j + q, c],  p, q in {0, 1}
    inverse:  the same index map read backwards.
    log|det| = 0 (a permutation of entries).
  """

  def __call__(self, x, train=False):
    bijection.require_images(x, "Squeeze")
    batch, height, width, channels = x.shape
    if height % 2 or width % 2:
      raise ValueError(
          f"Squeeze needs even height and width; got feature maps of shape "
          f"{x.shape[1:]}. Pad the input so that its spatial size is divisible "
          "by 2 ** num_levels."
      )
    y = x.reshape(batch, height // 2, 2, width // 2, 2, channels)
    y = y.transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(batch, height // 2, width // 2, 4 * channels), bijection.zero_logdet(x)

  def inverse(self, y, train=False):
    bijection.require_images(y, "Squeeze.inverse")
    batch, height, width, channels = y.shape
    if channels % 4:
      raise ValueError(
          f"Squeeze.inverse needs a channel count divisible by 4; got {y.shape}."
      )
    x = y.reshape(batch, height, width, 2, 2, channels // 4)
    x = x.transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(batch, 2 * height, 2 * width, channels // 4), bijection.zero_logdet(y)


def split_channels(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Splits the last axis in halves `(kept, emitted)`; `merge_channels` undoes it."""
  channels = x.shape[-1]
  if channels % 2:
    raise ValueError(f"Cannot split an odd number of channels in halves: {x.shape}.")
  return x[..., : channels // 2], x[..., channels // 2 :]


def merge_channels(kept: jax.Array, emitted: jax.Array) -> jax.Array:
  """Inverse of `split_channels`."""
  return jnp.concatenate([kept, emitted], axis=-1)
