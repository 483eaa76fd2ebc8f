"""The dequantisation-noise sensitivity of a classifier (`invjax.analysis.dequantization`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from invjax.analysis import dequantization


def _digit_like_images(labels):
  """Channel 0 carries the class (+-0.5 over the whole image); channels 1 and 2 are blank (-1)."""
  images = -np.ones((len(labels), 4, 4, 3), np.float32)
  images[..., 0] = np.where(labels == 0, 0.5, -0.5)[:, None, None]
  return images


def test_a_classifier_that_reads_the_pixels_is_not_moved_by_the_noise():
  labels = np.arange(40) % 2
  logits = jax.jit(lambda x: jnp.stack([x[..., 0].mean((1, 2)), -x[..., 0].mean((1, 2))], -1))
  errors = dequantization.noise_sensitivity(logits, _digit_like_images(labels), labels, jax.random.key(0),
                                            batch_size=16)
  assert list(errors) == ["none", "channel 0", "channel 1", "channel 2", "all"]
  assert set(errors.values()) == {0.0}


def test_a_classifier_that_reads_the_noise_of_a_blank_channel_fails_without_it():
  """Class 0 iff channel 1 varies (the stretched noise of a blank channel): right under the training's
  noise there, wrong on the images as evaluation feeds them."""
  labels = np.zeros(40, np.int32)
  logits = jax.jit(lambda x: jnp.stack([1e4 * jnp.std(x[..., 1], axis=(1, 2)) - 1, jnp.zeros(x.shape[0])], -1))
  errors = dequantization.noise_sensitivity(logits, _digit_like_images(labels), labels, jax.random.key(0),
                                            batch_size=16)
  assert errors == {"none": 100.0, "channel 0": 100.0, "channel 1": 0.0, "channel 2": 100.0, "all": 0.0}


def test_bad_shapes_are_refused():
  with pytest.raises(ValueError, match="images"):
    dequantization.noise_sensitivity(lambda x: x, np.zeros((4, 4, 3)), np.zeros(4), jax.random.key(0))
