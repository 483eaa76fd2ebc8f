"""The label-independence penalties without a player (invjax.independence) and the term registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base, mnist_cnn, mnist_ice
from invjax import independence, objective
from invjax.train import validation

NUM_CLASSES = 10
PENALTIES = {
    "class_mean_gap": lambda z, y: independence.class_mean_gap(z, y, NUM_CLASSES),
    "random_feature_gap": lambda z, y: independence.random_feature_gap(z, y, NUM_CLASSES, jax.random.key(7)),
}


def _batch(seed, label_strength, batch=64, dims=400):
  """z (batch, dims) standard normal, the first 10 dims shifted by label_strength on their own class."""
  labels = jax.random.randint(jax.random.key(seed), (batch,), 0, NUM_CLASSES)
  z = jax.random.normal(jax.random.key(seed + 1000), (batch, dims))
  return z.at[:, :NUM_CLASSES].add(label_strength * jax.nn.one_hot(labels, NUM_CLASSES)), labels


@pytest.mark.parametrize("name", PENALTIES)
def test_penalty_is_near_zero_for_independent_features_and_clearly_above_for_revealing_ones(name):
  penalty = PENALTIES[name]
  independent = np.array([float(penalty(*_batch(seed, 0.0, batch=256))) for seed in range(20)])
  revealing = np.array([float(penalty(*_batch(seed, 3.0, batch=256))) for seed in range(20)])
  # Unbiased: independent batches scatter around 0 (either sign); a label that shifts 10 of 400
  # features by 3 standard deviations on their class stands far above that scatter.
  assert abs(independent.mean()) < 3 * independent.std() / np.sqrt(len(independent))
  assert revealing.mean() > 1.0 and revealing.min() > independent.max() + 3 * independent.std()


def test_class_mean_gap_gradient_moves_class_means_together_without_shrinking_the_spread():
  z, labels = _batch(0, 3.0, batch=1024)
  gradient = jax.grad(lambda z: independence.class_mean_gap(z, labels, NUM_CLASSES))(z)
  stepped = z - 300.0 * gradient  # about p_k / (2 n_k) per entry: a step near the class means' distance
  gap_before = float(independence.class_mean_gap(z, labels, NUM_CLASSES))
  gap_after = float(independence.class_mean_gap(stepped, labels, NUM_CLASSES))
  assert gap_after < 0.5 * gap_before
  # Features without label signal hardly move, and no feature's spread within a class collapses.
  column_norms = jnp.linalg.norm(gradient, axis=0)
  assert float(jnp.mean(column_norms[NUM_CLASSES:])) < 0.25 * float(jnp.mean(column_norms[:NUM_CLASSES]))
  within = lambda x: np.mean([np.std(np.asarray(x)[np.asarray(labels) == k], 0).mean() for k in range(NUM_CLASSES)])
  assert within(stepped) > 0.9 * within(z)


def test_every_registered_term_has_its_weight_in_the_base_config_and_validation():
  config = base.get_config()
  assert {term.weight for term in objective.TERMS} <= set(config.loss)
  for term in objective.TERMS:
    config = base.get_config()
    config.loss[term.weight] = -1.0
    with pytest.raises(ValueError, match=f"loss.{term.weight}"):
      validation.validate(config, num_devices=1)


@pytest.mark.parametrize("weight", [t.weight for t in objective.TERMS if t.reads_latent])
def test_a_cnn_refuses_every_term_on_the_nuisance_latent(weight):
  config = mnist_cnn.get_config("tiny")
  config.loss[weight] = 1.0
  with pytest.raises(ValueError, match="A CNN has no nuisance latent"):
    validation.validate(config, num_devices=1)


def test_objective_sums_the_weighted_terms_and_reports_the_always_reported_ones():
  z, labels = _batch(0, 3.0)
  logits = jnp.zeros((64, NUM_CLASSES))
  options = base.get_config().loss
  options.class_mean_gap_weight = 0.5
  inputs = objective.TermInputs(logits, labels, NUM_CLASSES, jax.random.key(0), options, z_n=z,
                                logdet=jnp.zeros(64), nuisance_logits=logits, latent_nll=jnp.zeros(64), num_dims=410)
  total, values = objective.evaluate(inputs, has_latent=True)
  assert set(values) == {"cross_entropy", "nuisance", "bits_per_dim", "class_mean_gap"}
  np.testing.assert_allclose(total, values["cross_entropy"] + 0.5 * values["class_mean_gap"], rtol=1e-6)
  _, cnn_values = objective.evaluate(inputs._replace(z_n=None), has_latent=False)
  assert set(cnn_values) == {"cross_entropy"}


@pytest.mark.parametrize("name", PENALTIES)
def test_penalty_cannot_be_lowered_by_scaling_or_shifting_the_latent(name):
  """The exploit of the first (U-statistic) version: inflating z_n drove it to -19 in training."""
  z, labels = _batch(0, 3.0, batch=256)
  penalty = PENALTIES[name]
  scales = jax.random.uniform(jax.random.key(5), (z.shape[1],), minval=0.1, maxval=100.0)
  np.testing.assert_allclose(penalty(z * scales + 7.0, labels), penalty(z, labels), rtol=1e-3, atol=1e-3)
  assert float(penalty(z, labels)) >= -z.shape[1] * 9 / 255  # never below minus the independence floor


def test_independence_terms_wait_for_their_start_step_and_ramp_in():
  z, labels = _batch(0, 3.0)
  logits = jnp.zeros((64, NUM_CLASSES))
  options = base.get_config().loss
  options.update({"class_mean_gap_weight": 0.5, "mle_weight": 1.0, "independence_start_step": 100,
                  "independence_ramp_steps": 50})
  inputs = objective.TermInputs(logits, labels, NUM_CLASSES, jax.random.key(0), options, z_n=z,
                                logdet=jnp.zeros(64), nuisance_logits=logits, latent_nll=jnp.ones(64), num_dims=410)
  without_independence = None
  for step, share in ((0, 0.0), (99, 0.0), (125, 0.5), (150, 1.0), (10_000, 1.0)):
    total, values = objective.evaluate(inputs, has_latent=True, step=step)
    without_independence = values["cross_entropy"] + values["bits_per_dim"]
    assert float(values["class_mean_gap"]) > 1.0  # reported at its value whatever the ramp
    np.testing.assert_allclose(total, without_independence + share * 0.5 * values["class_mean_gap"], rtol=1e-5)
  options.independence_ramp_steps = 0  # a step function at the start step
  assert float(objective.independence_ramp(options, 99)) == 0.0 and float(objective.independence_ramp(options, 100)) == 1


def test_penalties_read_the_part_of_z_n_that_penalised_part_names():
  """A z_n whose label sits in its first 10 entries: every penalty reads the named part as it would read a
  z_n of just that part; the class-mean penalty is near zero on the label-free part and clearly above on
  all of z_n; the nuisance game still reads all of z_n."""
  z, labels = _batch(0, 3.0, batch=256)
  logits = jnp.zeros((256, NUM_CLASSES))
  options = base.get_config().loss
  options.update({"class_mean_gap_weight": 1.0, "random_feature_gap_weight": 1.0, "label_dependence_weight": 1.0})
  inputs = objective.TermInputs(logits, labels, NUM_CLASSES, jax.random.key(0), options, z_n=z,
                                logdet=jnp.zeros(256), nuisance_logits=logits, latent_nll=jnp.zeros(256), num_dims=410)
  _, on_all = objective.evaluate(inputs, has_latent=True)
  _, on_free_part = objective.evaluate(inputs._replace(penalised_z_n=z[:, NUM_CLASSES:]), has_latent=True)
  _, as_if_z_n_were_the_part = objective.evaluate(inputs._replace(z_n=z[:, NUM_CLASSES:]), has_latent=True)
  for name in ("class_mean_gap", "random_feature_gap", "label_dependence"):
    np.testing.assert_allclose(on_free_part[name], as_if_z_n_were_the_part[name], rtol=1e-6)
    assert float(on_free_part[name]) != float(on_all[name])
  assert abs(float(on_free_part["class_mean_gap"])) < 0.5 and float(on_all["class_mean_gap"]) > 3.0
  np.testing.assert_allclose(on_free_part["nuisance"], on_all["nuisance"])


@pytest.mark.parametrize("part,message", [
    ("final", None), ("split_2", None), ("all", None),
    ("split_3", r"must be one of \('all', 'final', 'split_1', 'split_2'\)"),
])
def test_penalised_part_must_be_a_part_of_the_models_z_n(part, message):
  config = mnist_ice.get_config("tiny")
  config.loss.penalised_part = part
  if message is None:
    validation.validate(config, num_devices=1)
  else:
    with pytest.raises(ValueError, match=message):
      validation.validate(config, num_devices=1)


def test_a_cnn_refuses_a_penalised_part():
  cnn = mnist_cnn.get_config("tiny")
  cnn.loss.penalised_part = "final"
  with pytest.raises(ValueError, match="a cnn has none; set it to 'all'"):
    validation.validate(cnn, num_devices=1)
