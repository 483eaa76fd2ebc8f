"""The one place that says how a convolution is computed.

A stride-1 'SAME' convolution with a k x k kernel is a sum of k*k matrix
products of shifted copies of the input. It can be computed in two ways, both
as one large matrix product per convolution:

  gather:  y = K^T patches(x)             patches(x) holds, per position p, the
                                          k*k inputs x[p + d] stacked
                                          (k*k*C_in rows);
  scatter: y = sum_d shift_d(K' x)        K' maps C_in to k*k*C_out outputs,
                                          output block d is read at p + d.

Gather makes a k*k times larger copy of the input, scatter of the output, so
the narrow side is the one copied: a coupling network's first convolution (few
channels in) gathers, its last (few channels out) scatters, and 1x1 kernels are
plain products. Activations are channels-major matrices (C, B*H*W), so every
product is a small kernel matrix times a wide activation
(`invjax.blocks.products`, which also holds the custom VJP of the bfloat16
path). With float32 or float64 operands autodiff differentiates the
formulation, forward and reverse mode: the transpose of a gather is a scatter
with mirrored offsets and vice versa, and the kernel gradient is one product of
the narrow side's copy with the other side, contracted over batch and positions.

Why: XLA:CPU's native convolution gradients are the weak point on the 2-core
AVX-512 development CPU (`../shared/PERF.md`; in one benchmark run the
separately compiled backward pass of the MNIST preset took 175 s with native
convolutions against 2.7 s with this formulation, docs/performance.md). On GPUs
and TPUs the native convolution is kept: the vendor libraries are fast there and
nothing was measured to say otherwise. Both formulations compute the same
function, in both layouts, on every backend (tests/test_conv.py,
tests/test_products.py).

Which formulation runs is decided per platform when a traced function is
lowered, not when it is traced: every convolution is a
`jax.lax.platform_dependent` of the two (`PLATFORM_FORMULATIONS`: matrix
products on "cpu", the native convolution on every other platform). So a
block embedded in any model and jitted, or exported with `jax.export` for
("cuda",), ("tpu",) or ("cpu", "cuda", "tpu") on a CPU host, gets on each
platform that platform's formulation (tests/test_export_platforms.py); only
the kept branch is compiled. `use_formulation(name)` forces one formulation
everywhere, for tests and benchmarks; its value is part of the trace context,
so `jax.jit` caches on it: a function jitted before the `with` block is traced
again inside it, never silently run with the other formulation.

`compute_dtype` (e.g. bfloat16) sets the operand precision of the products;
they accumulate in float32 and return `out_dtype` (default: the input's).
"""

import contextlib
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from invjax.blocks import products

FORMULATIONS = ("matmul", "native")
# The formulation per lowering platform; every platform not named takes DEFAULT_FORMULATION.
PLATFORM_FORMULATIONS = {"cpu": "matmul"}
DEFAULT_FORMULATION = "native"
# The formulation forced by `use_formulation`, or None: per platform. A jit-cache-sensitive context.
_forced = jax.make_user_context(None)


def formulation_for(platform: str) -> str:
  """The formulation a function lowered for `platform` (e.g. jax.default_backend()) computes with."""
  return _forced.value or PLATFORM_FORMULATIONS.get(platform, DEFAULT_FORMULATION)


@contextlib.contextmanager
def use_formulation(name: str):
  """Traces convolutions with formulation `name` on every platform inside the block (tests,
  benchmarks). Jitted functions called inside are traced again (module doc)."""
  if name not in FORMULATIONS:
    raise ValueError(f"Unknown convolution formulation {name!r}: use one of {FORMULATIONS}.")
  with _forced(name):
    yield


LAYOUTS = ("NHWC", "CNHW")


def conv2d_same(
    x: jax.Array,
    kernel: jax.Array,
    compute_dtype: jnp.dtype | None = None,
    *,
    layout: str = "NHWC",
    out_dtype: jnp.dtype | None = None,
) -> jax.Array:
  """Stride-1 'SAME' convolution of `x` with an HWIO `kernel` of odd size.

  `layout` is that of `x` and of the result: "NHWC", or channels-major "CNHW"
  (the coupling network's, in which every product of the matrix formulation
  reads and writes its operands without a transpose). `compute_dtype` (e.g.
  bfloat16) sets the operand precision; products accumulate in float32 and
  return `out_dtype` (default: the input's dtype).
  """
  size = kernel.shape[0]
  if kernel.ndim != 4 or kernel.shape[1] != size or size % 2 == 0:
    raise ValueError(f"conv2d_same needs an odd square HWIO kernel; got shape {kernel.shape}.")
  if layout not in LAYOUTS:
    raise ValueError(f"Unknown layout {layout!r}: use one of {LAYOUTS}.")
  operand_dtype = jnp.dtype(compute_dtype or x.dtype)
  out_dtype = jnp.dtype(out_dtype or x.dtype)
  branches = {name: functools.partial(_CONVOLUTIONS[name], operand_dtype=operand_dtype, out_dtype=out_dtype,
                                      layout=layout) for name in FORMULATIONS}
  if _forced.value:
    return branches[_forced.value](x, kernel)
  per_platform = {platform: branches[name] for platform, name in PLATFORM_FORMULATIONS.items()}
  return jax.lax.platform_dependent(x, kernel, **per_platform, default=branches[DEFAULT_FORMULATION])


def _native_conv(x, kernel, *, operand_dtype, out_dtype, layout):
  """XLA's convolution (1x1 kernels as a product), differentiated by autodiff."""
  accumulate = jnp.promote_types(jnp.float32, out_dtype)
  x, kernel = x.astype(operand_dtype), kernel.astype(operand_dtype)
  if kernel.shape[:2] == (1, 1) and layout == "NHWC":
    y = jnp.einsum("bhwi,io->bhwo", x, kernel[0, 0], preferred_element_type=accumulate)
  elif kernel.shape[:2] == (1, 1):  # the kernel matrix transposed as in `_matmul_conv`
    kernel_t = jnp.transpose(kernel, (3, 0, 1, 2)).reshape(kernel.shape[3], -1)
    y = jnp.einsum("oi,ibhw->obhw", kernel_t, x, preferred_element_type=accumulate)
  else:
    y = jax.lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME",
        dimension_numbers=(layout, "HWIO", layout),
        preferred_element_type=accumulate,
    )
  return y.astype(out_dtype)


# --- the matrix-product formulation ---------------------------------------------
# Everything runs in channels-major layout (C, B, H, W), viewed as (C, B*H*W)
# matrices: a shift then moves rows of W contiguous values (in NHWC it moved
# runs of C, 6 at level 1 of the MNIST preset, which XLA:CPU copies element by
# element), and every product is a small kernel matrix times a wide activation
# (`invjax.blocks.products`).


def _shifted_blocks(x_cm: jax.Array, size: int):
  """x_cm read at p + d_t, zero outside, for each tap t in row-major kernel order; x_cm is (C, B, H, W)."""
  radius = size // 2
  height, width = x_cm.shape[2:]
  padded = jnp.pad(x_cm, ((0, 0), (0, 0), (radius, radius), (radius, radius)))
  for i in range(size):
    for j in range(size):
      yield padded[:, :, i:i + height, j:j + width]


def _matmul_conv(x, kernel, *, operand_dtype, out_dtype, layout):
  """The matrix-product convolution of `x` in `layout`, computed channels-major."""
  x_cm = x if layout == "CNHW" else jnp.transpose(x, (3, 0, 1, 2))
  y_cm = _matmul_conv_cm(x_cm, kernel, operand_dtype, out_dtype)
  return y_cm if layout == "CNHW" else jnp.transpose(y_cm, (1, 2, 3, 0))


def _matmul_conv_cm(x_cm: jax.Array, kernel: jax.Array, operand_dtype, out_dtype) -> jax.Array:
  size, _, channels_in, channels_out = kernel.shape
  spatial = x_cm.shape[1:]
  if size == 1 or channels_in <= channels_out:  # gather: K^T (C_out, k*k*C_in) @ patches (k*k*C_in, B*H*W)
    if size == 1:
      patches = x_cm.reshape(channels_in, -1)
    else:
      patches = jnp.concatenate(list(_shifted_blocks(x_cm, size)), 0).reshape(size * size * channels_in, -1)
    # Kernel matrices by 4-d transposes, which XLA does not fold into the product (`products`).
    kernel_t = jnp.transpose(kernel, (3, 0, 1, 2)).reshape(channels_out, -1)
    y = products.product(kernel_t, kernel.reshape(-1, channels_out), patches, operand_dtype, out_dtype)
    return y.reshape(channels_out, *spatial)
  # scatter: z = K' x, (k*k*C_out, B*H*W), then the shifted sum of its blocks
  kernel_taps = jnp.transpose(kernel, (0, 1, 3, 2)).reshape(-1, channels_in)
  kernel_taps_t = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(channels_in, -1)
  z = products.product(kernel_taps, kernel_taps_t, x_cm.reshape(channels_in, -1), operand_dtype, out_dtype)
  z = z.reshape(size * size * channels_out, *spatial)
  return _pairwise_sum([block[t * channels_out:(t + 1) * channels_out]
                        for t, block in enumerate(_shifted_blocks(z, size))])


def _pairwise_sum(terms):
  """The sum of `terms` as a balanced tree (rounding error growing with log2 of their number)."""
  while len(terms) > 1:
    terms = [sum(terms[i:i + 2]) for i in range(0, len(terms), 2)]
  return terms[0]


_CONVOLUTIONS = {"matmul": _matmul_conv, "native": _native_conv}


class Conv2D(nn.Module):
  """A bias-free stride-1 'SAME' convolution with float32 HWIO parameters (`conv2d_same`)."""

  features: int
  kernel_size: int = 3
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  compute_dtype: jnp.dtype | None = None
  layout: str = "NHWC"
  out_dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels_in = x.shape[self.layout.index("C")]
    kernel = self.param(
        "kernel",
        self.kernel_init,
        (self.kernel_size, self.kernel_size, channels_in, self.features),
        jnp.float32,
    )
    return conv2d_same(x, kernel, self.compute_dtype, layout=self.layout, out_dtype=self.out_dtype)
