"""A plain (non-invertible) convolutional classifier.

It serves twice: as the non-invertible baseline that invariance attacks target,
and as the independently trained *oracle* that judges which class a metamer
looks like.
"""

import flax.linen as nn
import jax


class CNN(nn.Module):
  """conv(32)x2 -> pool -> conv(64)x2 -> pool -> dense(hidden) -> dropout -> dense(classes).

  `__call__(x, train=False)` maps NHWC images to logits `(B, num_classes)`.
  Each layer's output can be read with Flax's
  `apply(..., capture_intermediates=True, mutable=["intermediates"])`.
  """

  num_classes: int = 10
  channels: tuple[int, int] = (32, 64)
  hidden: int = 256
  dropout: float = 0.3

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f"CNN expects images of shape (batch, height, width, channels); got {x.shape}.")
    for features in self.channels:
      for _ in range(2):
        x = nn.relu(nn.Conv(features, (3, 3))(x))
      x = nn.max_pool(x, (2, 2), (2, 2))
    x = nn.relu(nn.Dense(self.hidden)(x.reshape(x.shape[0], -1)))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, name="logits")(x)
