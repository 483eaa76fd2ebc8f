"""Orthonormal 2D DCT: an invertible global average pooling."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from invjax.blocks import bijection


@functools.cache
def dct_matrix(size: int) -> np.ndarray:
  r"""The orthonormal DCT-II matrix D (D D^T = I) of a length-`size` signal.

    D[k, n] = a_k cos(pi (2n + 1) k / (2 size)),  a_0 = sqrt(1/size), a_k = sqrt(2/size).
  Row 0 is the constant sqrt(1/size): the DC coefficient is a scaled mean.
  """
  n = np.arange(size)
  matrix = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size))
  matrix *= np.sqrt(2.0 / size)
  matrix[0] /= np.sqrt(2.0)
  return matrix


class DCT2D(bijection.Bijection):
  r"""Per-channel orthonormal 2D DCT-II over the spatial axes of NHWC maps.

    forward:  Y[:, :, :, c] = D_H X[:, :, :, c] D_W^T
    inverse:  X[:, :, :, c] = D_H^T Y[:, :, :, c] D_W
    log|det| = 0 (orthonormal).

  Y[:, 0, 0, c] = sqrt(H W) * mean(X[:, :, :, c]): reading logits from the DC
  coefficients is a global average pooling that loses nothing.
  """

  def _matrices(self, x):
    bijection.require_images(x, "DCT2D")
    return (jnp.asarray(dct_matrix(x.shape[1]), x.dtype),
            jnp.asarray(dct_matrix(x.shape[2]), x.dtype))

  def __call__(self, x, train=False):
    d_h, d_w = self._matrices(x)
    y = jnp.einsum("kh,bhwc,lw->bklc", d_h, x, d_w, precision=jax.lax.Precision.HIGHEST)
    return y, bijection.zero_logdet(x)

  def inverse(self, y, train=False):
    d_h, d_w = self._matrices(y)
    x = jnp.einsum("kh,bklc,lw->bhwc", d_h, y, d_w, precision=jax.lax.Precision.HIGHEST)
    return x, bijection.zero_logdet(y)
