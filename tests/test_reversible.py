"""Reversible backpropagation and scanned flow steps give what plain autodiff and unrolled steps give."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mnist_ice
from invjax import blocks, data, models, parallel, train

import testing_utils

PERMUTATIONS = ("reverse", "shuffle", "conv1x1")
COUPLINGS = ("additive", "affine")


def _max_relative_error(tree, reference) -> float:
  errors = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30)), tree, reference)
  return max(jax.tree.leaves(errors))


def _gradients(block, variables, x, key):
  """d/d(params, x) of a loss that reads every output entry and the log-det, in training mode."""

  def loss(variables, x):
    y, logdet = block.apply(variables, x, train=True, rngs={"dropout": key})
    return jnp.sum(jnp.sin(y) * jnp.cos(3.0 * y)) + 0.1 * jnp.sum(jnp.tanh(logdet))

  return jax.jit(jax.grad(loss, argnums=(0, 1)))(variables, x)


def _flow_steps_gradients(permutation, coupling, dropout, dtype, backprops=("autodiff", "reversible")):
  """Gradients of FlowSteps with perturbed parameters, one for each of `backprops`."""
  make = lambda backprop: blocks.FlowSteps(num_steps=3, permutation=permutation, coupling=coupling, width=8,
                                           dropout=dropout, backprop=backprop)
  x = 1.5 * jax.random.normal(jax.random.key(0), (4, 4, 4, 6))
  variables = testing_utils.perturbed(jax.jit(make("autodiff").init)(jax.random.key(1), x), jax.random.key(2), 0.05)
  with jax.enable_x64(dtype == jnp.float64):
    variables, x = testing_utils.cast(variables, dtype), x.astype(dtype)
    return tuple(_gradients(make(backprop), variables, x, jax.random.key(3)) for backprop in backprops)


def _float64_cases():
  """Every permutation, coupling and dropout rate. The fast suite runs six, in which each permutation
  and each coupling meets both rates; the other six are `slow`."""
  for index, (permutation, coupling) in enumerate(itertools.product(PERMUTATIONS, COUPLINGS)):
    fast_dropout = (0.0, 0.3)[(index + index // 2) % 2]
    for dropout in (0.0, 0.3):
      yield pytest.param(permutation, coupling, dropout, marks=() if dropout == fast_dropout else pytest.mark.slow)


@pytest.mark.parametrize("permutation,coupling,dropout", _float64_cases())
def test_reversible_gradients_equal_autodiff_in_float64(permutation, coupling, dropout):
  expected, actual = _flow_steps_gradients(permutation, coupling, dropout, jnp.float64)
  assert _max_relative_error(actual, expected) <= 1e-9
  assert all(np.any(leaf != 0) for leaf in jax.tree.leaves(expected[0]))


@pytest.mark.parametrize("permutation,coupling", [("reverse", "additive"), ("conv1x1", "affine")])
def test_reversible_gradients_equal_autodiff_in_float32(permutation, coupling):
  expected, actual = _flow_steps_gradients(permutation, coupling, 0.3, jnp.float32)
  assert _max_relative_error(actual, expected) <= 1e-4


@pytest.mark.parametrize("permutation,coupling", [("reverse", "additive"), ("conv1x1", "affine")])
@pytest.mark.parametrize("dtype,tolerance", [(jnp.float32, 1e-6), (jnp.float64, 1e-12)])
def test_remat_gradients_equal_autodiff(permutation, coupling, dtype, tolerance):
  expected, actual = _flow_steps_gradients(permutation, coupling, 0.3, dtype, ("autodiff", "remat"))
  assert _max_relative_error(actual, expected) <= tolerance


@pytest.mark.slow
def test_remat_and_reversible_keep_fewer_activations_than_autodiff():
  """XLA's count of the buffers live while the gradient is computed (besides its arguments and outputs)."""
  x = jnp.zeros((16, 16, 16, 1))
  make = lambda backprop: models.FiRevNet(image_shape=(16, 16, 1), num_classes=8, num_levels=2,
                                          steps_per_level=6, width=32, backprop=backprop)
  variables = jax.jit(make("autodiff").init)(jax.random.key(0), x)

  def temporary_bytes(backprop):
    def loss(variables):
      z, logdet = make(backprop).apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
      return jnp.sum(z**2) + jnp.sum(logdet)
    return jax.jit(jax.grad(loss)).lower(variables).compile().memory_analysis().temp_size_in_bytes

  autodiff, remat, reversible = (temporary_bytes(backprop) for backprop in ("autodiff", "remat", "reversible"))
  assert remat < autodiff / 3
  assert reversible < autodiff / 3


@pytest.mark.parametrize("dtype,tolerance", [pytest.param(jnp.float32, 1e-4, marks=pytest.mark.slow), (jnp.float64, 1e-9)])
def test_reversible_gradients_of_the_fi_revnet_on_a_sharded_batch(dtype, tolerance):
  make = lambda backprop: models.FiRevNet(image_shape=(8, 8, 2), num_classes=3, num_levels=2, steps_per_level=3,
                                          width=8, coupling="affine", permutation="conv1x1", backprop=backprop)
  mesh = parallel.make_data_mesh()
  assert mesh.size == 8
  x = jax.random.uniform(jax.random.key(0), (8, 8, 8, 2), minval=-1, maxval=1)
  variables = testing_utils.perturbed(jax.jit(make("autodiff").init)(jax.random.key(1), x), jax.random.key(2), 0.05)
  with jax.enable_x64(dtype == jnp.float64):
    variables = testing_utils.cast(variables, dtype)
    x = jax.device_put(x.astype(dtype), parallel.batch_sharding(mesh))
    expected = _gradients(make("autodiff"), variables, x, jax.random.key(3))
    actual = _gradients(make("reversible"), variables, x, jax.random.key(3))
  assert actual[1].sharding.spec[0] == "data"
  assert _max_relative_error(actual, expected) <= tolerance


@pytest.mark.parametrize("permutation", PERMUTATIONS)
def test_scanned_steps_equal_unrolled_steps_on_the_same_parameters(permutation):
  steps = blocks.FlowSteps(num_steps=3, permutation=permutation, coupling="affine", width=8, first_seed=7)
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 6))
  variables = testing_utils.perturbed(steps.init(jax.random.key(1), x), jax.random.key(2), 0.2)
  y, logdet = steps.apply(variables, x)

  unrolled_y, unrolled_logdet = x, jnp.zeros(2)
  for i in range(3):
    step = blocks.FlowStep(permutation=permutation, coupling="affine", width=8, seed=7 + i)
    step_params = jax.tree.map(lambda leaf, i=i: leaf[i], variables["params"]["steps"])
    unrolled_y, step_logdet = step.apply({"params": step_params}, unrolled_y)
    unrolled_logdet += step_logdet
  # The same float32 arithmetic, fused differently inside and outside the scan: it agrees to a few ulps of
  # each entry (entries reach 20 here; on an AMD EPYC host one of 7.55 differed by 1.1e-5, 1.5e-6 relative).
  np.testing.assert_allclose(y, unrolled_y, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(logdet, unrolled_logdet, rtol=1e-5, atol=1e-4)


def test_initialisation_normalises_each_step_input_like_an_unrolled_chain():
  steps = blocks.FlowSteps(num_steps=2, width=8)
  x = 3.0 + 2.0 * jax.random.normal(jax.random.key(0), (16, 4, 4, 4))
  variables = steps.init(jax.random.key(1), x)
  first = blocks.FlowStep(width=8, seed=0)
  first_params = jax.tree.map(lambda leaf: leaf[0], variables["params"]["steps"])
  normalised, _ = first.apply({"params": first_params}, x, method=lambda module, x: module.actnorm(x))
  np.testing.assert_allclose(jnp.mean(normalised, (0, 1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(jnp.std(normalised, (0, 1, 2)), 1.0, atol=1e-4)


@pytest.mark.slow  # 130 s on the 2-core CPU (three train steps compiled); fast: the gradient tests above
def test_training_with_either_backprop_ends_with_the_same_parameters():
  final = {}
  for backprop in ("autodiff", "remat", "reversible"):
    config = mnist_ice.get_config("tiny")
    config.model.update(steps_per_level=2, width=16, backprop=backprop)
    config.batch_size = 16
    parts = train.build(config, steps_per_epoch=100)
    batches = data.load("mnist", "train", batch_size=16, seed=0, num_epochs=1, dequantize=False)
    batch = next(iter(batches))
    state = jax.jit(parts.create_state)(batch["image"], jax.random.key(0))
    step = jax.jit(train.make_train_step(config, parts.model, parts.nuisance_classifier, parts.flow_tx,
                                         parts.nuisance_tx))
    for _, batch in zip(range(3), batches, strict=False):
      state, metrics = step(state, batch, jax.random.key(1))
    final[backprop] = state.flow
  # Adamax moves every parameter by about the learning rate per step whatever its
  # gradient's size, so a rounding difference in a near-zero gradient shows up
  # at that scale: the runs agree to a small fraction of one step.
  for backprop in ("remat", "reversible"):
    difference = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), final[backprop], final["autodiff"])
    assert max(jax.tree.leaves(difference)) <= 0.01 * config.optimizer.learning_rate, backprop
  initial = jax.jit(parts.create_state)(batch["image"], jax.random.key(0)).flow
  assert _max_relative_error(final["autodiff"], initial) > 1e-3  # the steps moved the parameters
