"""The one place that says how a convolution is computed.

A stride-1 'SAME' convolution with a k x k kernel is a sum of k*k matrix
products of shifted copies of the input. It can be computed in two ways, both
as one large matrix product per convolution:

  gather:  y = patches(x) @ K             patches(x) holds, per position p, the
                                          k*k inputs x[p + d] side by side
                                          (k*k*C_in wide);
  scatter: y = sum_d shift_d(x @ K')      K' maps C_in to k*k*C_out outputs,
                                          output block d is read at p + d.

Gather makes a k*k times wider copy of the input, scatter of the output, so the
narrow side is the one copied: a coupling network's first convolution (few
channels in) gathers, its last (few channels out) scatters, and 1x1 kernels are
plain products. Autodiff differentiates them (forward and reverse mode): the
transpose of a gather is a scatter with mirrored offsets and vice versa, and the
kernel gradient is one product of the narrow side's copy with the other side,
contracted over batch and positions. A custom VJP computing exactly that
measured no faster and would break forward mode (`jax.jacfwd`).

Why: XLA:CPU's native convolution gradients are the weak point on the 2-core
AVX-512 development CPU (`../shared/PERF.md`; in one benchmark run the
separately compiled backward pass of the MNIST preset took 175 s with native
convolutions against 2.7 s with this formulation, docs/performance.md). On GPUs
and TPUs the native convolution is kept: the vendor libraries are fast there and
nothing was measured to say otherwise. Both formulations compute the same
function on every backend (tests/test_conv.py).

`compute_dtype` (e.g. bfloat16) sets the operand precision of the products;
they accumulate and return in the input's precision (float32).
"""

import contextlib

import flax.linen as nn
import jax
import jax.numpy as jnp


FORMULATIONS = ("matmul", "native")
_override: list[str] = []


def formulation() -> str:
  """'matmul' (matrix products) on CPUs, 'native' (XLA convolution) elsewhere,
  unless `use_formulation` says otherwise."""
  if _override:
    return _override[-1]
  return "matmul" if jax.default_backend() == "cpu" else "native"


@contextlib.contextmanager
def use_formulation(name: str):
  """Traces convolutions with formulation `name` inside the block (tests, benchmarks)."""
  if name not in FORMULATIONS:
    raise ValueError(f"Unknown convolution formulation {name!r}: use one of {FORMULATIONS}.")
  _override.append(name)
  try:
    yield
  finally:
    _override.pop()


def conv2d_same(
    x: jax.Array, kernel: jax.Array, compute_dtype: jnp.dtype | None = None
) -> jax.Array:
  """Stride-1 'SAME' convolution of NHWC `x` with an HWIO `kernel` of odd size.

  `compute_dtype` (e.g. bfloat16) sets the operand precision; products are
  accumulated and returned in the input's precision.
  """
  size = kernel.shape[0]
  if kernel.ndim != 4 or kernel.shape[1] != size or size % 2 == 0:
    raise ValueError(f"conv2d_same needs an odd square HWIO kernel; got shape {kernel.shape}.")
  operand_dtype = jnp.dtype(compute_dtype or x.dtype)
  if formulation() == "native":
    return _native_conv(x, kernel, operand_dtype)
  return _matmul_conv(x, kernel, operand_dtype)


def _native_conv(x, kernel, operand_dtype):
  """XLA's convolution (1x1 kernels as a product), differentiated by autodiff."""
  out_dtype = x.dtype
  x, kernel = x.astype(operand_dtype), kernel.astype(operand_dtype)
  if kernel.shape[:2] == (1, 1):
    return jnp.einsum("bhwi,io->bhwo", x, kernel[0, 0], preferred_element_type=out_dtype)
  return jax.lax.conv_general_dilated(
      x, kernel, (1, 1), "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      preferred_element_type=out_dtype,
  )


# --- the matrix-product formulation ---------------------------------------------
# The narrow side is shifted in channels-major layout (C, B, H, W): each shift then
# moves rows of W contiguous values, where in NHWC it moved runs of C (6 at level 1
# of the MNIST preset), which XLA:CPU copies element by element.


def _shifted_blocks(x_cm: jax.Array, size: int):
  """x_cm read at p + d_t, zero outside, for each tap t in row-major kernel order; x_cm is (C, B, H, W)."""
  radius = size // 2
  height, width = x_cm.shape[2:]
  padded = jnp.pad(x_cm, ((0, 0), (0, 0), (radius, radius), (radius, radius)))
  for i in range(size):
    for j in range(size):
      yield padded[:, :, i:i + height, j:j + width]


def _matmul_conv(x: jax.Array, kernel: jax.Array, operand_dtype) -> jax.Array:
  size, _, channels_in, channels_out = kernel.shape
  acc = x.dtype
  batch, height, width, _ = x.shape
  x, kernel = x.astype(operand_dtype), kernel.astype(operand_dtype)
  positions = x.reshape(-1, channels_in)
  if size == 1:
    y = jnp.dot(positions, kernel[0, 0], preferred_element_type=acc)
  elif channels_in <= channels_out:  # gather: patches (k*k*C_in, B*H*W) @ K
    x_cm = jnp.transpose(x, (3, 0, 1, 2))
    patches = jnp.concatenate(list(_shifted_blocks(x_cm, size)), 0)
    y = jax.lax.dot_general(
        patches.reshape(size * size * channels_in, -1), kernel.reshape(-1, channels_out),
        (((0,), (0,)), ((), ())), preferred_element_type=acc)
  else:  # scatter: z = K'^T x, (k*k*C_out, B*H*W), then the shifted sum of its blocks
    kernel_cm = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(channels_in, -1)
    z = jax.lax.dot_general(kernel_cm, positions, (((0,), (1,)), ((), ())), preferred_element_type=acc)
    z = z.reshape(size * size * channels_out, batch, height, width)
    y_cm = sum(block[t * channels_out:(t + 1) * channels_out] for t, block in enumerate(_shifted_blocks(z, size)))
    return jnp.transpose(y_cm, (1, 2, 3, 0))
  return y.reshape(batch, height, width, channels_out)


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
