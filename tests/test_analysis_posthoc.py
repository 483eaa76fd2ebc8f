"""The post-hoc nuisance classifier learns label information that z_n holds."""

import jax
import jax.numpy as jnp
import pytest

from invjax.analysis import posthoc


def _separable(key, count, dimension=16):
  """Two classes whose z_n differ by +-3 in the first coordinate, plus unit noise."""
  label_key, noise_key = jax.random.split(key)
  labels = jax.random.bernoulli(label_key, 0.5, (count,)).astype(jnp.int32)
  z_n = jax.random.normal(noise_key, (count, dimension)).at[:, 0].add(6.0 * labels - 3.0)
  return z_n, labels


def test_learns_a_separable_case_and_reports_each_epoch():
  train, test = _separable(jax.random.key(0), 512), _separable(jax.random.key(1), 256)
  reported = []
  result = posthoc.posthoc_nuisance_errors(
      jax.random.key(2), train, test, num_classes=2, num_epochs=5, batch_size=64, hidden=(32,),
      learning_rate=1e-2, report=lambda epoch, loss: reported.append(epoch),
  )
  assert reported == [1, 2, 3, 4, 5] and result.loss_history.shape == (5,)
  assert result.loss_history[-1] < result.loss_history[0]
  assert result.train_error < 0.02 and result.test_error < 0.02


def test_uninformative_nuisances_leave_the_classifier_at_chance():
  z_n = jax.random.normal(jax.random.key(0), (512, 16))
  labels = jnp.arange(512) % 2
  result = posthoc.posthoc_nuisance_errors(
      jax.random.key(1), (z_n[:256], labels[:256]), (z_n[256:], labels[256:]), num_classes=2, num_epochs=3,
      batch_size=64, hidden=(32,),
  )
  assert result.test_error > 0.35


def test_label_dependence_is_higher_for_informative_nuisances_than_for_permuted_labels():
  z_n, labels = _separable(jax.random.key(0), 512)
  informative = posthoc.mean_label_dependence(z_n, labels, num_classes=2)
  permuted = posthoc.mean_label_dependence(z_n, jax.random.permutation(jax.random.key(1), labels), num_classes=2)
  assert permuted < 0.1 < informative, (permuted, informative)
  with pytest.raises(ValueError, match="at least batch_size=128"):
    posthoc.mean_label_dependence(z_n[:100], labels[:100], num_classes=2)


def test_rejects_too_few_examples():
  z_n, labels = _separable(jax.random.key(0), 10)
  with pytest.raises(ValueError, match="at least batch_size=128"):
    posthoc.train_nuisance_classifier(jax.random.key(1), z_n, labels, num_classes=2)


def test_by_part_finds_the_part_that_holds_the_label_and_whether_a_linear_probe_reads_it():
  """Part "a" holds the label linearly (a shifted coordinate); part "b" only in its sign pattern
  (XOR of two coordinates, which no linear probe reads); part "c" not at all."""
  def parts_data(key, count):
    label_key, noise_key = jax.random.split(key)
    labels = jax.random.bernoulli(label_key, 0.5, (count,)).astype(jnp.int32)
    noise = jax.random.normal(noise_key, (count, 12))
    linear = noise[:, :4].at[:, 0].add(6.0 * labels - 3.0)
    signs = jnp.sign(noise[:, 4]) * jnp.where(labels == 1, 1.0, -1.0)
    xor = noise[:, 4:8].at[:, 5 - 4].set(signs * (jnp.abs(noise[:, 5]) + 1.0))
    xor = xor.at[:, 0].set(jnp.sign(noise[:, 4]) * (jnp.abs(noise[:, 4]) + 1.0))
    return jnp.concatenate([linear, xor, noise[:, 8:]], axis=1), labels

  parts = {"a": slice(0, 4), "b": slice(4, 8), "c": slice(8, 12)}
  reported = []
  errors = posthoc.posthoc_by_part(
      jax.random.key(2), parts_data(jax.random.key(0), 2048), parts_data(jax.random.key(1), 512), parts,
      num_classes=2, probes={"mlp": (64, 64), "linear": ()}, num_epochs=20, batch_size=64,
      learning_rate=1e-2, report=reported.append)
  test = {(part, probe): errors[part][probe]["test_error"] for part in parts for probe in ("mlp", "linear")}
  assert len(reported) == 6
  assert test["a", "mlp"] < 0.05 and test["a", "linear"] < 0.05
  assert test["b", "mlp"] < 0.1 and test["b", "linear"] > 0.35
  assert test["c", "mlp"] > 0.35 and test["c", "linear"] > 0.35
