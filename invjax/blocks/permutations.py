"""Channel mixing between couplings: fixed permutations and the invertible 1x1 convolution."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from invjax.blocks import bijection


class ReversePermutation(bijection.Bijection):
  r"""Reverses the channel order (RealNVP / i-RevNet default).

    forward: y[..., c] = x[..., C - 1 - c];  inverse: the same map;  log|det| = 0.
  """

  def __call__(self, x, train=False):
    return x[..., ::-1], bijection.zero_logdet(x)

  def inverse(self, y, train=False):
    return y[..., ::-1], bijection.zero_logdet(y)


class ShufflePermutation(bijection.Bijection):
  r"""A fixed random channel shuffle, drawn from `seed` and the channel count.

    forward: y[..., c] = x[..., pi(c)];  inverse: x[..., c] = y[..., pi^-1(c)];
    log|det| = 0. The permutation is a constant of the model, not a parameter.
  """

  seed: int = 0

  def _permutation(self, channels: int) -> np.ndarray:
    return np.random.default_rng(self.seed).permutation(channels)

  def __call__(self, x, train=False):
    return x[..., self._permutation(x.shape[-1])], bijection.zero_logdet(x)

  def inverse(self, y, train=False):
    return y[..., np.argsort(self._permutation(y.shape[-1]))], bijection.zero_logdet(y)


@functools.lru_cache(maxsize=None)
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

  @nn.compact
  def _factors(self, channels: int):
    permutation, lower, upper, sign, log_s = _lu_of_random_rotation(channels, self.seed)
    lower = self.param("lower", lambda _: jnp.asarray(lower, jnp.float32))
    upper = self.param("upper", lambda _: jnp.asarray(upper, jnp.float32))
    log_s = self.param("log_s", lambda _: jnp.asarray(log_s, jnp.float32))
    unit_lower = jnp.tril(lower, -1) + jnp.eye(channels, dtype=lower.dtype)
    upper_with_diagonal = jnp.triu(upper, 1) + jnp.diag(sign * jnp.exp(log_s))
    return jnp.asarray(permutation, lower.dtype), unit_lower, upper_with_diagonal, log_s

  def _logdet(self, log_s, x):
    positions = int(np.prod(x.shape[1:-1]))
    return bijection.per_example(positions * jnp.sum(log_s), x)

  def __call__(self, x, train=False):
    permutation, lower, upper, log_s = self._factors(x.shape[-1])
    weight = permutation @ lower @ upper
    return jnp.einsum("...i,ij->...j", x, weight.astype(x.dtype)), self._logdet(log_s, x)

  def inverse(self, y, train=False):
    permutation, lower, upper, log_s = self._factors(y.shape[-1])
    identity = jnp.eye(y.shape[-1], dtype=lower.dtype)
    lower_inverse = jax.scipy.linalg.solve_triangular(lower, identity, lower=True, unit_diagonal=True)
    upper_inverse = jax.scipy.linalg.solve_triangular(upper, identity, lower=False)
    weight_inverse = upper_inverse @ lower_inverse @ permutation.T
    return jnp.einsum("...i,ij->...j", y, weight_inverse.astype(y.dtype)), -self._logdet(log_s, y)
