"""The coupling network's fast paths against plain autodiff: the matrix-product convolution
against XLA's convolution, and the fused ActNorm + ReLU + dropout (custom JVP) against the plain
expression; gradients in float32 and float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import test_blocks
from invjax.blocks import conv, coupling

TOLERANCES = [(jnp.float32, 1e-5), (jnp.float64, 1e-10)]
KERNEL_SHAPES = [(3, 3, 6, 16), (3, 3, 16, 6), (3, 3, 5, 5), (1, 1, 8, 12), (5, 5, 4, 3)]


def _assert_relatively_close(expected, actual, tolerance):
  """Every leaf within `tolerance` of the expected one, relative to its largest entry."""
  for want, got in zip(jax.tree.leaves(expected), jax.tree.leaves(actual), strict=True):
    assert want.dtype == got.dtype
    scale = float(jnp.max(jnp.abs(want))) or 1.0
    np.testing.assert_allclose(got / scale, want / scale, atol=tolerance, rtol=0)


def _both_formulations(function, *args):
  results = []
  for name in ("native", "matmul"):
    with conv.use_formulation(name):
      results.append(jax.jit(function)(*args))
  return results


def _random_like(key, tree):
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=False)])


@pytest.mark.parametrize("kernel_shape", KERNEL_SHAPES)
@pytest.mark.parametrize("dtype,tolerance", TOLERANCES)
def test_convolution_and_its_gradients_equal_autodiff_of_xla_convolution(kernel_shape, dtype, tolerance):
  with jax.enable_x64(dtype == jnp.float64):
    key_x, key_kernel, key_cotangent = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(key_x, (2, 5, 6, kernel_shape[2]), dtype)
    kernel = jax.random.normal(key_kernel, kernel_shape, dtype)
    cotangent = jax.random.normal(key_cotangent, (2, 5, 6, kernel_shape[3]), dtype)
    value_and_grads = lambda x, k: jax.value_and_grad(
        lambda x, k: jnp.vdot(cotangent, conv.conv2d_same(x, k)), (0, 1))(x, k)
    expected, actual = _both_formulations(value_and_grads, x, kernel)
    _assert_relatively_close(expected, actual, tolerance)


@pytest.mark.slow  # a compile per block, dtype and formulation: minutes on the 2-core CPU
@pytest.mark.parametrize("case", test_blocks.REGISTRY, ids=test_blocks.IDS)
@pytest.mark.parametrize("dtype,tolerance", TOLERANCES)
def test_block_gradients_equal_autodiff_of_xla_convolution(case, dtype, tolerance):
  """Gradients of both directions of every block, in training mode (dropout on), with respect
  to parameters and input."""
  with jax.enable_x64(dtype == jnp.float64):
    block, variables, x = test_blocks._setup(case, dtype)
    rngs = {"dropout": jax.random.key(7)}
    outputs = block.apply(variables, x, train=True, rngs=rngs)
    cotangents = _random_like(jax.random.key(8), outputs)

    def gradients(variables, x):
      def pulled_back(variables, x):
        forward = block.apply(variables, x, train=True, rngs=rngs)
        inverse = block.apply(variables, forward[0], method=block.inverse, train=True, rngs=rngs)
        return sum(jnp.vdot(c, o) for c, o in zip(jax.tree.leaves(cotangents), jax.tree.leaves(forward), strict=False)) + (
            jnp.vdot(cotangents[0], inverse[0]) + jnp.vdot(cotangents[1], inverse[1]))
      return jax.grad(pulled_back, (0, 1))(variables, x)

    expected, actual = _both_formulations(gradients, variables, x)
    _assert_relatively_close(expected, actual, tolerance)


def test_reduced_precision_operands_keep_float32_outputs_and_gradients():
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 6))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 6, 16))
  loss = lambda x, k: jnp.sum(conv.conv2d_same(x, k, jnp.bfloat16) ** 2)
  for name in conv.FORMULATIONS:
    with conv.use_formulation(name):
      y = conv.conv2d_same(x, kernel, jnp.bfloat16)
      grads = jax.grad(loss, (0, 1))(x, kernel)
    assert y.dtype == jnp.float32
    assert all(g.dtype == jnp.float32 for g in grads)
    np.testing.assert_allclose(y, conv.conv2d_same(x, kernel), rtol=0.05, atol=0.1)


def test_bad_kernel_and_formulation_are_rejected():
  with pytest.raises(ValueError, match="odd square HWIO kernel"):
    conv.conv2d_same(jnp.zeros((1, 4, 4, 2)), jnp.zeros((2, 2, 2, 2)))
  with pytest.raises(ValueError, match="Unknown convolution formulation"):
    with conv.use_formulation("winograd"):
      pass


@pytest.mark.parametrize("dropout", [True, False])
@pytest.mark.parametrize("dtype,tolerance", TOLERANCES)
def test_fused_actnorm_relu_dropout_gradients_equal_autodiff(dropout, dtype, tolerance):
  """The coupling network's fused ActNorm + ReLU + dropout against the plain expression."""
  with jax.enable_x64(dtype == jnp.float64):
    keys = jax.random.split(jax.random.key(0), 5)
    y = jax.random.normal(keys[0], (3, 4, 4, 8), dtype)
    bias, log_scale = 0.5 * jax.random.normal(keys[1], (2, 8), dtype)
    keep = jax.random.bernoulli(keys[2], 0.7, y.shape) if dropout else None
    cotangent = jax.random.normal(keys[3], y.shape, dtype)

    def plain(y, bias, log_scale):
      u = (y + bias) * jnp.exp(log_scale)
      return jax.nn.relu(jnp.where(keep, u / 0.7, 0) if dropout else u)

    fused = lambda y, bias, log_scale: coupling.normalise_relu_dropout(y, bias, log_scale, keep, 0.7)
    grads = lambda f: jax.jit(jax.value_and_grad(lambda *a: jnp.vdot(cotangent, f(*a)), (0, 1, 2)))(
        y, bias, log_scale)
    _assert_relatively_close(grads(plain), grads(fused), tolerance)
