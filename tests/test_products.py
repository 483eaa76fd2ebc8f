"""The reduced-precision product's custom VJP against plain autodiff, and the bfloat16 coupling
network (channels-major, bfloat16 activations, custom-VJP products) against float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import test_conv
from invjax.blocks import conv, coupling, products

TOLERANCES = test_conv.TOLERANCES
# The custom VJP rounds the cotangent to bfloat16 (8 significant bits, rounding error <= 2^-9)
# before both gradient products, where autodiff multiplies the float32 cotangent by the bfloat16
# operands; measured on the network below: gradients within 8e-3 of autodiff's, relative to each
# leaf's largest entry. An error in the VJP's formula would be of the order of the gradient.
CUSTOM_AGAINST_AUTODIFF_TOLERANCE = 2e-2
# Against float32, bfloat16 changes the function: ReLUs whose inputs lie within bfloat16 rounding
# of zero flip, and per-channel gradient sums cancel, so the gradients of this small network
# differ from float32's by up to 0.24 of a leaf's largest entry, as much with plain autodiff as
# with the custom VJP, and 0.19 with the previous (NHWC, autodiff) bfloat16 formulation; outputs
# differ by 5e-3.
AGAINST_FLOAT32_TOLERANCE = 0.35
OUTPUT_AGAINST_FLOAT32_TOLERANCE = 2e-2


@pytest.mark.parametrize("dtype,tolerance", TOLERANCES)
def test_reduced_precision_product_gradients_equal_autodiff(dtype, tolerance):
  """The custom VJP, run at full precision, against autodiff of the plain product."""
  with jax.enable_x64(dtype == jnp.float64):
    keys = jax.random.split(jax.random.key(0), 3)
    a = jax.random.normal(keys[0], (5, 7), dtype)
    x = jax.random.normal(keys[1], (7, 40), dtype)
    cotangent = jax.random.normal(keys[2], (5, 40), dtype)
    custom = lambda a, x: products.reduced_precision_product(a, a.T, x, jnp.dtype(dtype), jnp.dtype(dtype))
    plain = lambda a, x: jnp.dot(a, x)
    value_and_grads = lambda f: jax.jit(jax.value_and_grad(lambda a, x: jnp.vdot(cotangent, f(a, x)), (0, 1)))(a, x)
    test_conv._assert_relatively_close(value_and_grads(plain), value_and_grads(custom), tolerance)


def test_only_reduced_precision_takes_the_custom_gradient():
  assert products.uses_custom_gradient(jnp.bfloat16)
  assert not products.uses_custom_gradient(jnp.float32)
  assert not products.uses_custom_gradient(jnp.float64)
  # float32 convolutions keep forward-mode autodiff.
  x = jax.random.normal(jax.random.key(0), (1, 3, 3, 2))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 2, 4))
  with conv.use_formulation("matmul"):
    jacobian = jax.jacfwd(lambda x: conv.conv2d_same(x, kernel))(x)
  assert jacobian.shape == (1, 3, 3, 4, 1, 3, 3, 2)


@pytest.mark.parametrize("kernel_shape", test_conv.KERNEL_SHAPES)
def test_channels_major_layout_is_the_transposed_convolution(kernel_shape):
  x = jax.random.normal(jax.random.key(0), (2, 5, 6, kernel_shape[2]))
  kernel = jax.random.normal(jax.random.key(1), kernel_shape)
  for name in conv.FORMULATIONS:
    with conv.use_formulation(name):
      nhwc = conv.conv2d_same(x, kernel)
      cnhw = conv.conv2d_same(jnp.transpose(x, (3, 0, 1, 2)), kernel, layout="CNHW")
    np.testing.assert_allclose(jnp.transpose(cnhw, (1, 2, 3, 0)), nhwc, rtol=1e-5, atol=1e-5)


def _network_outputs_and_gradients(compute_dtype, formulation="matmul"):
  """Outputs, and gradients (parameters, input) of a loss, of a coupling network, dropout on."""
  network = coupling.CouplingNetwork(out_channels=6, width=32, compute_dtype=compute_dtype)
  keys = jax.random.split(jax.random.key(0), 4)
  x = jax.random.normal(keys[0], (4, 8, 8, 6))
  variables = network.init({"params": keys[1], "dropout": keys[2]}, x, train=True)
  # Perturb so that the zero-initialised last convolution passes gradients to the others.
  variables = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(keys[3], p.shape), variables)
  cotangent = jax.random.normal(keys[3], x.shape)
  apply = lambda variables, x: network.apply(variables, x, train=True, rngs={"dropout": keys[2]})
  gradients = jax.grad(lambda variables, x: jnp.vdot(cotangent, apply(variables, x)), (0, 1))
  with conv.use_formulation(formulation):
    return jax.jit(apply)(variables, x), jax.jit(gradients)(variables, x)


def test_bfloat16_network_custom_gradients_equal_autodiff_to_bfloat16_rounding(monkeypatch):
  _, custom = _network_outputs_and_gradients(jnp.bfloat16)
  monkeypatch.setattr(products, "uses_custom_gradient", lambda operand_dtype: False)
  _, autodiff = _network_outputs_and_gradients(jnp.bfloat16)
  test_conv._assert_relatively_close(autodiff, custom, CUSTOM_AGAINST_AUTODIFF_TOLERANCE)


@pytest.mark.parametrize("formulation", conv.FORMULATIONS)
def test_bfloat16_network_is_the_float32_network_to_bfloat16_precision(formulation):
  expected_outputs, expected = _network_outputs_and_gradients(None, formulation)
  outputs, actual = _network_outputs_and_gradients(jnp.bfloat16, formulation)
  test_conv._assert_relatively_close(expected_outputs, outputs, OUTPUT_AGAINST_FLOAT32_TOLERANCE)
  test_conv._assert_relatively_close(expected, actual, AGAINST_FLOAT32_TOLERANCE)
  # ... and not closer than bfloat16 can be: the products did run with bfloat16 operands.
  assert float(jnp.max(jnp.abs(outputs - expected_outputs))) > 1e-5 * float(jnp.max(jnp.abs(expected_outputs)))


def test_bfloat16_additive_coupling_inverts_to_float32_rounding():
  block = coupling.AdditiveCoupling(width=16, dropout=0.1, compute_dtype=jnp.bfloat16)
  x = jax.random.normal(jax.random.key(0), (3, 4, 4, 6))
  variables = block.init(jax.random.key(1), x)
  variables = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(2), p.shape), variables)
  rngs = {"dropout": jax.random.key(3)}
  y, _ = block.apply(variables, x, train=True, rngs=rngs)
  x_again, _ = block.apply(variables, y, train=True, rngs=rngs, method=block.inverse)
  assert y.dtype == jnp.float32
  assert float(jnp.max(jnp.abs(y - x))) > 1e-2  # the coupling does change x2
  np.testing.assert_allclose(x_again, x, rtol=0, atol=4 * float(jnp.finfo(jnp.float32).eps) * float(jnp.max(jnp.abs(y))))
