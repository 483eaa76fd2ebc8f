"""The vector fi-RevNet learns the concentric spheres with its CE training loop."""

import jax
import numpy as np
import pytest

from invjax import data
from invjax.analysis import features, spheres


def test_cross_entropy_training_separates_the_spheres():
  model = spheres.sphere_flow(steps_per_level=2, width=16)
  reported = []
  variables = spheres.train_flow_classifier(
      jax.random.key(0), model, data.load("spheres", "train", batch_size=64, seed=0), num_steps=60,
      learning_rate=3e-3, report=lambda step, metrics: reported.append((step, metrics)), report_every=30,
  )
  assert [step for step, _ in reported] == [30, 60] and set(reported[0][1]) == {"loss", "error"}
  images, labels = data.as_numpy("spheres", "test", num_examples=512)
  logits = features.logits_function(model)(variables, spheres.as_model_input(model, images))
  assert np.mean(np.argmax(logits, -1) != labels) < 0.05


def test_training_stops_clearly_when_the_batches_run_out():
  with pytest.raises(ValueError, match="ran out after 0 of num_steps=3"):
    spheres.train_flow_classifier(jax.random.key(0), spheres.sphere_flow(), [], num_steps=3)
