"""Model-level tests of the fi-RevNet: exact inverse, latent layout, transforms, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from invjax import models, parallel

import testing_utils


@pytest.fixture(scope="module")
def mnist_model_and_variables():
  model = models.fi_revnet_mnist()
  x = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3), minval=-1, maxval=1)
  variables = jax.jit(model.init)(jax.random.key(1), x)
  return model, testing_utils.perturbed(variables, jax.random.key(2), 0.01), x


@pytest.mark.parametrize("dtype,tolerance", [(jnp.float32, 1e-5), (jnp.float64, 1e-10)])
def test_mnist_preset_round_trip_with_perturbed_parameters(mnist_model_and_variables, dtype, tolerance):
  model, variables, x = mnist_model_and_variables
  with jax.enable_x64(dtype == jnp.float64):
    variables, x = testing_utils.cast(variables, dtype), x.astype(dtype)
    z, logdet = jax.jit(model.apply)(variables, x)
    x_back, inverse_logdet = jax.jit(lambda v, z: model.apply(v, z, method=model.inverse))(variables, z)
    assert z.shape == (4, 3072) and logdet.shape == (4,)
    assert np.max(np.abs(x_back - x)) <= tolerance
    np.testing.assert_allclose(inverse_logdet, -logdet, rtol=1e-4)


def test_latent_split_and_merge():
  z = jnp.arange(2 * 3072.0).reshape(2, 3072)
  z_s, z_n = models.split_latent(z, 10)
  assert z_s.shape == (2, 10) and z_n.shape == (2, 3062)
  np.testing.assert_array_equal(models.merge_latent(z_s, z_n), z)


def _tiny(**overrides):
  return models.fi_revnet_mnist(**{"steps_per_level": 1, "width": 8, **overrides})


@pytest.mark.parametrize("readout,position", [("center", (2, 2)), ("dct", (0, 0))])
def test_logits_are_read_at_the_documented_position(readout, position):
  model = _tiny(readout=readout)
  final = jax.random.normal(jax.random.key(0), (2, 4, 4, 48))
  emitted = [jax.random.normal(jax.random.key(1), (2, 16, 16, 6)),
             jax.random.normal(jax.random.key(2), (2, 8, 8, 12))]
  z = model.apply({}, final, emitted, method=model._flatten)
  np.testing.assert_array_equal(z[:, :10], final[:, position[0], position[1], :10])
  np.testing.assert_array_equal(z[:, -12 * 64:], emitted[1].reshape(2, -1))
  np.testing.assert_array_equal(z[:, 768: 768 + 6 * 256], emitted[0].reshape(2, -1))
  final_back, emitted_back = model.apply({}, z, method=model._unflatten)
  np.testing.assert_array_equal(final_back, final)
  jax.tree.map(np.testing.assert_array_equal, emitted_back, emitted)


def test_nuisance_parts_name_each_latent_in_z_n():
  model = _tiny()
  final = jax.random.normal(jax.random.key(0), (2, 4, 4, 48))
  emitted = [jax.random.normal(jax.random.key(1), (2, 16, 16, 6)),
             jax.random.normal(jax.random.key(2), (2, 8, 8, 12))]
  _, z_n = models.split_latent(model.apply({}, final, emitted, method=model._flatten), 10)
  parts = model.nuisance_parts()
  assert list(parts) == ["final", "split_1", "split_2"]
  np.testing.assert_array_equal(z_n[:, parts["split_1"]], emitted[0].reshape(2, -1))
  np.testing.assert_array_equal(z_n[:, parts["split_2"]], emitted[1].reshape(2, -1))
  assert parts["final"] == slice(0, 48 * 16 - 10) and parts["split_2"].stop == z_n.shape[1]
  assert list(_tiny(split=False).nuisance_parts()) == ["final"]


def test_logits_drive_the_latent_and_nothing_else_changes():
  model = _tiny()
  x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3), minval=-1, maxval=1)
  variables = testing_utils.perturbed(model.init(jax.random.key(1), x), jax.random.key(2), 0.05)
  z, _ = model.apply(variables, x)
  new_logits = z.at[:, :10].add(1.0)
  x_new, _ = model.apply(variables, new_logits, method=model.inverse)
  z_new, _ = model.apply(variables, x_new)
  np.testing.assert_allclose(z_new, new_logits, atol=1e-4)


@pytest.mark.parametrize("kwargs", [
    {"coupling": "affine", "permutation": "conv1x1"},
    {"permutation": "shuffle", "readout": "dct"},
    {"steps_per_level": (1, 2, 1), "dropout": 0.0},
])
def test_configurations_round_trip(kwargs):
  model = _tiny(**kwargs)
  x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3), minval=-1, maxval=1)
  variables = testing_utils.perturbed(jax.jit(model.init)(jax.random.key(1), x), jax.random.key(2), 0.05)
  z, _ = jax.jit(model.apply)(variables, x)
  x_back, _ = jax.jit(lambda v, z: model.apply(v, z, method=model.inverse))(variables, z)
  np.testing.assert_allclose(x_back, x, atol=1e-5)


def test_training_mode_needs_and_uses_dropout_keys():
  model = _tiny()
  x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3), minval=-1, maxval=1)
  variables = testing_utils.perturbed(model.init(jax.random.key(1), x), jax.random.key(2), 0.05)
  z_a, _ = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(3)})
  z_b, _ = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(4)})
  assert not np.allclose(z_a, z_b)


@pytest.mark.slow
def test_vmap_grad_and_sharding_agree_with_plain_calls():
  model = _tiny()
  x = jax.random.uniform(jax.random.key(0), (8, 32, 32, 3), minval=-1, maxval=1)
  variables = testing_utils.perturbed(model.init(jax.random.key(1), x), jax.random.key(2), 0.05)
  forward = jax.jit(model.apply)
  z, logdet = forward(variables, x)

  z_vmapped, _ = jax.vmap(lambda xi: model.apply(variables, xi[None]))(x)
  np.testing.assert_allclose(z_vmapped[:, 0], z, atol=1e-5)

  mesh = parallel.make_data_mesh()
  assert mesh.size == 8
  x_sharded = jax.device_put(x, parallel.batch_sharding(mesh))
  z_sharded, logdet_sharded = forward(variables, x_sharded)
  assert z_sharded.sharding.spec[0] == "data"
  np.testing.assert_allclose(z_sharded, z, atol=1e-5)
  np.testing.assert_allclose(logdet_sharded, logdet, rtol=1e-5)

  def nll(v, x):
    z, logdet = model.apply(v, x)
    return jnp.mean(0.5 * jnp.sum(z**2, -1) - logdet)

  grads = jax.jit(jax.grad(nll))(variables, x)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("shape", [(2, 32, 32), (32, 32, 3), (2, 28, 28, 3), (2, 32, 32, 1)])
def test_forward_rejects_wrong_image_shape(shape):
  model = _tiny()
  with pytest.raises(ValueError, match=r"expects images of shape \(batch, 32, 32, 3\)"):
    model.init(jax.random.key(0), jnp.zeros(shape))


def test_spatial_size_must_divide_by_two_to_the_levels():
  model = _tiny(image_shape=(36, 36, 3))
  with pytest.raises(ValueError, match="divisible by 2 \\*\\* num_levels = 8"):
    model.init(jax.random.key(0), jnp.zeros((1, 36, 36, 3)))


def test_inverse_rejects_latents_of_the_wrong_length():
  model = _tiny()
  x = jnp.zeros((1, 32, 32, 3))
  variables = model.init(jax.random.key(0), x)
  with pytest.raises(ValueError, match=r"latents of shape \(batch, 3072\)"):
    model.apply(variables, jnp.zeros((1, 3000)), method=model.inverse)


@pytest.mark.parametrize("kwargs,message", [
    ({"coupling": "spline"}, "coupling must be one of"),
    ({"num_classes": 49}, "num_classes=49"),
    ({"steps_per_level": (1, 1)}, "2 entries for 3 levels"),
])
def test_bad_configuration_is_rejected(kwargs, message):
  with pytest.raises(ValueError, match=message):
    _tiny(**kwargs).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def test_imagenet_preset_builds_and_reads_1000_logits():
  model = models.fi_revnet48_imagenet()
  images = jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), images)
  z, logdet = jax.eval_shape(model.apply, variables, images)
  assert z.shape == (2, 224 * 224 * 3) and logdet.shape == (2,)
  assert model.level_shapes() == ([], (7, 7, 3072))
