"""ActNorm: per-channel affine normalisation with data-dependent initialisation."""

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import logging

from invjax.blocks import bijection


def _warn_constant_channels(count, min_std: float) -> None:
  if count:
    logging.warning("ActNorm initialised on a batch in which %d channels are (nearly) constant: their std is "
                    "below %g, so their scale is floored at %g. Initialise on a batch of several varied examples.",
                    int(count), min_std, 1 / min_std)


class ActNorm(bijection.Bijection):
  r"""Per-channel scale and bias (Kingma & Dhariwal, 2018).

  With a bias `b` and a log-scale `s` per channel (the last axis):

    forward:  y = (x + b) * exp(s)
    inverse:  x = y * exp(-s) - b
    log|det dy/dx| = N * sum_c s_c,   N = number of positions per example
                                          (H * W for NHWC maps, 1 for vectors).

  Initialisation is data-dependent: `init` on a batch sets `b = -mean(x)` and
  `s = -log(max(std(x), init_min_std))`, so the first batch leaves with zero
  mean and unit variance per channel. The floor `init_min_std` (1e-3, under
  the std 2/256 / sqrt(12) = 0.0023 of the dequantisation noise alone) bounds the
  scale of a channel that is constant in the batch (one example of a vector, a
  blank image channel) at 1000 instead of dividing by ~0; such a channel is
  logged as a warning. It lives in initialisation only, never in an inverse.
  An empty batch is refused. Initialised through `inverse`, the block starts as
  the identity. The log-det is float32 whatever the input's dtype
  (`bijection.logdet_dtype`).

  Works on any rank >= 2: statistics run over every axis but the last.
  """

  init_min_std: float = 1e-3

  @nn.compact
  def _log_scale_and_bias(self, x_init: jax.Array | None, channels: int):
    reduce_axes = None if x_init is None else tuple(range(x_init.ndim - 1))

    def init_bias(_):
      if x_init is None:
        return jnp.zeros((channels,), jnp.float32)
      return -jnp.mean(x_init, reduce_axes).astype(jnp.float32)

    def init_log_scale(_):
      if x_init is None:
        return jnp.zeros((channels,), jnp.float32)
      std = jnp.std(x_init.astype(jnp.float32), reduce_axes)
      jax.debug.callback(_warn_constant_channels, jnp.sum(std < self.init_min_std), self.init_min_std)
      return -jnp.log(jnp.maximum(std, self.init_min_std))

    return self.param("log_scale", init_log_scale), self.param("bias", init_bias)

  def _logdet(self, log_scale: jax.Array, x: jax.Array) -> jax.Array:
    positions = 1
    for size in x.shape[1:-1]:
      positions *= size
    return bijection.per_example(positions * jnp.sum(log_scale), x)

  def log_scale_and_bias(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The parameters `(s, b)` for inputs like `x`, initialised from `x` as `__call__` is;
    for layers that apply them inside a fused operation (`coupling.CouplingNetwork`)."""
    if self.is_initializing():
      bijection.require_batch(x, "ActNorm")
    return self._log_scale_and_bias(jax.lax.stop_gradient(x), x.shape[-1])

  def __call__(self, x, train=False):
    log_scale, bias = self.log_scale_and_bias(x)
    return (x + bias) * jnp.exp(log_scale), self._logdet(log_scale, x)

  def inverse(self, y, train=False):
    log_scale, bias = self._log_scale_and_bias(None, y.shape[-1])
    return y * jnp.exp(-log_scale) - bias, -self._logdet(log_scale, y)
