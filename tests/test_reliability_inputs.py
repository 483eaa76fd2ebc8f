"""Inputs no block can map end in one-line ValueErrors that say what is expected; ActNorm's
log-det and initialisation stay finite and exact whatever the input (issue 23)."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from invjax import blocks, models

_IMAGES = jax.random.uniform(jax.random.key(1), (4, 32, 32, 3), minval=-1.0, maxval=1.0)


def _fi_revnet(x, **settings):
  model = models.FiRevNet(image_shape=(32, 32, 3), **{"num_levels": 2, "steps_per_level": 1, "width": 8,
                                                      **settings})
  return model.apply(model.init(jax.random.key(0), x), x)


@pytest.mark.parametrize("x, settings, message", [
    (_IMAGES.astype(jnp.bfloat16), {}, "float32 images in \\[-1, 1\\]; got bfloat16: convert"),
    ((_IMAGES * 100).astype(jnp.uint8), {}, "floating point inputs; got uint8"),
    (_IMAGES[:0], {}, "at least one example"),
    (_IMAGES, {"steps_per_level": 0}, "steps_per_level=0 must be an integer >= 1"),
    (_IMAGES, {"num_levels": 0}, "num_levels=0 must be an integer >= 1"),
])
def test_fi_revnet_refuses_inputs_and_settings_it_cannot_map(x, settings, message):
  with pytest.raises(ValueError, match=message) as error:
    _fi_revnet(x, **settings)
  assert "\n" not in str(error.value)


@pytest.mark.parametrize("shape, width, message", [
    ((2, 4, 4, 0), 8, "channels on the last axis; got an array of shape \\(2, 4, 4, 0\\)"),
    ((2, 4, 4, 4), 0, "width=0\\): the coupling network's width must be an integer >= 1"),
])
def test_couplings_refuse_no_channels_and_no_width(shape, width, message):
  for block in (blocks.AdditiveCoupling(width=width), blocks.AffineCoupling(width=width)):
    with pytest.raises(ValueError, match=message):
      block.init(jax.random.key(0), jnp.zeros(shape))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_actnorm_log_det_is_float32_and_inverts_exactly_in_any_float_dtype(dtype):
  x = (3.0 * _IMAGES).astype(dtype)
  block = blocks.ActNorm()
  variables = block.init(jax.random.key(0), x)
  y, logdet = block.apply(variables, x)
  _, inverse_logdet = block.apply(variables, y, method=block.inverse)
  expected = 32 * 32 * jnp.sum(variables["params"]["log_scale"])
  assert logdet.dtype == inverse_logdet.dtype == jnp.float32
  assert np.all(np.isfinite(logdet))
  np.testing.assert_allclose(logdet, expected, rtol=1e-6)
  np.testing.assert_array_equal(logdet, -inverse_logdet)


def test_actnorm_refuses_integer_inputs_and_an_empty_batch():
  block = blocks.ActNorm()
  with pytest.raises(ValueError, match="floating point inputs; got int32"):
    block.init(jax.random.key(0), jnp.ones((4, 3), jnp.int32))
  with pytest.raises(ValueError, match="at least one example"):
    block.init(jax.random.key(0), jnp.zeros((0, 3)))


def test_actnorm_floors_the_std_of_constant_channels_at_init_and_warns(caplog):
  block = blocks.ActNorm()
  with caplog.at_level(logging.WARNING):
    one_example = block.init(jax.random.key(0), jnp.array([[0.5, -0.2, 0.9]]))["params"]
    jax.effects_barrier()
  np.testing.assert_allclose(one_example["log_scale"], np.log(1 / block.init_min_std), rtol=1e-6)
  assert "3 channels are (nearly) constant" in caplog.text
  varied = jnp.stack([jnp.linspace(-1.0, 1.0, 64), jnp.full((64,), 0.3)], axis=-1)
  params = block.init(jax.random.key(0), varied)["params"]
  assert np.all(np.isfinite(params["log_scale"])) and float(params["log_scale"][1]) == pytest.approx(np.log(1000.0))
  np.testing.assert_allclose(params["log_scale"][0], -np.log(np.std(np.linspace(-1.0, 1.0, 64))), rtol=1e-5)
