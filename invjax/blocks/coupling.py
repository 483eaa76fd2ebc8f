"""Additive and affine coupling layers with the Glow / i-RevNet coupling network."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from invjax.blocks import actnorm
from invjax.blocks import bijection
from invjax.blocks import conv
from invjax.blocks import dropout


class CouplingNetwork(nn.Module):
  """NN(x1) of a coupling (SPEC 3): any function works, since it is never inverted.

    conv3x3(C_in -> width) + ActNorm + ReLU + dropout
    conv1x1(width -> width) + ActNorm + ReLU + dropout
    conv3x3(width -> C_out), zero-initialised, times exp(learned per-channel log-scale)

  The zero initialisation makes every coupling start as the identity.
  """

  out_channels: int
  width: int = 128
  dropout: float = 0.1
  compute_dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    def conv_layer(features, kernel_size, **kwargs):
      return conv.Conv2D(
          features, kernel_size,
          compute_dtype=self.compute_dtype,
          **kwargs,
      )

    h = x
    for kernel_size in (3, 1):
      h = conv_layer(self.width, kernel_size)(h)
      h, _ = actnorm.ActNorm()(h)
      h = dropout.Dropout(self.dropout)(nn.relu(h), deterministic=not train)
    h = conv_layer(self.out_channels, 3, kernel_init=nn.initializers.zeros, name="zero_conv")(h)
    bias = self.param("bias", nn.initializers.zeros, (self.out_channels,), jnp.float32)
    log_scale = self.param("log_scale", nn.initializers.zeros, (self.out_channels,), jnp.float32)
    return (h + bias) * jnp.exp(log_scale)


class _Coupling(bijection.Bijection):
  """Splits channels in halves (x1, x2), keeps x1 and transforms x2 given NN(x1)."""

  width: int = 128
  dropout: float = 0.1
  compute_dtype: jnp.dtype | None = None

  conditioner_outputs_per_channel = 1

  @nn.compact
  def _conditioner(self, x1: jax.Array, train: bool) -> jax.Array:
    network = CouplingNetwork(
        out_channels=self.conditioner_outputs_per_channel * x1.shape[-1],
        width=self.width,
        dropout=self.dropout,
        compute_dtype=self.compute_dtype,
    )
    return network(x1, train=train).astype(x1.dtype)

  def _halves(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    bijection.require_images(x, type(self).__name__)
    channels = x.shape[-1]
    if channels % 2:
      raise ValueError(
          f"{type(self).__name__} splits channels in halves and needs an even "
          f"channel count; got input of shape {x.shape} (channels last)."
      )
    return x[..., : channels // 2], x[..., channels // 2 :]


class AdditiveCoupling(_Coupling):
  r"""Volume-preserving coupling (NICE / i-RevNet).

    forward:  y1 = x1,  y2 = x2 + NN(x1)
    inverse:  x1 = y1,  x2 = y2 - NN(y1)
    log|det| = 0.
  """

  def __call__(self, x, train=False):
    x1, x2 = self._halves(x)
    y2 = x2 + self._conditioner(x1, train)
    return jnp.concatenate([x1, y2], -1), bijection.zero_logdet(x)

  def inverse(self, y, train=False):
    y1, y2 = self._halves(y)
    x2 = y2 - self._conditioner(y1, train)
    return jnp.concatenate([y1, x2], -1), bijection.zero_logdet(y)


class AffineCoupling(_Coupling):
  r"""Affine coupling (Glow), with NN(x1) = (shift, s) and scale = sigmoid(s + 2).

    forward:  y1 = x1,  y2 = (x2 + shift) * scale
    inverse:  x1 = y1,  x2 = y2 / scale - shift
    log|det dy/dx| = sum log scale  (over the positions and channels of x2).
  """

  conditioner_outputs_per_channel = 2

  def _shift_and_log_scale(self, x1, train):
    shift, s = jnp.split(self._conditioner(x1, train), 2, axis=-1)
    return shift, jax.nn.log_sigmoid(s + 2.0)

  def __call__(self, x, train=False):
    x1, x2 = self._halves(x)
    shift, log_scale = self._shift_and_log_scale(x1, train)
    y2 = (x2 + shift) * jnp.exp(log_scale)
    return jnp.concatenate([x1, y2], -1), jnp.sum(log_scale, axis=(1, 2, 3))

  def inverse(self, y, train=False):
    y1, y2 = self._halves(y)
    shift, log_scale = self._shift_and_log_scale(y1, train)
    x2 = y2 * jnp.exp(-log_scale) - shift
    return jnp.concatenate([y1, x2], -1), -jnp.sum(log_scale, axis=(1, 2, 3))
