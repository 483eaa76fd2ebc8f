r"""What the selection rule measures: how well a checkpoint classifies, and how much label
information its z_n holds, both on training-distribution examples it never trained on.

The run holds out the last h examples of its training split (`data.load(...,
holdout_examples=h)`). At a checkpoint F, `measure` computes

* the held-out logit error: the fraction of held-out x with argmax z_s(x) != y;
* the label information in z_n the way the iCE objective means it: a fresh
  nuisance classifier D (SPEC 4's post-hoc classifier, `analysis.posthoc`) is
  trained on the frozen z_n of the first `probe_examples` training examples
  and scored on the held-out z_n. Its held-out cross-entropy

      CE_D = E_(x, y) held out [ -log p_D(y | z_n(x)) ]   (nats)

  is what iCE's nuisance term asks the flow to make large: H(y) - CE_D is a
  lower bound on the mutual information I(z_n; y), so a larger CE_D means
  less label information found. Its error is recorded beside it; on binary
  shiftMNIST it is often 0 for every checkpoint, where CE_D still differs.

The in-training nuisance classifier is not used: the flow learns to hide the
label from the classifier it plays against while a fresh one still reads it
(docs/results.md, "Longer training"). Nothing here reads a test split.
"""

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from invjax import data, models
from invjax.analysis import posthoc
from invjax.train import run_data

# The fresh classifier trains on minibatches of this size (`posthoc.train_nuisance_classifier`'s default).
PROBE_BATCH_SIZE = 128
_KEY_SALT = 0x5E1EC7  # keeps the classifier's key apart from the run's other streams of (seed, step)


class Measurement(NamedTuple):
  """A checkpoint's held-out numbers: errors in %, cross-entropy in nats."""

  step: int
  logit_error: float
  nuisance_error: float
  nuisance_cross_entropy: float
  probe_nuisance_error: float  # the fresh classifier's error on the z_n it trained on

  def as_metrics(self, prefix: str) -> dict[str, float]:
    return {f"{prefix}{name}": float(value) for name, value in self._asdict().items() if name != "step"}


def make_encode(config, model):
  """`encode(model_params, batch) -> (logits, z_n)` of a batch in evaluation mode, ready for `jax.jit`."""

  def encode(model_params, batch):
    z, _ = model.apply({"params": model_params}, batch["image"])
    return models.split_latent(z, config.num_classes)

  return encode


def _encoded_split(config, mesh, encode, model_params, split: str, max_examples: int):
  """(logits, z_n, labels) of the first `max_examples` of `split`, in order, as host arrays."""
  batches = run_data.eval_batches(config, mesh, split)
  parts = []
  for batch in itertools.islice(batches, -(-max_examples // config.eval_batch_size)):
    logits, z_n = encode(model_params, batch)
    gathered = multihost_utils.process_allgather((logits, z_n, batch["label"], batch["mask"]), tiled=True)
    mask = np.asarray(gathered[3], bool)
    parts.append([np.asarray(array)[mask] for array in gathered[:3]])
  return [np.concatenate(arrays)[:max_examples] for arrays in zip(*parts, strict=True)]


def probe_examples(config) -> int:
  return config.selection.probe_examples or config.selection.holdout_examples


def measure(config, mesh, encode, model_params, step: int) -> Measurement:
  """The held-out logit error and fresh-classifier numbers of the model with `model_params` (the
  flow's, at `step`; module docstring).

  The classifier's key comes from (config.seed, step), so measuring the same
  parameters again (a resumed run, a test) gives the same numbers.
  """
  holdout = config.selection.holdout_examples
  logits, z_n, labels = _encoded_split(config, mesh, encode, model_params, data.loading.HOLDOUT_SPLIT, holdout)
  _, probe_z_n, probe_labels = _encoded_split(config, mesh, encode, model_params, "train", probe_examples(config))
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), _KEY_SALT), step)
  fresh = posthoc.posthoc_nuisance_errors(
      key, (jnp.asarray(probe_z_n), jnp.asarray(probe_labels)), (jnp.asarray(z_n), jnp.asarray(labels)),
      num_classes=config.num_classes, batch_size=PROBE_BATCH_SIZE)
  return Measurement(
      step=step,
      logit_error=100.0 * float(np.mean(np.argmax(logits, -1) != labels)),
      nuisance_error=100.0 * fresh.test_error,
      nuisance_cross_entropy=posthoc.classifier_cross_entropy(fresh.classifier, fresh.variables, z_n, labels),
      probe_nuisance_error=100.0 * fresh.train_error,
  )
