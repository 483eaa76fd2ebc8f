"""Metameric sampling: logits preserved, batching, sharding, grids and interpolations."""

import jax
import numpy as np
import pytest

from invjax import metamers, models, parallel

import testing_utils


@pytest.fixture(scope="module")
def model_variables_and_images():
  model = models.fi_revnet_mnist(steps_per_level=1, width=8)
  x = jax.random.uniform(jax.random.key(0), (5, 32, 32, 3), minval=-1, maxval=1)
  variables = testing_utils.perturbed(jax.jit(model.init)(jax.random.key(1), x), jax.random.key(2), 0.03)
  return model, variables, x, x[::-1]


def test_metamers_have_the_logits_of_their_logit_source(model_variables_and_images):
  model, variables, x_logit_src, x_nuisance_src = model_variables_and_images
  x_met = metamers.metameric_sample(model, variables, x_logit_src, x_nuisance_src)
  assert x_met.shape == (5, 32, 32, 3)
  z_s_met, z_n_met = metamers.encode(model, variables, x_met)
  z_s_src, _ = metamers.encode(model, variables, x_logit_src)
  _, z_n_src = metamers.encode(model, variables, x_nuisance_src)
  assert np.max(np.abs(z_s_met - z_s_src)) <= 1e-4
  assert np.max(np.abs(z_n_met - z_n_src)) <= 1e-4


def test_vmapped_batch_equals_one_example_at_a_time(model_variables_and_images):
  model, variables, x_logit_src, x_nuisance_src = model_variables_and_images
  batched = metamers.metameric_sample(model, variables, x_logit_src, x_nuisance_src)
  looped = [
      metamers.metameric_sample(model, variables, a[None], b[None])[0] for a, b in zip(x_logit_src, x_nuisance_src, strict=False)
  ]
  np.testing.assert_allclose(batched, np.stack(looped), atol=1e-5)


def test_compiles_once_per_model(model_variables_and_images):
  model, variables, x_logit_src, x_nuisance_src = model_variables_and_images
  metamers.metameric_sample(model, variables, x_logit_src, x_nuisance_src)
  compiled = metamers._metamer_batch._cache_size()
  equal_model = models.fi_revnet_mnist(steps_per_level=1, width=8)
  metamers.metameric_sample(equal_model, variables, x_nuisance_src, x_logit_src)
  assert metamers._metamer_batch._cache_size() == compiled


def test_sharded_over_eight_devices_equals_unsharded(model_variables_and_images):
  model, variables, x_logit_src, x_nuisance_src = model_variables_and_images
  mesh = parallel.make_data_mesh()
  assert mesh.size == 8  # conftest's virtual CPU devices; the batch of 5 needs padding.
  unsharded = metamers.metameric_sample(model, variables, x_logit_src, x_nuisance_src)
  sharded = metamers.metameric_sample(model, variables, x_logit_src, x_nuisance_src, mesh=mesh)
  assert sharded.shape == unsharded.shape
  np.testing.assert_allclose(sharded, unsharded, atol=1e-5)


def test_grid_holds_every_pair(model_variables_and_images):
  model, variables, x, _ = model_variables_and_images
  logit_srcs, nuisance_srcs = x[:3], x[3:]
  grid = metamers.metamer_grid(model, variables, logit_srcs, nuisance_srcs, mesh=parallel.make_data_mesh())
  assert grid.shape == (3, 2, 32, 32, 3)
  every_pair = (np.repeat(logit_srcs, 2, axis=0), np.tile(nuisance_srcs, (3, 1, 1, 1)))
  pairs = metamers.metameric_sample(model, variables, *every_pair)
  np.testing.assert_allclose(grid.reshape(6, 32, 32, 3), pairs, atol=1e-5)


def test_interpolation_runs_from_the_source_to_the_metamer_with_fixed_logits(model_variables_and_images):
  model, variables, x_a, x_b = model_variables_and_images
  paths = metamers.nuisance_interpolation(model, variables, x_a, x_b, num_steps=4)
  assert paths.shape == (5, 4, 32, 32, 3)
  np.testing.assert_allclose(paths[:, 0], x_a, atol=1e-4)
  np.testing.assert_allclose(paths[:, -1], metamers.metameric_sample(model, variables, x_a, x_b), atol=1e-5)
  z_s_path, _ = metamers.encode(model, variables, paths.reshape(20, 32, 32, 3))
  z_s_a, _ = metamers.encode(model, variables, x_a)
  assert np.max(np.abs(z_s_path.reshape(5, 4, 10) - z_s_a[:, None])) <= 1e-4


def test_vector_models_get_metamers_of_their_own_shape():
  model = models.FiRevNet(
      image_shape=(1, 1, 12), num_classes=2, num_levels=1, squeeze=False, split=False, steps_per_level=2, width=8
  )
  x = jax.random.normal(jax.random.key(0), (3, 1, 1, 12))
  variables = testing_utils.perturbed(jax.jit(model.init)(jax.random.key(1), x), jax.random.key(2), 0.05)
  x_met = metamers.metameric_sample(model, variables, x, x[::-1])
  assert x_met.shape == (3, 1, 1, 12)
  z_s_met, _ = metamers.encode(model, variables, x_met)
  np.testing.assert_allclose(z_s_met, metamers.encode(model, variables, x)[0], atol=1e-5)


def test_bad_inputs_are_rejected_with_what_to_do(model_variables_and_images):
  model, variables, x, _ = model_variables_and_images
  with pytest.raises(ValueError, match=r"shape \(batch, 32, 32, 3\)"):
    metamers.metameric_sample(model, variables, x[..., :1], x[..., :1])
  with pytest.raises(ValueError, match="metamer_grid"):
    metamers.metameric_sample(model, variables, x, x[:2])
  with pytest.raises(ValueError, match="at least 2"):
    metamers.nuisance_interpolation(model, variables, x, x, num_steps=1)
  with pytest.raises(TypeError, match="invariance_attack"):
    metamers.metameric_sample(models.CNN(), {}, x, x)
