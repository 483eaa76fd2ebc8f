"""Channel mixing between couplings: fixed permutations and the invertible 1x1 convolution.

Each block draws what it needs from its `seed` at trace time as numpy arrays,
its *step constants* (`step_constants(channels)`). A caller that runs many
blocks as one scan (`invjax.blocks.FlowSteps`) stacks the constants of every
step and hands each step its slice through the `constants` argument, so the
scanned and the unrolled network compute the same function.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from invjax.blocks import bijection

Constants = dict[str, np.ndarray | jax.Array]


class ReversePermutation(bijection.Bijection):
  r"""Reverses the channel order (RealNVP / i-RevNet default).

    forward: y[..., c] = x[..., C - 1 - c];  inverse: the same map;  log|det| = 0.
  """

  seed: int = 0  # unused: every reverse permutation is the same

  def step_constants(self, channels: int) -> Constants:
    return {}

  def __call__(self, x, train=False, constants=None):
    return x[..., ::-1], bijection.zero_logdet(x)

  def inverse(self, y, train=False, constants=None):
    return y[..., ::-1], bijection.zero_logdet(y)


class ShufflePermutation(bijection.Bijection):
  r"""A fixed random channel shuffle, drawn from `seed` and the channel count.

    forward: y[..., c] = x[..., pi(c)];  inverse: x[..., c] = y[..., pi^-1(c)];
    log|det| = 0. The permutation is a constant of the model, not a parameter.
  """

  seed: int = 0

  def step_constants(self, channels: int) -> Constants:
    order = np.random.default_rng(self.seed).permutation(channels).astype(np.int32)
    return {"order": order, "inverse_order": np.argsort(order).astype(np.int32)}

  def __call__(self, x, train=False, constants=None):
    constants = self.step_constants(x.shape[-1]) if constants is None else constants
    return jnp.take(x, constants["order"], axis=-1), bijection.zero_logdet(x)

  def inverse(self, y, train=False, constants=None):
    constants = self.step_constants(y.shape[-1]) if constants is None else constants
    return jnp.take(y, constants["inverse_order"], axis=-1), bijection.zero_logdet(y)


@functools.cache
def _lu_of_random_rotation(channels: int, seed: int):
  """P, L, U, sign(s), log|s| of a seeded random rotation (Glow's initialisation)."""
  rotation, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((channels, channels)))
  permutation, lower, upper = scipy.linalg.lu(rotation)
  diagonal = np.diag(upper)
  return permutation, lower, np.triu(upper, 1), np.sign(diagonal), np.log(np.abs(diagonal))


class InvertibleConv1x1(bijection.Bijection):
  r"""Invertible 1x1 convolution in LU form (Glow).

  The weight W = P L (U + diag(sign * exp(log_s))) mixes channels at each
  position: y = x W. P (a permutation) and sign are constants drawn from
  `seed`; L (unit lower triangular), U (strictly upper triangular) and log_s are
  learned, initialised from the LU decomposition of a random rotation.

    forward:  y = x W                  log|det| = N * sum(log_s)
    inverse:  x = y W^-1,  W^-1 = U'^-1 L^-1 P^T by triangular solves, exact.

  N is the number of positions per example (H * W for NHWC maps).
  """

  seed: int = 0

  def step_constants(self, channels: int) -> Constants:
    """P and sign, and the initial values of L, U and log_s."""
    permutation, lower, upper, sign, log_s = _lu_of_random_rotation(channels, self.seed)
    return {name: value.astype(np.float32) for name, value in [
        ("permutation", permutation), ("sign", sign),
        ("initial_lower", lower), ("initial_upper", upper), ("initial_log_s", log_s)]}

  @nn.compact
  def _factors(self, channels: int, constants: Constants | None):
    constants = self.step_constants(channels) if constants is None else constants
    lower = self.param("lower", lambda _: jnp.asarray(constants["initial_lower"], jnp.float32))
    upper = self.param("upper", lambda _: jnp.asarray(constants["initial_upper"], jnp.float32))
    log_s = self.param("log_s", lambda _: jnp.asarray(constants["initial_log_s"], jnp.float32))
    unit_lower = jnp.tril(lower, -1) + jnp.eye(channels, dtype=lower.dtype)
    upper_with_diagonal = jnp.triu(upper, 1) + jnp.diag(constants["sign"].astype(lower.dtype) * jnp.exp(log_s))
    return jnp.asarray(constants["permutation"], lower.dtype), unit_lower, upper_with_diagonal, log_s

  def _logdet(self, log_s, x):
    positions = int(np.prod(x.shape[1:-1]))
    return bijection.per_example(positions * jnp.sum(log_s), x)

  def __call__(self, x, train=False, constants=None):
    permutation, lower, upper, log_s = self._factors(x.shape[-1], constants)
    weight = permutation @ lower @ upper
    return jnp.einsum("...i,ij->...j", x, weight.astype(x.dtype)), self._logdet(log_s, x)

  def inverse(self, y, train=False, constants=None):
    permutation, lower, upper, log_s = self._factors(y.shape[-1], constants)
    identity = jnp.eye(y.shape[-1], dtype=lower.dtype)
    lower_inverse = jax.scipy.linalg.solve_triangular(lower, identity, lower=True, unit_diagonal=True)
    upper_inverse = jax.scipy.linalg.solve_triangular(upper, identity, lower=False)
    weight_inverse = upper_inverse @ lower_inverse @ permutation.T
    return jnp.einsum("...i,ij->...j", y, weight_inverse.astype(y.dtype)), -self._logdet(log_s, y)
