r"""A fi-RevNet classifier on the concentric spheres (SPEC 4), and its training.

The data are vectors x in R^d (d = 100) on two spheres centred at the origin,
radius 1 (class 0) and 10 (class 1). The flow sees each vector as a 1x1 "image"
with d channels, `image_shape = (1, 1, d)`, so that the fi-RevNet's blocks
(ActNorm, permutations, couplings) act on the d coordinates without squeezes
or splits: F: R^d -> R^d, z_s = the first 2 outputs, z_n = the other d - 2.

`train_flow_classifier` fits F with plain cross-entropy on z_s,

    min_theta  E_(x, y) [ CE(softmax(z_s(x; theta)), y) ]   (losses.cross_entropy),

with Adam on a stream of batches; the ActNorm layers are initialised on the
first batch. CE alone leaves z_n free to keep the radius, which is what makes
the metamers of this model cross from one sphere to the other.
"""

from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import optax

from invjax import losses, models
from invjax.analysis import features

NUM_CLASSES = 2


def sphere_flow(dimension: int = 100, **overrides) -> models.FiRevNet:
  """A small vector fi-RevNet: one level of 4 additive steps of width 32, no dropout."""
  return models.FiRevNet(**{
      "image_shape": (1, 1, dimension),
      "num_classes": NUM_CLASSES,
      "num_levels": 1,
      "squeeze": False,
      "split": False,
      "steps_per_level": 4,
      "width": 32,
      "dropout": 0.0,
      **overrides,
  })


def as_model_input(model: models.FiRevNet, x) -> jax.Array:
  """Vectors (B, d) -> model inputs (B, *model.image_shape)."""
  return jnp.reshape(x, (x.shape[0], *model.image_shape))


def _train_step(model, optimizer):
  logits = features.logits_function(model)

  @jax.jit
  def train_step(params, optimizer_state, x, labels):
    params, optimizer_state, value, batch_logits = losses.cross_entropy_step(
        lambda p: logits({"params": p}, x), optimizer, params, optimizer_state, labels)
    return params, optimizer_state, {"loss": value, "error": losses.error_rate(batch_logits, labels)}

  return train_step


def train_flow_classifier(
    key: jax.Array,
    model: models.FiRevNet,
    batches: Iterable[dict],
    *,
    num_steps: int,
    learning_rate: float = 1e-3,
    report: Callable[[int, dict], None] | None = None,
    report_every: int = 50,
) -> dict:
  """Trains `model` with cross-entropy on z_s for `num_steps` batches.

  Args:
    key: PRNG key of the initialisation.
    model: a FiRevNet; batches' "image" arrays are reshaped to its image_shape.
    batches: yields {"image": (B, ...), "label": (B,)} (e.g. `data.load("spheres", "train", ...)`),
      at least `num_steps` of them.
    num_steps: optimisation steps (one batch each).
    learning_rate: Adam's learning rate.
    report: optional `report(step, {"loss", "error"})` every `report_every` steps
      (1-based) and at the last step, with the batch's loss and error rate.

  Returns:
    The trained variables {"params": ...}.
  """
  if num_steps < 1:
    raise ValueError(f"num_steps must be positive; got {num_steps}.")
  batch_iterator = iter(batches)

  def next_batch(step):
    batch = next(batch_iterator, None)
    if batch is None:
      raise ValueError(f"batches ran out after {step - 1} of num_steps={num_steps} steps; pass a longer stream.")
    return as_model_input(model, batch["image"]), batch["label"]

  x, labels = next_batch(1)
  params = jax.jit(model.init)(key, x)["params"]  # ActNorm initialises on the first batch.
  optimizer = optax.adam(learning_rate)
  optimizer_state = optimizer.init(params)
  train_step = _train_step(model, optimizer)
  for step in range(1, num_steps + 1):
    if step > 1:
      x, labels = next_batch(step)
    params, optimizer_state, metrics = train_step(params, optimizer_state, x, labels)
    if report is not None and (step % report_every == 0 or step == num_steps):
      report(step, {name: float(value) for name, value in metrics.items()})
  return {"params": params}
