"""Additive and affine coupling layers with the Glow / i-RevNet coupling network."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from invjax.blocks import actnorm, bijection, conv, dropout


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5))
def normalise_relu_dropout(y, bias, log_scale, keep, keep_probability, out_dtype=None):
  r"""h = relu((y + b) * exp(s)) * keep / keep_probability: ActNorm, ReLU and inverted dropout
  (`keep` a boolean mask, or None for no dropout) as one operation.

  Its derivative is written in terms of the output h alone, which the next
  convolution keeps anyway: with c = exp(s) / keep_probability (no division
  without dropout),
    dh = [h > 0] * ((dy + db) * c + h * ds),
  so reverse mode keeps h (not y and two masks) and forms dL/dy = [h > 0] c dL/dh,
  dL/db = sum dL/dy and dL/ds = sum h dL/dh in one pass.

  h has dtype `out_dtype` (default y's; bfloat16 stores the activation in half
  the memory, the arithmetic runs in float32); `bias` and `log_scale` broadcast
  against y, so channels-major activations take them shaped (C, 1, 1, 1).
  """
  u = (y + bias) * jnp.exp(log_scale)
  if keep is not None:
    u = jnp.where(keep, u / keep_probability, 0)
  return nn.relu(u).astype(out_dtype or y.dtype)


@normalise_relu_dropout.defjvp
def _normalise_relu_dropout_jvp(keep_probability, out_dtype, primals, tangents):
  y, bias, log_scale, keep = primals
  dy, dbias, dlog_scale, _ = tangents
  h = normalise_relu_dropout(y, bias, log_scale, keep, keep_probability, out_dtype)
  scale = jnp.exp(log_scale) / (1.0 if keep is None else keep_probability)
  return h, jnp.where(h > 0, (dy + dbias) * scale + h * dlog_scale, 0).astype(h.dtype)


class CouplingNetwork(nn.Module):
  """NN(x1) of a coupling (SPEC 3): any function works, since it is never inverted.

    conv3x3(C_in -> width) + ActNorm + ReLU + dropout
    conv1x1(width -> width) + ActNorm + ReLU + dropout
    conv3x3(width -> C_out), zero-initialised, times exp(learned per-channel log-scale)

  The zero initialisation makes every coupling start as the identity. ActNorm,
  ReLU and dropout run as one fused operation (`normalise_relu_dropout`); the
  parameters keep their modules' names (`ActNorm_0/log_scale`, ...).

  Inside, activations are channels-major (C, B, H, W): only the narrow input and
  output (C_in, C_out channels) are transposed, and every product of the matrix
  convolutions then runs without transposed operands (`invjax.blocks.conv`).
  With `compute_dtype` bfloat16 the two hidden activations are stored in
  bfloat16, halving the memory traffic of the width-wide tensors; parameters,
  the products' accumulation and the output stay float32.

  Unlike the convolution formulation (chosen per platform, `invjax.blocks.conv`),
  the layout and the fused operation are the same on every platform, because
  neither is a CPU choice. The layout is the dimension order of the program's
  arrays, not their memory layout: XLA:GPU and XLA:TPU assign the physical
  layout of each convolution's operands themselves (what cuDNN or the TPU's
  tiling wants), whatever order `conv_general_dilated`'s dimension numbers name;
  the explicit transposes touch only the narrow input and output (C_in and C_out
  channels, not the width-wide hidden activations). The fused operation is
  elementwise with per-channel parameters, which every backend fuses, and its
  custom JVP keeps h alone for reverse mode instead of y and two masks: less
  memory on any device. Neither has been measured on a GPU or TPU
  (`make device-check`, README).
  """

  out_channels: int
  width: int = 128
  dropout: float = 0.1
  compute_dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    hidden_dtype = self.compute_dtype or x.dtype  # of the stored activations; products return x.dtype

    def conv_layer(features, kernel_size, out_dtype, **kwargs):
      return conv.Conv2D(
          features, kernel_size,
          compute_dtype=self.compute_dtype,
          layout="CNHW",
          out_dtype=out_dtype,
          **kwargs,
      )

    h = jnp.transpose(x, (3, 0, 1, 2))
    keep_probability = 1.0 - self.dropout
    per_channel = lambda parameter: parameter[:, None, None, None]
    for kernel_size in (3, 1):
      y = conv_layer(self.width, kernel_size, x.dtype)(h)
      # Initialised from y in NHWC view (an unused transpose after initialisation).
      log_scale, bias = actnorm.ActNorm().log_scale_and_bias(jnp.moveaxis(y, 0, -1))
      keep = None
      if train and self.dropout:
        keep = dropout.keep_mask(self.make_rng("dropout"), y.shape, keep_probability)
      h = normalise_relu_dropout(
          y, per_channel(bias), per_channel(log_scale), keep, keep_probability, hidden_dtype)
    h = conv_layer(self.out_channels, 3, x.dtype, kernel_init=nn.initializers.zeros, name="zero_conv")(h)
    bias = self.param("bias", nn.initializers.zeros, (self.out_channels,), jnp.float32)
    log_scale = self.param("log_scale", nn.initializers.zeros, (self.out_channels,), jnp.float32)
    return jnp.transpose((h + per_channel(bias)) * jnp.exp(per_channel(log_scale)), (1, 2, 3, 0))


class Coupling(bijection.Bijection):
  """Splits channels in halves (x1, x2), keeps x1 and transforms x2 given h = NN(x1):

    forward:  y = (x1, transform(h, x2)),   inverse:  x = (y1, untransform(h, y2)),

  with `transform` and `untransform` pure functions of (h, half) that return
  the half and its log-det (`invjax.blocks.reversible.CouplingStage` calls them
  directly to evaluate NN once in its backward pass). Subclasses define the two
  and `conditioner_outputs_per_channel`, the channels of h per channel of x2.

  NN is `conditioner` when given: any Flax module called as
  `conditioner(x1, train=train)` that returns h of x1's batch and spatial shape
  with `conditioner_outputs_per_channel * C/2` channels. It is never inverted,
  so it may be any network. Without one, NN is a `CouplingNetwork` of `width`,
  `dropout` and `compute_dtype` (the paper's), built for the channel count of
  the input.
  """

  conditioner: nn.Module | None = None
  width: int = 128
  dropout: float = 0.1
  compute_dtype: jnp.dtype | None = None

  conditioner_outputs_per_channel = 1

  @staticmethod
  def transform(h: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(y2, log|det dy2/dx2|) given h = NN(x1)."""
    raise NotImplementedError

  @staticmethod
  def untransform(h: jax.Array, y2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(x2, log|det dx2/dy2|) given h = NN(y1): the inverse of `transform`."""
    raise NotImplementedError

  @nn.compact
  def condition(self, x1: jax.Array, train: bool = False) -> jax.Array:
    """h = NN(x1)."""
    network = self.conditioner
    if network is None:
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
    if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 1:
      raise ValueError(f"{type(self).__name__}(width={self.width!r}): the coupling network's width must be an "
                       "integer >= 1.")
    return x[..., : channels // 2], x[..., channels // 2 :]

  def __call__(self, x, train=False):
    x1, x2 = self._halves(x)
    y2, logdet = self.transform(self.condition(x1, train), x2)
    return jnp.concatenate([x1, y2], -1), logdet

  def inverse(self, y, train=False):
    y1, y2 = self._halves(y)
    x2, logdet = self.untransform(self.condition(y1, train), y2)
    return jnp.concatenate([y1, x2], -1), logdet


class AdditiveCoupling(Coupling):
  r"""Volume-preserving coupling (NICE / i-RevNet).

    forward:  y1 = x1,  y2 = x2 + NN(x1)
    inverse:  x1 = y1,  x2 = y2 - NN(y1)
    log|det| = 0.
  """

  @staticmethod
  def transform(h, x2):
    return x2 + h, bijection.zero_logdet(x2)

  @staticmethod
  def untransform(h, y2):
    return y2 - h, bijection.zero_logdet(y2)


class AffineCoupling(Coupling):
  r"""Affine coupling (Glow), with NN(x1) = (shift, s) and scale = sigmoid(s + 2).

    forward:  y1 = x1,  y2 = (x2 + shift) * scale
    inverse:  x1 = y1,  x2 = y2 / scale - shift
    log|det dy/dx| = sum log scale  (over the positions and channels of x2).
  """

  conditioner_outputs_per_channel = 2

  @staticmethod
  def _shift_and_log_scale(h):
    shift, s = jnp.split(h, 2, axis=-1)
    return shift, jax.nn.log_sigmoid(s + 2.0)

  @staticmethod
  def transform(h, x2):
    shift, log_scale = AffineCoupling._shift_and_log_scale(h)
    return (x2 + shift) * jnp.exp(log_scale), jnp.sum(log_scale, axis=(1, 2, 3))

  @staticmethod
  def untransform(h, y2):
    shift, log_scale = AffineCoupling._shift_and_log_scale(h)
    return y2 * jnp.exp(-log_scale) - shift, -jnp.sum(log_scale, axis=(1, 2, 3))
