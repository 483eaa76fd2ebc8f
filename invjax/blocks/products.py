r"""The matrix product of the matrix-product convolutions: a small matrix times a wide one.

Every product of `invjax.blocks.conv`'s matrix formulation has the form

    y = a @ x,   a (N, K) from a kernel (N, K at most a few hundred),
                 x (K, M) an activation in channels-major layout (M = B*H*W),

and its gradients are

    dx = a^T @ dy   (K, M),      da = dy @ x^T   (N, K), contracted over M.

XLA:CPU runs a product with bfloat16 operands and float32 output in its fast
bfloat16 kernels only when neither operand is transposed (row-major a and x),
or for dy @ x^T, where both operands are contiguous along the contracted M.
Any other form, including a transpose XLA folds into the product, and any
product asked for a bfloat16 result, is converted to a float32 product (seen in
the compiled programs of the MNIST preset's coupling network:
docs/performance.md), so products here always return float32 and are rounded
afterwards. Plain autodiff writes dx as a product with a
transposed a, and the transpose rule of a mixed-precision product multiplies
the float32 cotangent by a bfloat16 operand, so with bfloat16 operands the
backward pass ran as float32 products.

`reduced_precision_product` is the same product with a `jax.custom_vjp` whose
backward pass rounds the cotangent to the operand dtype and computes

    dx = a_t @ dy,   da = dy @ x^T,

with `a_t` = a^T given by the caller as its own array, built from the kernel
by a 4-d transpose that XLA does not fold back into the product. Products
accumulate in float32; da is returned in float32, dx in x's dtype.

`product` chooses: the custom VJP for operands narrower than 32 bits, plain
autodiff (which ignores `a_t`) otherwise, so float32 and float64 models keep
forward-mode autodiff (`jax.jacfwd`, used by the log-det tests).
"""

import functools

import jax
import jax.numpy as jnp


def uses_custom_gradient(operand_dtype) -> bool:
  """Whether products with operands of `operand_dtype` take `reduced_precision_product`."""
  return jnp.finfo(operand_dtype).bits < 32


def product(a: jax.Array, a_t: jax.Array, x: jax.Array, operand_dtype, out_dtype) -> jax.Array:
  """`a @ x` with operands in `operand_dtype`, accumulated in at least float32, returned in
  `out_dtype`; `a_t` is a^T (used by the reduced-precision gradient only)."""
  if uses_custom_gradient(operand_dtype):
    return reduced_precision_product(a, a_t, x, jnp.dtype(operand_dtype), jnp.dtype(out_dtype))
  return _accumulated_dot(a.astype(operand_dtype), x.astype(operand_dtype), out_dtype)


def _accumulated_dot(a, b, out_dtype):
  """a @ b accumulated in at least float32, then rounded to `out_dtype`."""
  accumulate = jnp.promote_types(jnp.float32, out_dtype)
  return jnp.dot(a, b, preferred_element_type=accumulate).astype(out_dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def reduced_precision_product(a, a_t, x, operand_dtype, out_dtype):
  """`product` whose gradient products take `operand_dtype` operands in fast layouts (module doc)."""
  del a_t
  return _accumulated_dot(a.astype(operand_dtype), x.astype(operand_dtype), out_dtype)


def _forward(a, a_t, x, operand_dtype, out_dtype):
  x_operand = x.astype(operand_dtype)
  y = _accumulated_dot(a.astype(operand_dtype), x_operand, out_dtype)
  # x's dtype travels as an empty array: residuals must be arrays.
  return y, (a_t, x_operand, jnp.zeros((0,), x.dtype))


def _backward(operand_dtype, out_dtype, residuals, dy):
  del out_dtype
  a_t, x_operand, x_dtype_marker = residuals
  dy = dy.astype(operand_dtype)
  dx = _accumulated_dot(a_t.astype(operand_dtype), dy, x_dtype_marker.dtype)
  accumulate = jnp.promote_types(jnp.float32, a_t.dtype)
  da = jax.lax.dot_general(dy, x_operand, (((1,), (1,)), ((), ())), preferred_element_type=accumulate)
  return da.astype(a_t.dtype), jnp.zeros_like(a_t), dx


reduced_precision_product.defvjp(_forward, _backward)
