"""Config checks run before a job does any work: each bad value gets a one-line ValueError
that names the field, the value and what is allowed.

Every field of configs/base.py is checked for its type and range (counts are
integers with a lower bound, rates and weights finite numbers with a sign,
probabilities in [0, 1), choices from their list); optional fields that some
configs add (model.backprop, model.split, model.compute_dtype,
optimizer.warmup_epochs) are checked when present. The `selection` section's
fields are checked together (`_check_selection`). What only the model can
judge (a coupling or permutation name, whether the levels fit the image) is
checked by building it (`loop.build_checked`), still before anything is written.
"""

import math
import numbers

import ml_collections

from invjax import data, losses, objective
from invjax.blocks import flow_steps
from invjax.data import catalogue
from invjax.train import profiling
from invjax.train import state as state_lib
from invjax.train.selection import measurement

IMAGE_DATASETS = tuple(name for name, dataset in catalogue.RECORDS.items() if dataset.image)
COMPUTE_DTYPES = ("", "float32", "bfloat16", "float16")


def _get(config, name: str):
  value = config
  for part in name.split("."):
    if part not in value:
      raise ValueError(f"config.{name} is missing: every config derives from configs/base.py, which sets it.")
    value = value[part]
  return value


def _integer(config, name: str, minimum: int, meaning: str = "") -> None:
  value = _get(config, name)
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
    raise ValueError(f"config.{name}={value!r} must be an integer >= {minimum}{meaning}.")


def _number(config, name: str, low: float, high: float | None = None, *, low_open: bool = False,
            meaning: str = "") -> None:
  """A finite real in [low, high) (or (low, high) with low_open)."""
  value = _get(config, name)
  ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
  ok = ok and (value > low if low_open else value >= low) and (high is None or value < high)
  if not ok:
    if high is None:
      bounds = f"{'>' if low_open else '>='} {low:g}"
    else:
      bounds = f"in {'(' if low_open else '['}{low:g}, {high:g})"
    raise ValueError(f"config.{name}={value!r} must be a finite number {bounds}{meaning}.")


def _choice(config, name: str, choices) -> None:
  value = _get(config, name)
  if value not in choices:
    raise ValueError(f"config.{name} must be one of {tuple(choices)}; got {value!r}.")


def _integers(config, name: str, minimum: int, allow_single: bool = False) -> None:
  value = _get(config, name)
  values = [value] if allow_single and isinstance(value, numbers.Integral) else value
  if (not isinstance(values, (list, tuple)) or not values
      or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum for v in values)):
    single = "an integer or " if allow_single else ""
    raise ValueError(f"config.{name}={value!r} must be {single}a non-empty sequence of integers >= {minimum}.")


def _check_data(config, num_devices: int) -> None:
  _choice(config, "dataset", IMAGE_DATASETS)
  _integer(config, "num_classes", 2)
  if config.num_classes != data.NUM_CLASSES[config.dataset]:
    raise ValueError(f"config.num_classes={config.num_classes} but {config.dataset} has "
                     f"{data.NUM_CLASSES[config.dataset]} classes.")
  _integer(config, "seed", 0)
  for name in ("batch_size", "eval_batch_size"):
    _integer(config, name, 1)
    if config[name] % num_devices:
      raise ValueError(f"config.{name}={config[name]} must be a positive multiple of the {num_devices} devices.")
  splits = _get(config, "eval_splits")
  if not isinstance(splits, (list, tuple)) or any(split not in data.splits(config.dataset) for split in splits):
    raise ValueError(f"config.eval_splits={splits!r} must be a sequence of splits of {config.dataset}: "
                     f"{data.splits(config.dataset)}.")
  if not isinstance(_get(config, "dequantize"), bool):
    raise ValueError(f"config.dequantize={config.dequantize!r} must be True or False.")


def _check_schedule(config) -> None:
  _integer(config, "total_steps", 0)
  _integer(config, "eval_examples", 0, " (0: the whole split)")
  _integer(config, "train_eval_examples", 0, " (0: the whole split)")
  for name in ("log_every_steps", "eval_every_steps", "checkpoint_every_steps"):
    _integer(config, name, 1)
  _integer(config, "keep_checkpoints", 1, " (a run keeps at least its latest checkpoint)")
  profiling.window(_get(config, "profile_steps"))


def _check_model(config) -> None:
  _choice(config, "model.kind", state_lib.MODEL_KINDS)
  if config.model.kind == "cnn":
    if "dropout" in config.model:
      _number(config, "model.dropout", 0.0, 1.0, meaning=" (a drop probability; 1 would drop everything)")
    for name in ("channels", "hidden"):
      if name in config.model:
        _integers(config, f"model.{name}", 1, allow_single=True)
    return
  known = {"kind", "compute_dtype", *state_lib.FI_REVNET_FIELDS}
  unknown = sorted(set(config.model) - known)
  if unknown:
    raise ValueError(f"config.model.{unknown[0]} is not a fi_revnet field; they are {tuple(sorted(known))}.")
  _number(config, "model.dropout", 0.0, 1.0, meaning=" (a drop probability; 1 would drop everything)")
  _integer(config, "model.num_levels", 1)
  _integers(config, "model.steps_per_level", 1, allow_single=True)
  _integer(config, "model.width", 1)
  for name in ("split", "split_prior"):
    if name in config.model and not isinstance(config.model[name], bool):
      raise ValueError(f"config.model.{name}={config.model[name]!r} must be True or False.")
  if "compute_dtype" in config.model:
    _choice(config, "model.compute_dtype", COMPUTE_DTYPES)
  if "backprop" in config.model:
    _choice(config, "model.backprop", flow_steps.BACKPROPS)


def _check_loss_and_optimizers(config) -> None:
  for term in objective.TERMS:
    _number(config, f"loss.{term.weight}", 0.0)
  _choice(config, "loss.nuisance_form", losses.NUISANCE_FORMS)
  for name in ("independence_start_step", "independence_ramp_steps"):
    if name in config.loss:
      _integer(config, f"loss.{name}", 0)
  if "mle_over" in config.loss:
    _choice(config, "loss.mle_over", losses.MLE_OVER)
  if "logit_batch_norm" in config.loss and not isinstance(config.loss.logit_batch_norm, bool):
    raise ValueError(f"config.loss.logit_batch_norm={config.loss.logit_batch_norm!r} must be True or False.")
  if config.model.kind == "cnn" and config.loss.get("logit_batch_norm", False):
    raise ValueError("config.loss.logit_batch_norm is the fi-RevNet's logit head (invjax.logit_norm): a CNN has "
                     "its own last layer; set it to False.")
  if config.model.kind == "cnn" and any(config.loss[name] for name in objective.LATENT_TERM_WEIGHTS):
    weights = ", ".join(f"config.loss.{name}" for name in objective.LATENT_TERM_WEIGHTS)
    raise ValueError(f"A CNN has no nuisance latent: set {weights} to 0.")
  _integers(config, "nuisance_classifier.hidden", 1)
  _number(config, "nuisance_classifier.dropout", 0.0, 1.0, meaning=" (a drop probability)")
  _integer(config, "nuisance_classifier.steps_per_batch", 1)
  _number(config, "nuisance_classifier.learning_rate", 0.0, low_open=True)
  _integer(config, "nuisance_classifier.reset_every_steps", 0, " (0: never reset)")
  if "replay_batches" in config.nuisance_classifier:
    _integer(config, "nuisance_classifier.replay_batches", 1, " (1: the current batch only)")
  _number(config, "optimizer.learning_rate", 0.0, low_open=True)
  _number(config, "optimizer.decay_factor", 0.0, low_open=True)
  _number(config, "optimizer.clip_norm", 0.0, meaning=" (0: no clipping)")
  epochs = _get(config, "optimizer.decay_epochs")
  if not isinstance(epochs, (list, tuple)) or any(
      isinstance(e, bool) or not isinstance(e, numbers.Real) or not math.isfinite(e) or e < 0 for e in epochs):
    raise ValueError(f"config.optimizer.decay_epochs={epochs!r} must be a sequence of epochs >= 0.")
  if "warmup_epochs" in config.optimizer:
    _number(config, "optimizer.warmup_epochs", 0.0, meaning=" (0: no warm-up)")


def _check_penalised_part(config) -> None:
  part = config.loss.get("penalised_part", objective.ALL_OF_Z_N)
  if part == objective.ALL_OF_Z_N:
    return
  if config.model.kind != "fi_revnet":
    raise ValueError(f"config.loss.penalised_part={part!r} is a part of a fi-RevNet's z_n: a {config.model.kind} has "
                     f"none; set it to {objective.ALL_OF_Z_N!r}.")
  shape = data.input_shape(config.dataset, **config.dataset_options)
  parts = (objective.ALL_OF_Z_N, *state_lib.build_model(config.model, shape, config.num_classes).nuisance_parts())
  if part not in parts:
    raise ValueError(f"config.loss.penalised_part={part!r} must be one of {parts} (the parts of this model's z_n).")


def _check_selection(config) -> None:
  """The selection rule's fields (invjax/train/selection/rule.py); with holdout_examples > 0 the run needs a
  z_n, a dataset with a fixed training split and enough examples for the fresh classifier."""
  _integer(config, "selection.holdout_examples", 0, " (0: no selection)")
  _integer(config, "selection.probe_examples", 0, " (0: as many as selection.holdout_examples)")
  _integer(config, "selection.every_steps", 0, " (0: at every evaluation)")
  _number(config, "selection.logit_error_tolerance", 0.0, 100.0, meaning=" (points of held-out logit error)")
  holdout = config.selection.holdout_examples
  if not holdout:
    return
  if config.model.kind != "fi_revnet":
    raise ValueError(f"config.selection.holdout_examples={holdout} needs a fi_revnet: a {config.model.kind} has no "
                     "z_n to measure; set it to 0.")
  dataset = catalogue.record(config.dataset)
  if not dataset.in_memory:
    raise ValueError(f"config.selection.holdout_examples={holdout}: {config.dataset} has no fixed training split to "
                     "hold examples out of; set it to 0.")
  available = dataset.num_examples("train", {})
  if measurement.probe_examples(config) < measurement.PROBE_BATCH_SIZE:
    raise ValueError(f"config.selection.probe_examples={measurement.probe_examples(config)} (0: holdout_examples) "
                     f"must be >= {measurement.PROBE_BATCH_SIZE}, a batch of the fresh nuisance classifier.")
  if holdout + measurement.probe_examples(config) > available:
    raise ValueError(f"config.selection.holdout_examples={holdout} plus the probe_examples "
                     f"{measurement.probe_examples(config)} exceed the {available} training examples.")


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises a ValueError that says what is allowed for the first bad value of `config`."""
  _check_data(config, num_devices)
  _check_schedule(config)
  _check_model(config)
  _check_loss_and_optimizers(config)
  _check_selection(config)
  state_lib.check_model_input(config)
  _check_penalised_part(config)  # reads the model's parts: after the check that the model takes the inputs
