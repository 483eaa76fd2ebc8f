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
plain products. Their gradients are the same two formulations with the offsets
mirrored (`jax.custom_vjp`): the transpose of a gather is a scatter and the
transpose of a scatter a gather, so the input gradient is a product with the
transposed kernel and the kernel gradient one product of the (re-gathered)
narrow side with the other, contracted over batch and positions.

Why: on the 2-core AVX-512 development CPU, XLA:CPU's native convolution and
especially its gradients ran at a fraction of the matrix-product rate (a
coupling network at level 1 of the MNIST preset: 111 ms forward+gradient for
2 GFLOP of forward work), and plain autodiff of the matrix formulation left
transposed products and padded copies behind. docs/performance.md has the
measurements. On GPUs and TPUs the native convolution is kept: the vendor
libraries are fast there and nothing was measured to say otherwise. Both
formulations compute the same function on every backend (tests/test_conv.py).

`compute_dtype` (e.g. bfloat16) sets the operand precision of every product,
forward and backward; products accumulate in the input's precision (float32),
and the kernel gradient is returned in the kernel's.
"""

import contextlib
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp


FORMULATIONS = ("matmul", "native")
_override: list[str] = []


def formulation() -> str:
  """'matmul' (this file's custom VJP) on CPUs, 'native' (XLA convolution) elsewhere,
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


def _offsets(size: int, sign: int):
  """(block index, row start, column start) into a map padded by size // 2 on each
  side, for reading it at offset sign * (i - r, j - r) per kernel tap (i, j)."""
  radius = size // 2
  for i in range(size):
    for j in range(size):
      yield i * size + j, radius + sign * (i - radius), radius + sign * (j - radius)


def _pad(x: jax.Array, radius: int) -> jax.Array:
  return jnp.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)))


def _gather(x: jax.Array, size: int, sign: int) -> jax.Array:
  """(B, H, W, C) -> (B, H, W, size*size*C): block t = x read at p + sign * d_t (zero outside)."""
  height, width = x.shape[1:3]
  padded = _pad(x, size // 2)
  return jnp.concatenate(
      [padded[:, row:row + height, col:col + width] for _, row, col in _offsets(size, sign)], -1)


def _scatter(z: jax.Array, size: int, sign: int) -> jax.Array:
  """(B, H, W, size*size*C) -> (B, H, W, C): sum over t of block t read at p + sign * d_t."""
  height, width = z.shape[1:3]
  channels = z.shape[-1] // (size * size)
  padded = _pad(z, size // 2)
  return sum(
      padded[:, row:row + height, col:col + width, t * channels:(t + 1) * channels]
      for t, row, col in _offsets(size, sign))


def _product(a: jax.Array, b: jax.Array, out_dtype) -> jax.Array:
  """(..., K) @ (K, N) as one 2D matrix product."""
  flat = a.reshape(-1, a.shape[-1])
  return jnp.dot(flat, b, preferred_element_type=out_dtype).reshape(*a.shape[:-1], b.shape[-1])


def _outer_product(a: jax.Array, b: jax.Array, out_dtype) -> jax.Array:
  """a^T b over every leading axis: (..., M), (..., N) -> (M, N)."""
  return jax.lax.dot_general(
      a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]), (((0,), (0,)), ((), ())),
      preferred_element_type=out_dtype)


def _scatter_kernel(kernel: jax.Array) -> jax.Array:
  """HWIO (k, k, I, O) -> (I, k*k*O), the K' of the scatter formulation."""
  size, _, channels_in, _ = kernel.shape
  return jnp.transpose(kernel, (2, 0, 1, 3)).reshape(channels_in, -1)


def _gathers(kernel_shape) -> bool:
  size, _, channels_in, channels_out = kernel_shape
  return size > 1 and channels_in <= channels_out


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _matmul_conv(x, kernel, operand_dtype):
  size, _, channels_in, channels_out = kernel.shape
  acc = x.dtype
  x, kernel = x.astype(operand_dtype), kernel.astype(operand_dtype)
  if size == 1:
    return _product(x, kernel[0, 0], acc)
  if _gathers(kernel.shape):
    return _product(_gather(x, size, 1), kernel.reshape(-1, channels_out), acc)
  return _scatter(_product(x, _scatter_kernel(kernel), acc), size, 1)


def _matmul_conv_forward(x, kernel, operand_dtype):
  return _matmul_conv(x, kernel, operand_dtype), (x.astype(operand_dtype), kernel)


def _matmul_conv_backward(operand_dtype, residuals, dy):
  x, kernel = residuals
  size, _, channels_in, channels_out = kernel.shape
  acc = dy.dtype
  dy, operands = dy.astype(operand_dtype), kernel.astype(operand_dtype)
  if size == 1:
    dx = _product(dy, operands[0, 0].T, acc)
    dkernel = _outer_product(x, dy, acc)[None, None]
  elif _gathers(kernel.shape):
    dx = _scatter(_product(dy, operands.reshape(-1, channels_out).T, acc), size, -1)
    dkernel = _outer_product(_gather(x, size, 1), dy, acc).reshape(kernel.shape)
  else:
    dz = _gather(dy, size, -1)
    dx = _product(dz, _scatter_kernel(operands).T, acc)
    dkernel = _outer_product(x, dz, acc).reshape(channels_in, size, size, channels_out)
    dkernel = jnp.transpose(dkernel, (1, 2, 0, 3))
  return dx.astype(acc), dkernel.astype(kernel.dtype)


_matmul_conv.defvjp(_matmul_conv_forward, _matmul_conv_backward)


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
