"""The invariance attack on a plain CNN, and the feature functions it targets."""

import jax
import numpy as np
import optax
import pytest

from invjax import models
from invjax.analysis import attack, features


@pytest.fixture(scope="module")
def cnn_and_images():
  cnn = models.CNN(channels=(4, 8), hidden=16)
  keys = jax.random.split(jax.random.key(0), 3)
  x_target = jax.random.uniform(keys[0], (3, 32, 32, 3), minval=-1, maxval=1)
  x_start = jax.random.uniform(keys[1], (3, 32, 32, 3), minval=-1, maxval=1)
  return cnn, jax.jit(cnn.init)(keys[2], x_target), x_target, x_start


def test_attack_moves_the_logits_onto_the_target_inside_the_box(cnn_and_images):
  cnn, variables, x_target, x_start = cnn_and_images
  result = attack.invariance_attack(
      features.logits_function(cnn), variables, x_target, x_start, num_steps=100, learning_rate=0.02
  )
  assert result.images.shape == x_start.shape and result.history.shape == (101, 3)
  assert np.all(result.distance < 0.5 * result.initial_distance)
  assert np.all(np.abs(result.images) <= 1.0)
  target_logits = cnn.apply(variables, x_target)
  np.testing.assert_allclose(
      result.max_abs_difference, np.max(np.abs(cnn.apply(variables, result.images) - target_logits), axis=-1), rtol=1e-5
  )


def test_attack_on_a_hidden_layer_uses_captured_activations(cnn_and_images):
  cnn, variables, x_target, x_start = cnn_and_images
  hidden = features.layer_function(cnn, "Dense_0")
  assert hidden(variables, x_target).shape == (3, 16)
  result = attack.invariance_attack(hidden, variables, x_target, x_start, num_steps=30, optimizer=optax.sgd,
                                    learning_rate=0.01)
  assert np.all(result.distance < result.initial_distance)


def test_feature_functions_read_the_fi_revnet_logits_and_name_unknown_layers():
  model = models.FiRevNet(
      image_shape=(1, 1, 8), num_classes=2, num_levels=1, squeeze=False, split=False, steps_per_level=1, width=4
  )
  x = jax.random.normal(jax.random.key(0), (2, 1, 1, 8))
  variables = model.init(jax.random.key(1), x)
  z, _ = model.apply(variables, x)
  np.testing.assert_array_equal(features.logits_function(model)(variables, x), z[:, :2])
  assert features.logits_function(model) is features.logits_function(model)
  with pytest.raises(ValueError, match="no layer 'levels_7'.*levels_0"):
    features.layer_function(model, "levels_7")(variables, x)


def test_attack_rejects_starts_outside_the_box(cnn_and_images):
  cnn, variables, x_target, _ = cnn_and_images
  with pytest.raises(ValueError, match="inside bounds"):
    attack.invariance_attack(features.logits_function(cnn), variables, x_target, 2.0 * x_target + 1.5)
