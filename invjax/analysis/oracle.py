r"""How metamers score: by an oracle, and by the model's own logits.

For pairs (a_i, b_i) with labels (y_a_i, y_b_i) and metamers
x_i = F^{-1}(z_s(a_i), z_n(b_i)) (or the steps x_ik of a nuisance
interpolation from a_i to b_i), two questions are asked.

What does the image look like? An *oracle* o, a classifier trained on clean
data that stands in for a human (SPEC 2), labels every metamer. Over the pairs
whose labels differ (y_a != y_b; pairs with equal labels cannot tell the two
apart and are left out):

    logit_source_class    = mean_i [o(x_i) = y_a_i]
    nuisance_source_class = mean_i [o(x_i) = y_b_i]
    other_class           = 1 - logit_source_class - nuisance_source_class

A model with excessive invariance (CE) gives metamers that mostly look like
their nuisance source; with iCE more of them keep the logit source's class.

Does the model see a? The *logit-preservation error* compares the model's
logits of the metamer with those of its logit source,

    max_abs  = max_{i,c} |z_s(x_i)_c - z_s(a_i)_c|
    mean_abs = mean_{i,c} |z_s(x_i)_c - z_s(a_i)_c|,

zero up to float rounding for an exact inverse.

For interpolation paths (B, n, ...) every metric is computed per step k and
returned as an array of length n.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

LogitsFunction = Callable[[jax.Array], jax.Array]


def _agreement(predictions, logit_source_labels, nuisance_source_labels) -> dict:
  """Agreement fractions of predicted classes (B,) or (B, n); reduces the batch axis (counts in float64)."""
  predictions, logit_source_labels, nuisance_source_labels = map(
      np.asarray, (predictions, logit_source_labels, nuisance_source_labels)
  )
  if logit_source_labels.shape != nuisance_source_labels.shape or predictions.shape[0] != logit_source_labels.shape[0]:
    raise ValueError(
        f"Need one logit-source and one nuisance-source label per example: predictions {predictions.shape}, "
        f"labels {logit_source_labels.shape} and {nuisance_source_labels.shape}."
    )
  differ = logit_source_labels != nuisance_source_labels
  num_pairs = int(np.sum(differ))
  if num_pairs == 0:
    raise ValueError(
        "Every pair has the same logit-source and nuisance-source label; pair examples of different classes."
    )
  expand = lambda labels: labels.reshape(labels.shape + (1,) * (predictions.ndim - 1))
  fraction = lambda labels: np.sum(expand(differ) & (predictions == expand(labels)), axis=0) / num_pairs
  logit_source_class, nuisance_source_class = fraction(logit_source_labels), fraction(nuisance_source_labels)
  return {
      "logit_source_class": logit_source_class,
      "nuisance_source_class": nuisance_source_class,
      "other_class": 1.0 - logit_source_class - nuisance_source_class,
      "num_pairs": num_pairs,
  }


def pairs_of_different_classes(
    labels: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
  """Indices (a, b) of `count` random pairs with labels[a] != labels[b]: the logit and nuisance
  sources of metamers whose two classes an oracle can tell apart."""
  if len(np.unique(labels)) < 2:
    raise ValueError("The split has a single class: no pairs of different classes exist.")
  logit_sources = rng.choice(len(labels), count, replace=count > len(labels))
  nuisance_sources = rng.choice(len(labels), count)
  while np.any(same := labels[logit_sources] == labels[nuisance_sources]):
    nuisance_sources[same] = rng.choice(len(labels), int(np.sum(same)))
  return logit_sources, nuisance_sources


def oracle_agreement(
    oracle_logits: LogitsFunction,
    metamers: jax.Array,
    logit_source_labels: jax.Array,
    nuisance_source_labels: jax.Array,
) -> dict:
  """Fractions of metamers (B, ...) the oracle puts in the logit source's, the nuisance source's or another class.

  Args:
    oracle_logits: `x -> logits (B, C)` of the oracle, e.g.
      `functools.partial(jax.jit(features.logits_function(cnn)), cnn_variables)`.
    metamers: (B, ...) metamers of the pairs.
    logit_source_labels, nuisance_source_labels: (B,) labels of the sources.

  Returns:
    {"logit_source_class", "nuisance_source_class", "other_class": scalars,
     "num_pairs": the number of pairs with differing labels they average over}.
  """
  predictions = jnp.argmax(oracle_logits(metamers), axis=-1)
  return _agreement(predictions, logit_source_labels, nuisance_source_labels)


def interpolation_oracle_agreement(
    oracle_logits: LogitsFunction, paths: jax.Array, logit_source_labels: jax.Array, nuisance_source_labels: jax.Array
) -> dict:
  """`oracle_agreement` per step of interpolation paths (B, n, ...): each fraction has shape (n,)."""
  batch, num_steps = paths.shape[:2]
  logits = oracle_logits(paths.reshape(batch * num_steps, *paths.shape[2:]))
  predictions = jnp.argmax(logits, axis=-1).reshape(batch, num_steps)
  return _agreement(predictions, logit_source_labels, nuisance_source_labels)


def logit_preservation(metamer_logits: jax.Array, logit_source_logits: jax.Array) -> dict:
  """Max and mean |z_s(x) - z_s(a)| over examples and classes.

  Args:
    metamer_logits: (B, C) logits of metamers, or (B, n, C) of interpolation steps.
    logit_source_logits: (B, C) logits of the logit sources.

  Returns:
    {"max_abs", "mean_abs"}: scalars, or (n,) per interpolation step.
  """
  batch, num_classes = logit_source_logits.shape
  if metamer_logits.shape[0] != batch or metamer_logits.shape[-1] != num_classes:
    raise ValueError(
        f"metamer_logits {metamer_logits.shape} must be (B, C) or (B, n, C) with B, C from "
        f"logit_source_logits {logit_source_logits.shape}."
    )
  source = logit_source_logits.reshape(batch, *(1,) * (metamer_logits.ndim - 2), num_classes)
  error = jnp.abs(metamer_logits - source)
  reduced_axes = (0, error.ndim - 1)
  return {"max_abs": jnp.max(error, axis=reduced_axes), "mean_abs": jnp.mean(error, axis=reduced_axes)}
