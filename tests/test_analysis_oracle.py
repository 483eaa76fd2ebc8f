"""Oracle agreement and logit preservation of metamers and interpolation paths."""

import jax.numpy as jnp
import numpy as np
import pytest

from invjax.analysis import oracle


def _one_hot_images(classes, num_classes=4):
  """'Images' (..., num_classes) that an identity oracle labels as `classes`."""
  return jnp.eye(num_classes)[jnp.asarray(classes)]


IDENTITY_ORACLE = lambda images: images


def test_agreement_counts_only_pairs_of_different_classes():
  logit_labels = jnp.array([0, 1, 2, 3, 3])
  nuisance_labels = jnp.array([1, 2, 3, 0, 3])  # the last pair has equal labels and is left out
  looks_like = [0, 2, 1, 2, 0]  # logit source, nuisance source, other, other, (ignored)
  agreement = oracle.oracle_agreement(IDENTITY_ORACLE, _one_hot_images(looks_like), logit_labels, nuisance_labels)
  assert agreement["num_pairs"] == 4
  np.testing.assert_allclose(
      [agreement["logit_source_class"], agreement["nuisance_source_class"], agreement["other_class"]], [0.25, 0.25, 0.5]
  )


def test_interpolation_agreement_is_per_step():
  logit_labels, nuisance_labels = jnp.array([0, 1]), jnp.array([1, 2])
  paths = _one_hot_images([[0, 0, 1], [1, 2, 2]])  # (2 paths, 3 steps, 4)
  agreement = oracle.interpolation_oracle_agreement(IDENTITY_ORACLE, paths, logit_labels, nuisance_labels)
  np.testing.assert_allclose(agreement["logit_source_class"], [1.0, 0.5, 0.0])
  np.testing.assert_allclose(agreement["nuisance_source_class"], [0.0, 0.5, 1.0])


def test_agreement_needs_pairs_of_different_classes():
  labels = jnp.array([1, 2])
  with pytest.raises(ValueError, match="different classes"):
    oracle.oracle_agreement(IDENTITY_ORACLE, _one_hot_images([1, 2]), labels, labels)


def test_logit_preservation_of_metamers_and_of_paths():
  source = jnp.array([[1.0, 2.0], [3.0, 4.0]])
  metamer_error = oracle.logit_preservation(source + jnp.array([[0.0, 0.5], [-0.1, 0.0]]), source)
  np.testing.assert_allclose([metamer_error["max_abs"], metamer_error["mean_abs"]], [0.5, 0.15], rtol=1e-6)
  offsets = jnp.array([0.0, 0.2, -0.4])[None, :, None]  # (1, 3 steps, 1)
  path_error = oracle.logit_preservation(source[:, None, :] + offsets, source)
  np.testing.assert_allclose(path_error["max_abs"], [0.0, 0.2, 0.4], atol=1e-6)
  with pytest.raises(ValueError, match=r"\(B, C\) or \(B, n, C\)"):
    oracle.logit_preservation(source[:1], source)
