r"""Glow's learned split prior, written as a bijection: a coupling that standardises the emitted half.

Glow (Kingma & Dhariwal, 2018), and the authors' fi-RevNet code after it, give
the half z2 that leaves the flow at a split a Gaussian prior whose mean and
log-scale are a zero-initialised 3x3 convolution of the half z1 that stays:

  p(z2 | z1) = N(z2; mu(z1), exp(s(z1))^2).

The same density is a coupling that keeps z1 and standardises z2,

  forward:  y1 = x1,  y2 = (x2 - mu(x1)) * exp(-s(x1))
  inverse:  x1 = y1,  x2 = y2 * exp(s(y1)) + mu(y1)
  log|det dy/dx| = -sum s(x1)   (over the positions and channels of x2),

followed by the standard normal (or the learned factorial Gaussian) on y2:
-log N(y2; 0, 1) - log|det| = -log p(x2 | x1). A fi-RevNet with
`split_prior=True` still emits x2 (as the authors' code does: metamers swap it)
and models the density of y2 (`FiRevNet.density`): its maximum-likelihood term
is then the authors' objective with split priors, exactly, with the log-det of
a block that passes every property test of the registry.

mu and s start at zero (the block starts as the identity): `ZeroConv` is
Glow's `Conv2dZeroInit`, a zero-initialised 3x3 convolution plus bias whose
output is scaled by exp(3 * log_scale), log_scale also starting at zero.
Unlike `AffineCoupling`, the scale is not squashed by a sigmoid: Glow's prior
learns any variance, and so does this one.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from invjax.blocks import conv, coupling

ZERO_CONV_SCALE_FACTOR = 3.0  # Glow's Conv2dZeroInit multiplies its log-scale parameter by 3


class ZeroConv(nn.Module):
  """h = (conv3x3(x) + b) * exp(3 * log_scale), every parameter zero at init (Glow's Conv2dZeroInit).

  Args:
    features: output channels.
  """

  features: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # no dropout: the prior is a deterministic function of the kept half
    h = conv.Conv2D(self.features, 3, kernel_init=nn.initializers.zeros, name="zero_conv")(x)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    log_scale = self.param("log_scale", nn.initializers.zeros, (self.features,), jnp.float32)
    return ((h + bias) * jnp.exp(ZERO_CONV_SCALE_FACTOR * log_scale)).astype(x.dtype)


class SplitPrior(coupling.Coupling):
  """Standardises the second channel half under a Gaussian whose mean and log-scale the first half
  predicts (see the module docstring for the math).

  Args:
    conditioner: the network (mu, s) = NN(x1); default a `ZeroConv` with 2 * C/2 outputs,
      the first C/2 the mean, the others the log-scale.
  """

  conditioner_outputs_per_channel = 2

  @nn.compact
  def condition(self, x1: jax.Array, train: bool = False) -> jax.Array:
    network = self.conditioner or ZeroConv(features=self.conditioner_outputs_per_channel * x1.shape[-1])
    return network(x1, train=train).astype(x1.dtype)

  @staticmethod
  def transform(h, x2):
    mean, log_scale = jnp.split(h, 2, axis=-1)
    return (x2 - mean) * jnp.exp(-log_scale), -jnp.sum(log_scale, axis=(1, 2, 3))

  @staticmethod
  def untransform(h, y2):
    mean, log_scale = jnp.split(h, 2, axis=-1)
    return y2 * jnp.exp(log_scale) + mean, jnp.sum(log_scale, axis=(1, 2, 3))
