"""`train_and_evaluate(config, workdir)`: a training job that checkpoints, resumes and evaluates.

A run is reproducible from (config, workdir): the data order of epoch e comes
from (config.seed, e), the step noise from (config.seed, step), so a job that
resumes from a checkpoint continues exactly where the uninterrupted run would be.
"""

import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from invjax import data
from invjax import losses
from invjax import parallel
from invjax.train import checkpoints
from invjax.train import state as state_lib
from invjax.train import step as step_lib
from invjax.train import writers

IMAGE_DATASETS = ("mnist", "fashion_mnist", "shift_mnist/binary", "shift_mnist/textured", "imagenet")


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises a ValueError that says what is allowed for each bad value."""
  if config.dataset not in IMAGE_DATASETS:
    raise ValueError(f"config.dataset must be one of {IMAGE_DATASETS}; got {config.dataset!r}.")
  if config.model.kind not in state_lib.MODEL_KINDS:
    raise ValueError(f"config.model.kind must be one of {state_lib.MODEL_KINDS}; got {config.model.kind!r}.")
  for name in ("batch_size", "eval_batch_size"):
    if config[name] <= 0 or config[name] % num_devices:
      raise ValueError(
          f"config.{name}={config[name]} must be a positive multiple of the {num_devices} devices.")
  for name in ("ce_weight", "logit_penalty_weight", *losses.LATENT_TERM_WEIGHTS):
    if config.loss[name] < 0:
      raise ValueError(f"config.loss.{name}={config.loss[name]} must be >= 0.")
  if config.loss.nuisance_form not in losses.NUISANCE_FORMS:
    raise ValueError(f"config.loss.nuisance_form must be one of {losses.NUISANCE_FORMS}; "
                     f"got {config.loss.nuisance_form!r}.")
  if config.model.kind == "cnn" and any(config.loss[name] for name in losses.LATENT_TERM_WEIGHTS):
    weights = ", ".join(f"config.loss.{name}" for name in losses.LATENT_TERM_WEIGHTS)
    raise ValueError(f"A CNN has no nuisance latent: set {weights} to 0.")
  if config.nuisance_classifier.steps_per_batch < 1:
    raise ValueError("config.nuisance_classifier.steps_per_batch must be >= 1.")
  if config.nuisance_classifier.reset_every_steps < 0:
    raise ValueError("config.nuisance_classifier.reset_every_steps must be >= 0 (0: never reset).")
  if config.total_steps < 0:
    raise ValueError(f"config.total_steps={config.total_steps} must be >= 0.")
  state_lib.check_model_input(config)


def train_batches(config, mesh, start_step: int, steps_per_epoch: int):
  """Endless training batches from global step `start_step` on; epoch e is shuffled by (seed, e)."""
  for epoch in itertools.count(start_step // steps_per_epoch):
    batches = data.load(
        config.dataset, "train", batch_size=config.batch_size, seed=config.seed * 100_003 + epoch,
        num_epochs=1, dequantize=False, mesh=mesh, **config.dataset_options,
    )
    skip = start_step - epoch * steps_per_epoch if epoch == start_step // steps_per_epoch else 0
    yield from itertools.islice(batches, skip, None)


def evaluate(config, mesh, eval_step, state, split: str, max_examples: int | None = None) -> dict:
  """Error rates (%) and bits/dim of `state` on a split (its first `max_examples`)."""
  batches = data.load(config.dataset, split, batch_size=config.eval_batch_size, mesh=mesh, num_epochs=1,
                      shuffle=False, dequantize=False, drop_remainder=False, **config.dataset_options)
  if max_examples:
    batches = itertools.islice(batches, -(-max_examples // config.eval_batch_size))
  totals = None
  for batch in batches:
    sums = eval_step(state, batch)
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  totals = jax.tree.map(float, jax.device_get(totals))
  count = totals.pop("count")
  return {
      name.replace("_errors", "_error"): value / count * (100.0 if name.endswith("errors") else 1.0)
      for name, value in totals.items()
  }


def evaluate_all(config, mesh, eval_step, state) -> dict:
  results = {}
  for split in ("train", *config.eval_splits):
    limit = config.train_eval_examples if split == "train" else config.eval_examples
    for name, value in evaluate(config, mesh, eval_step, state, split, limit).items():
      results[f"{split}/{name}"] = value
  return results


def _recovery(last_saved: int | None, workdir: str) -> str:
  return (f"Nothing from this step on was saved; the last good checkpoint (step {last_saved}) is in "
          f"{workdir}/checkpoints. Lower config.optimizer.learning_rate or set "
          "config.optimizer.clip_norm, then run again to resume from it.")


def _check_finite(state, step: int, last_saved: int | None, workdir: str) -> None:
  finite = jax.tree.reduce(lambda a, b: a & b, jax.tree.map(lambda x: jnp.all(jnp.isfinite(x)), state.flow))
  if not bool(finite):
    raise FloatingPointError(f"The parameters became non-finite at step {step}. " + _recovery(last_saved, workdir))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or resumes) the run in `workdir` up to `config.total_steps`; returns final metrics."""
  mesh = parallel.make_data_mesh()
  validate(config, mesh.size)
  is_lead_process = jax.process_index() == 0
  if is_lead_process:
    checkpoints.save_config(config, workdir)
  steps_per_epoch = data.num_examples(config.dataset, "train", **config.dataset_options) // config.batch_size
  parts = state_lib.build(config, steps_per_epoch)
  key = jax.random.key(config.seed)
  init_key, step_key = jax.random.split(key)
  replicated = parallel.replicated(mesh)

  first_batch = next(train_batches(config, mesh, 0, steps_per_epoch))
  state = jax.jit(parts.create_state, out_shardings=replicated)(first_batch["image"], init_key)
  checkpoint_manager = checkpoints.manager(workdir, config.keep_checkpoints)
  if checkpoint_manager.latest_step() is not None:
    state = checkpoints.restore(checkpoint_manager, state)
    logging.info("Resumed from step %d in %s.", int(state.step), workdir)

  train_step = jax.jit(
      step_lib.make_train_step(config, parts.model, parts.nuisance_classifier, parts.flow_tx, parts.nuisance_tx),
      out_shardings=replicated, donate_argnums=0,
  )
  eval_step = jax.jit(step_lib.make_eval_step(config, parts.model, parts.nuisance_classifier))
  writer = writers.MetricWriter(workdir, enabled=is_lead_process)
  writer.mark_start(int(state.step), writers.hardware())
  progress = writers.Progress(int(state.step), config.total_steps)
  last_saved = checkpoint_manager.latest_step()

  batches = train_batches(config, mesh, int(state.step), steps_per_epoch)
  evaluation = None
  for step in range(int(state.step) + 1, config.total_steps + 1):
    state, metrics = train_step(state, next(batches), step_key)
    if step % config.log_every_steps == 0 or step == config.total_steps:
      # Reading metrics waits for the step, so only at log steps; a non-finite state
      # between them is caught before any checkpoint is written (`_check_finite`).
      scalars = {f"train/{k}": float(v) for k, v in jax.device_get(metrics).items()}
      if not np.isfinite(scalars["train/loss"]):
        checkpoint_manager.wait_until_finished()
        raise FloatingPointError(
            f"The loss became {scalars['train/loss']} at step {step}. " + _recovery(last_saved, workdir))
      writer.write(step, {**scalars, "train/epoch": step / steps_per_epoch, **progress.rates(step)})
      logging.info("%s", progress.line(step, scalars))
    if step % config.eval_every_steps == 0 or step == config.total_steps:
      evaluation = evaluate_all(config, mesh, eval_step, state)
      writer.write(step, evaluation)
    if step % config.checkpoint_every_steps == 0 or step == config.total_steps:
      _check_finite(state, step, last_saved, workdir)
      checkpoints.save(checkpoint_manager, step, state)
      last_saved = step

  checkpoint_manager.wait_until_finished()
  evaluation = evaluation or evaluate_all(config, mesh, eval_step, state)
  final = {"step": int(state.step), "epochs": int(state.step) / steps_per_epoch, **evaluation}
  writer.write_final(final)
  writer.close()
  checkpoint_manager.close()
  return final
