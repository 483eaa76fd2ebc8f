"""The one place that says how a convolution is computed.

Measured on the 2-core AVX-512 development CPU (jax 0.10.2, batch 128, 16x16
maps; `../shared/PERF.md` has the earlier measurements): a 1x1 convolution
written as a matrix product takes 4.4 ms forward against 9.6 ms for
`lax.conv_general_dilated`, and 26 ms against 56 ms with its gradient; for 3x3
kernels the native convolution wins (3-8 ms), while patch extraction followed by
one matrix product costs up to 100 ms when the input has 128 channels. So 1x1
kernels are matrix products and larger kernels native convolutions; both take
the same HWIO kernel.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


def conv2d_same(
    x: jax.Array, kernel: jax.Array, compute_dtype: jnp.dtype | None = None
) -> jax.Array:
  """Stride-1 'SAME' convolution of NHWC `x` with an HWIO `kernel` of odd size.

  `compute_dtype` (e.g. bfloat16) sets the operand precision; products are
  accumulated and returned in the input's precision.
  """
  out_dtype = x.dtype
  operand_dtype = compute_dtype or x.dtype
  x, kernel = x.astype(operand_dtype), kernel.astype(operand_dtype)
  if kernel.shape[:2] == (1, 1):
    return jnp.einsum("bhwi,io->bhwo", x, kernel[0, 0], preferred_element_type=out_dtype)
  return jax.lax.conv_general_dilated(
      x, kernel, (1, 1), "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      preferred_element_type=out_dtype,
  )


class Conv2D(nn.Module):
  """A bias-free stride-1 'SAME' convolution with float32 parameters."""

  features: int
  kernel_size: int = 3
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  compute_dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param(
        "kernel",
        self.kernel_init,
        (self.kernel_size, self.kernel_size, x.shape[-1], self.features),
        jnp.float32,
    )
    return conv2d_same(x, kernel, self.compute_dtype)
