r"""The post-hoc nuisance classifier (SPEC 4): how much label information z_n holds.

After training, the flow F is frozen and the nuisance variables z_n of a
dataset are computed once (`metamers.encode`). A fresh `losses.NuisanceClassifier`
D (an MLP, SPEC 5) is then trained on them alone,

    min_theta  E_(z_n, y) [ CE(D_theta(z_n), y) ],

with optax (Adamax, learning rate 1e-3, as the authors' nuisance classifier)
on shuffled minibatches for a number of epochs. Its error on the test split's
z_n lower-bounds how well the label can be read from z_n: a low error means
the class leaked into the nuisances. The paper's MNIST numbers (SPEC 6): CE
model 0.34% test / 0.00% train error, iCE model 27.70% / 40.21%.

`posthoc_by_part` asks where the label hides: it trains the probes of `PROBES`
(the MLP above and a linear classifier) on each part of z_n separately (for a
fi-RevNet: the final tensor's non-logit entries and each split latent,
`FiRevNet.nuisance_parts`) as well as on all of it. A part whose linear probe
fails while its MLP succeeds holds the label only nonlinearly.

`mean_label_dependence` gives a second, classifier-free reading: the kernel
CKA of z_n and the labels (`losses.label_dependence`) averaged over batches.
"""

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from invjax import losses

# Probe name -> hidden widths of its `losses.NuisanceClassifier` (no hidden layer: a linear classifier).
PROBES = {"mlp": (512, 512), "linear": ()}


class PosthocResult(NamedTuple):
  """A trained post-hoc classifier and its errors (fractions in [0, 1]).

  Attributes:
    classifier: the `losses.NuisanceClassifier` module.
    variables: its trained variables.
    train_error, test_error: error rates on the training and test z_n.
    loss_history: (num_epochs,) mean training cross-entropy of every epoch.
  """

  classifier: losses.NuisanceClassifier
  variables: dict
  train_error: float
  test_error: float
  loss_history: jax.Array


@functools.partial(jax.jit, static_argnames=("classifier", "optimizer", "batch_size"))
def _train_epoch(classifier, optimizer, batch_size, params, optimizer_state, z_n, labels, key):
  """One pass over a random order of the examples, in full batches (the remainder is skipped)."""
  order_key, dropout_key = jax.random.split(key)
  num_batches = z_n.shape[0] // batch_size
  order = jax.random.permutation(order_key, z_n.shape[0])[: num_batches * batch_size].reshape(num_batches, batch_size)

  def step(carry, inputs):
    params, optimizer_state = carry
    indices, step_key = inputs
    logits_fn = lambda p: classifier.apply({"params": p}, z_n[indices], train=True, rngs={"dropout": step_key})
    params, optimizer_state, value, _ = losses.cross_entropy_step(
        logits_fn, optimizer, params, optimizer_state, labels[indices])
    return (params, optimizer_state), value

  (params, optimizer_state), batch_losses = jax.lax.scan(
      step, (params, optimizer_state), (order, jax.random.split(dropout_key, num_batches))
  )
  return params, optimizer_state, jnp.mean(batch_losses)


@functools.partial(jax.jit, static_argnames=("classifier", "batch_size"))
def _classifier_scores(classifier, variables, z_n, labels, batch_size):
  logits = jax.lax.map(lambda z: classifier.apply(variables, z[None])[0], z_n, batch_size=batch_size)
  return losses.error_rate(logits, labels), losses.cross_entropy(logits, labels)


def classifier_error_rate(
    classifier: losses.NuisanceClassifier, variables, z_n: jax.Array, labels: jax.Array, *, batch_size: int = 1024
) -> float:
  """Fraction of examples z_n (N, D) that `classifier` (in evaluation mode) gets wrong."""
  return float(_classifier_scores(classifier, variables, z_n, labels, batch_size)[0])


def classifier_cross_entropy(
    classifier: losses.NuisanceClassifier, variables, z_n: jax.Array, labels: jax.Array, *, batch_size: int = 1024
) -> float:
  """Mean cross-entropy (nats) of `classifier` (evaluation mode) on z_n (N, D): on examples it did not
  train on, H(y) minus it lower-bounds the mutual information I(z_n; y), so the larger it is, the
  less label information the classifier found in z_n. Unlike the error, it keeps falling when
  the error is already 0."""
  return float(_classifier_scores(classifier, variables, z_n, labels, batch_size)[1])


def train_nuisance_classifier(
    key: jax.Array,
    z_n: jax.Array,
    labels: jax.Array,
    *,
    num_classes: int,
    num_epochs: int = 10,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    hidden: Sequence[int] = (512, 512),
    dropout: float = 0.1,
    report: Callable[[int, float], None] | None = None,
) -> tuple[losses.NuisanceClassifier, dict, jax.Array]:
  """Trains a fresh nuisance classifier on fixed z_n (N, D) with labels (N,).

  Args:
    key: PRNG key for the initialisation, the example order and dropout.
    z_n, labels: the training set.
    num_classes, hidden, dropout: the `losses.NuisanceClassifier`.
    num_epochs, batch_size, learning_rate: Adamax training.
    report: optional `report(epoch, mean_loss)` called after every epoch (1-based).

  Returns:
    (classifier, variables, loss_history (num_epochs,)).
  """
  if z_n.ndim != 2 or labels.shape != z_n.shape[:1]:
    raise ValueError(f"Need z_n of shape (N, D) and labels of shape (N,); got {z_n.shape} and {labels.shape}.")
  if z_n.shape[0] < batch_size:
    raise ValueError(f"Need at least batch_size={batch_size} examples to train on; got {z_n.shape[0]}.")
  classifier = losses.NuisanceClassifier(num_classes=num_classes, hidden=tuple(hidden), dropout=dropout)
  optimizer = optax.adamax(learning_rate)
  init_key, key = jax.random.split(key)
  params = classifier.init(init_key, z_n[:1])["params"]
  optimizer_state = optimizer.init(params)
  history = []
  for epoch, epoch_key in enumerate(jax.random.split(key, num_epochs), start=1):
    params, optimizer_state, mean_loss = _train_epoch(
        classifier, optimizer, batch_size, params, optimizer_state, z_n, labels, epoch_key
    )
    history.append(mean_loss)
    if report is not None:
      report(epoch, float(mean_loss))
  return classifier, {"params": params}, jnp.stack(history)


def mean_label_dependence(z_n: jax.Array, labels: jax.Array, *, num_classes: int, batch_size: int = 128) -> float:
  """`losses.label_dependence` of z_n (N, ...) and labels (N,), averaged over consecutive full batches.

  The batch size matters: the estimate is biased upwards, more so for small batches,
  so compare values taken with the same one (and with the labels permuted, its floor).
  """
  num_batches = z_n.shape[0] // batch_size
  if num_batches == 0:
    raise ValueError(f"Need at least batch_size={batch_size} examples; got {z_n.shape[0]}.")
  batched = lambda array: array[: num_batches * batch_size].reshape(num_batches, batch_size, *array.shape[1:])
  per_batch = jax.lax.map(lambda batch: losses.label_dependence(*batch, num_classes), (batched(z_n), batched(labels)))
  return float(jnp.mean(per_batch))


def posthoc_nuisance_errors(
    key: jax.Array,
    train: tuple[jax.Array, jax.Array],
    test: tuple[jax.Array, jax.Array],
    *,
    num_classes: int,
    **training_options,
) -> PosthocResult:
  """Trains on `train` = (z_n, labels) and measures the error on it and on `test`.

  `training_options` are those of `train_nuisance_classifier`.
  """
  classifier, variables, history = train_nuisance_classifier(key, *train, num_classes=num_classes, **training_options)
  return PosthocResult(
      classifier,
      variables,
      train_error=classifier_error_rate(classifier, variables, *train),
      test_error=classifier_error_rate(classifier, variables, *test),
      loss_history=history,
  )


def posthoc_by_part(
    key: jax.Array,
    train: tuple[jax.Array, jax.Array],
    test: tuple[jax.Array, jax.Array],
    parts: dict[str, slice],
    *,
    num_classes: int,
    probes: dict[str, Sequence[int]] | None = None,
    report: Callable[[str], None] | None = None,
    **training_options,
) -> dict[str, dict[str, dict[str, float]]]:
  """{part: {probe: {"train_error", "test_error"}}}: each probe trained afresh on z_n[:, part] alone.

  Args:
    key: PRNG key of every probe (each part and probe starts from it).
    train, test: (z_n, labels) of the two splits.
    parts: part name -> columns of z_n (e.g. {"all": slice(None), **model.nuisance_parts()}).
    num_classes: the number of labels.
    probes: probe name -> hidden widths (default `PROBES`).
    report: optional `report(line)` after each probe.
    **training_options: those of `train_nuisance_classifier` (not `hidden`).
  """
  results = {}
  for part, columns in parts.items():
    results[part] = {}
    for probe, hidden in (PROBES if probes is None else probes).items():
      result = posthoc_nuisance_errors(
          key, (train[0][:, columns], train[1]), (test[0][:, columns], test[1]), num_classes=num_classes,
          hidden=hidden, **training_options)
      results[part][probe] = {"train_error": result.train_error, "test_error": result.test_error}
      if report is not None:
        report(f"  {part} ({train[0][:, columns].shape[1]} values), {probe} probe: "
               f"train error {result.train_error:.2%}, test error {result.test_error:.2%}")
  return results
