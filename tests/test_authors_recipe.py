"""The authors' recipe (configs/mnist_authors.py): the logit head, the MLE over all of z, the 2020 sign of
the shuffled-label term, and the split prior inside a fi-RevNet."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mnist_authors
from invjax import data, logit_norm, losses, models
from invjax.analysis import features
from invjax.train import state as state_lib
from invjax.train import step as step_lib
from invjax.train import validation
from test_train import micro_config


def micro_authors_config():
  """test_train's micro config (a step compiles in seconds) with the authors' recipe."""
  return mnist_authors.with_authors_recipe(micro_config(batch_size=32))


@pytest.fixture(scope="module")
def mnist_batch():
  return next(iter(data.load("mnist", "train", batch_size=32, seed=0, num_epochs=1, dequantize=False)))


def test_the_head_normalises_by_the_batch_in_training_and_by_its_running_statistics_after():
  z_s = jax.random.normal(jax.random.key(0), (256, 4)) * jnp.array([1.0, 5.0, 0.1, 2.0]) + 3.0
  head = logit_norm.init(4) | {"scale": jnp.array([1.0, 2.0, 1.0, 1.0]), "bias": jnp.array([0.0, 0.0, 1.0, 0.0])}
  trained = logit_norm.apply(head, z_s, batch_statistics=True)
  np.testing.assert_allclose(jnp.mean(trained, 0), [0, 0, 1, 0], atol=1e-5)
  np.testing.assert_allclose(jnp.std(trained, 0), [1, 2, 1, 1], rtol=1e-3)
  # Before any update the running statistics are (0, 1): evaluation is then an affine map of z_s, not the batch's.
  np.testing.assert_allclose(logit_norm.apply(head, z_s, batch_statistics=False),
                             z_s * head["scale"] / np.sqrt(1 + logit_norm.EPSILON) + head["bias"], rtol=1e-6)
  for _ in range(20):
    head = logit_norm.update_statistics(head, z_s)
  np.testing.assert_allclose(logit_norm.apply(head, z_s, batch_statistics=False), trained, atol=2e-2)
  assert logit_norm.classifier_logits(z_s, None) is z_s


def test_mle_over_all_of_z_includes_the_logits():
  z = jnp.arange(12.0).reshape(2, 6)
  np.testing.assert_array_equal(losses.modelled_latent(z, 2, {"mle_over": "z_n"}), z[:, 2:])
  np.testing.assert_array_equal(losses.modelled_latent(z, 2, {}), z[:, 2:])  # a run saved before the option
  np.testing.assert_array_equal(losses.modelled_latent(z, 2, {"mle_over": "z"}), z)
  with pytest.raises(ValueError, match="mle_over"):
    losses.modelled_latent(z, 2, {"mle_over": "logits"})


def test_the_2020_sign_negates_the_shuffled_term():
  logits = jax.random.normal(jax.random.key(0), (8, 10))
  labels = jnp.arange(8) % 10
  key = jax.random.key(3)
  shuffled = losses.nuisance_term(logits, labels, "shuffled", key)
  assert float(shuffled) > 1.0  # far from zero: a random classifier against shuffled labels
  np.testing.assert_allclose(losses.nuisance_term(logits, labels, "shuffled_negated", key), -shuffled)


def test_config_validates_and_a_cnn_refuses_the_logit_head():
  config = mnist_authors.get_config("cpu")
  validation.validate(config, num_devices=1)
  assert (config.loss.nuisance_weight, config.loss.mle_over, config.loss.logit_batch_norm,
          config.model.split_prior) == (0.05, "z", True, True)
  config.model.kind = "cnn"
  for name in ("nuisance_weight", "mle_weight"):
    config.loss[name] = 0.0
  with pytest.raises(ValueError, match="logit_batch_norm"):
    validation.validate(config, num_devices=1)


def test_steps_train_the_head_and_every_reader_of_logits_agrees(mnist_batch):
  """The train step moves the head's running statistics; evaluation and the analyses'
  `features.logits_function` then read the same logits (one definition of a model's logits)."""
  config = micro_authors_config()
  parts = state_lib.build(config, steps_per_epoch=100)
  state = parts.create_state(jnp.asarray(mnist_batch["image"]), jax.random.key(0))
  assert isinstance(parts.model, models.FiRevNet) and parts.model.split_prior
  assert state.flow["prior"]["mean"].shape == (parts.model.latent_size,)  # the density covers all of z
  step = jax.jit(step_lib.make_train_step(config, parts.model, parts.nuisance_classifier,
                                          parts.flow_tx, parts.nuisance_tx))
  for _ in range(3):
    state, metrics = step(state, mnist_batch, jax.random.key(1))
  assert np.isfinite(float(metrics["loss"]))
  assert float(jnp.abs(state.flow["logit_norm"]["mean"]).max()) > 0  # the running mean moved off 0
  images = jnp.asarray(mnist_batch["image"])
  eval_sums = step_lib.make_eval_step(config, parts.model, parts.nuisance_classifier)(
      state, {"image": images, "label": mnist_batch["label"], "mask": jnp.ones(images.shape[0])})
  variables = {"params": state.flow["model"], "logit_norm": state.flow["logit_norm"]}
  logits = features.logits_function(parts.model)(variables, images)
  assert int(eval_sums["logit_errors"]) == int(jnp.sum(jnp.argmax(logits, -1) != mnist_batch["label"]))
  z, _ = parts.model.apply({"params": state.flow["model"]}, images)
  raw_z_s = models.split_latent(z, config.num_classes)[0]
  assert not np.allclose(logits, raw_z_s)  # the head is applied, not skipped
  # The split priors keep the model a bijection: z inverts to the images.
  images_back, _ = parts.model.apply({"params": state.flow["model"]}, z, method=parts.model.inverse)
  np.testing.assert_allclose(images_back, images, atol=2e-5)


def test_split_priors_model_the_density_of_the_split_latents_and_leave_z_as_it_is():
  """z and its inverse are those of the same flow without priors (metamers swap the raw z2, as in the
  authors' code); the density's latent holds eps = (z2 - mu(z1)) exp(-s(z1)) with -sum s added to its log-det."""
  with_priors = models.FiRevNet(image_shape=(8, 8, 1), num_classes=2, num_levels=2, steps_per_level=1, width=8,
                                split_prior=True)
  plain = with_priors.clone(split_prior=False)
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 1))
  variables = with_priors.init(jax.random.key(1), x)
  prior = variables["params"]["split_priors_0"]["ZeroConv_0"]
  prior = jax.tree.map(lambda leaf: leaf + 0.1 * jax.random.normal(jax.random.key(2), leaf.shape), prior)
  variables["params"]["split_priors_0"]["ZeroConv_0"] = prior
  z, logdet, density_latent, density_logdet = with_priors.apply(variables, x, method="density")
  plain_params = {name: value for name, value in variables["params"].items() if not name.startswith("split_priors")}
  z_plain, logdet_plain = plain.apply({"params": plain_params}, x)
  np.testing.assert_array_equal(z, z_plain)
  np.testing.assert_array_equal(logdet, logdet_plain)
  split = with_priors.nuisance_parts()["split_1"]
  offset = with_priors.num_classes
  np.testing.assert_array_equal(density_latent[:, :offset + split.start], z[:, :offset + split.start])
  assert not np.allclose(density_latent[:, offset + split.start:], z[:, offset + split.start:])
  assert not np.allclose(density_logdet, logdet)
  x_back, _ = with_priors.apply(variables, z, method="inverse")
  np.testing.assert_allclose(x_back, x, atol=1e-5)
