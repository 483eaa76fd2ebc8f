"""`train_and_evaluate(config, workdir)`: a training job that checkpoints, resumes and evaluates.

A run is reproducible from (config, workdir): the data order of epoch e comes
from (config.seed, e), the step noise from (config.seed, step), so a job that
resumes from a checkpoint continues exactly where the uninterrupted run would be.
What keeps a run safe from bad input and faults lives beside this module:
`validation` (config checks), `identity` (what may change on resume),
`integrity` (checksummed checkpoints), `workdir_lock` and `preemption`.
"""

import contextlib
import itertools
import os
import pathlib
import threading
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from invjax import data, parallel
from invjax.train import (
  checkpoints,
  identity,
  integrity,
  preemption,
  profiling,
  run_data,
  run_folder,
  validation,
  workdir_lock,
  writers,
)
from invjax.train import state as state_lib
from invjax.train import step as step_lib
from invjax.train.selection import job as selection_job


def train_batches(config, mesh, start_step: int, steps_per_epoch: int):
  """Endless training batches from global step `start_step` on; epoch e is shuffled by (seed, e)."""
  for epoch in itertools.count(start_step // steps_per_epoch):
    batches = data.load(
        config.dataset, "train", batch_size=config.batch_size, seed=config.seed * 100_003 + epoch,
        num_epochs=1, dequantize=False, mesh=mesh, **run_data.data_options(config),
    )
    skip = start_step - epoch * steps_per_epoch if epoch == start_step // steps_per_epoch else 0
    yield from itertools.islice(batches, skip, None)


# Keeps the first `count` examples of a batch's mask (jitted: the count is an argument, not a new shape).
_keep_first = jax.jit(lambda mask, count: mask & (jnp.arange(mask.shape[0]) < count))


def first_examples(batches, max_examples: int, batch_size: int):
  """The batches that hold `max_examples` examples: the last one masked after them, so every
  batch keeps its shape (one compilation) and exactly `max_examples` count."""
  for index, batch in enumerate(itertools.islice(batches, -(-max_examples // batch_size))):
    remaining = max_examples - index * batch_size
    yield batch if remaining >= batch_size else {**batch, "mask": _keep_first(batch["mask"], remaining)}


def evaluate(config, mesh, eval_step, state, split: str, max_examples: int | None = None) -> dict:
  """Error rates (%) and bits/dim of `state` on a split (exactly its first `max_examples`)."""
  batches = run_data.eval_batches(config, mesh, split)
  if max_examples:
    batches = first_examples(batches, max_examples, config.eval_batch_size)
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


def _resume_point(checkpoint_manager, abstract_state, workdir: pathlib.Path) -> str:
  """After a stop: waits for saves in flight, then names the newest checkpoint that verifies."""
  try:
    checkpoint_manager.wait_until_finished()
    checkpoint_manager.reload()
  except Exception as error:  # the stop may come from a failing save itself
    return f"Waiting for the checkpoint in flight failed ({type(error).__name__}: {error})."
  if not checkpoint_manager.all_steps():
    return "No checkpoint was saved yet: running the same command again starts the run from step 0."
  try:
    state, _ = checkpoints.restore_newest_good(checkpoint_manager, abstract_state, set_aside=False)
  except integrity.CorruptCheckpoint as error:
    return str(error)
  except Exception as error:  # e.g. out of memory after the failure that stopped the job
    return f"The saved checkpoints could not be verified ({type(error).__name__}: {error})."
  return (f"The newest checkpoint that verifies is step {int(state.step)} in {workdir / run_folder.CHECKPOINT_DIR}; "
          "running the same command again resumes from it.")


@jax.jit
def _all_finite(tree) -> jax.Array:
  """Whether every entry of `tree` is finite: one program (leaf by leaf, eagerly, it was two per leaf)."""
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def _check_finite(state, step: int) -> None:
  if not bool(_all_finite(state.flow)):
    raise FloatingPointError(f"The parameters became non-finite by step {step}: training diverged.")


_DIVERGED_ADVICE = (" Resuming with the same config would diverge again: start a new run (another --workdir) with "
                    "a lower config.optimizer.learning_rate or a config.optimizer.clip_norm.")


def _stop_requested(watcher: preemption.SigtermWatcher, checkpoint_manager, step: int) -> bool:
  """Whether to stop after `step`: SIGTERM seen (one process), or JAX's preemption service says
  that all processes have reached the step to stop at together (several processes; orbax's
  check, which reads "no" where the service is off instead of raising)."""
  if jax.process_count() > 1:
    return checkpoint_manager.reached_preemption(step)
  return watcher.requested


def _lower_and_compile(jitted, args: tuple):
  """`jitted`'s executable for `args` (XLA's compile: seconds to minutes, in C++)."""
  return jitted.lower(*args).compile()


def compile_watching(jitted, args: tuple, watcher: preemption.SigtermWatcher, next_step: int):
  """`jitted` compiled for `args` in a worker thread, while the main thread honours SIGTERM.

  Python runs signal handlers in the main thread between bytecodes, so a compile there would
  hold a SIGTERM until it ends (39 s in issue 23, past a preemption's ~30 s grace
  period). Here the main thread waits in short slices and stops with `Preempted` as soon
  as the watcher has seen SIGTERM: no step ran since the run was opened, so nothing needs saving
  (the abandoned compile is a daemon thread and does not delay the exit)."""
  outcome = {}

  def compile_in_thread():
    try:
      outcome["compiled"] = _lower_and_compile(jitted, args)
    except BaseException as error:  # handed to the main thread below
      outcome["error"] = error

  logging.info("Compiling the train step.")
  thread = threading.Thread(target=compile_in_thread, name="compile", daemon=True)
  thread.start()
  while thread.is_alive():
    thread.join(0.1)
    if watcher.requested:
      raise preemption.Preempted(f"Stopped by SIGTERM (preemption) while compiling, before step {next_step}: "
                                 "no step needed saving.")
  if "error" in outcome:
    raise outcome["error"]
  return outcome["compiled"]


def build_checked(config, mesh, steps_per_epoch: int, first_images, key):
  """The run's parts and the abstract (replicated) train state; ValueError if the model cannot be built."""
  parts = state_lib.build(config, steps_per_epoch)
  try:
    abstract = jax.eval_shape(parts.create_state, first_images, key)
  except (ValueError, TypeError) as error:
    raise ValueError(f"config.model does not build a model for {config.dataset}: {error}") from None
  replicated = parallel.replicated(mesh)
  return parts, jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=replicated), abstract)


def _open_run(config, workdir: pathlib.Path, checkpoint_manager, abstract_state, create_state):
  """The state to continue from (restored and verified, or fresh) and the safe config changes;
  raises before anything of the run is changed (except moving corrupt checkpoints aside)."""
  stored = identity.stored_config(workdir)
  if stored is None and checkpoint_manager.all_steps():
    raise ValueError(f"{workdir} has checkpoints but no {run_folder.CONFIG_FILE}: its identity is unknown. "
                     "Restore the file or pass a new --workdir.")
  changes = identity.check_resume(stored, config, workdir) if stored is not None else {}
  if checkpoint_manager.latest_step() is None:
    set_aside = workdir / run_folder.BAD_CHECKPOINT_DIR
    if set_aside.exists() and any(set_aside.iterdir()):
      raise ValueError(f"{workdir} has no usable checkpoint left (unreadable ones were moved to {set_aside}). "
                       f"Starting over from step 0 would mix two runs: move {set_aside} away first to do that, "
                       "or pass a new --workdir.")
    return create_state(), changes
  state, skipped = checkpoints.restore_newest_good(checkpoint_manager, abstract_state,
                                                  set_aside=jax.process_index() == 0)
  if int(state.step) > config.total_steps:
    raise ValueError(f"config.total_steps={config.total_steps} is below step {int(state.step)}, where the run in "
                     f"{workdir} stands: pass --config.total_steps={int(state.step)} or more to resume it (nothing "
                     "was changed), or a new --workdir to train a shorter run.")
  message = f"Resumed from step {int(state.step)} in {workdir}"
  if skipped:
    message += f" (newer checkpoints were unusable: {'; '.join(skipped)})"
  logging.info("%s.", message)
  return state, changes


def _check_workdir(workdir: pathlib.Path) -> None:
  if workdir.is_symlink() and not workdir.exists():
    raise ValueError(f"--workdir={workdir} is a symbolic link to {os.readlink(workdir)}, which does not lead to a "
                     "folder (it points nowhere, or back to itself): pass a folder, or a link to one.")
  if workdir.exists() and not workdir.is_dir():
    raise ValueError(f"--workdir={workdir} is a file, not a folder: pass a folder (it is created if missing).")
  for parent in workdir.absolute().parents:
    if parent.exists():
      if not parent.is_dir():
        raise ValueError(f"--workdir={workdir} lies under {parent}, which is a file.")
      if not os.access(parent, os.W_OK) and not workdir.exists():
        raise ValueError(f"--workdir={workdir} cannot be created: {parent} is not writable.")
      break


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                       on_start: Callable[[], None] | None = None, *, deadline: float | None = None) -> dict:
  """Trains (or resumes) the run in `workdir` up to `config.total_steps`; returns final metrics.

  With a `deadline` (a `time.time()` value; one process only) the job also ends after the
  first step that finishes past it, as after the last step: saved and evaluated, with the
  step reached in the metrics; the same call without a deadline resumes from there.

  Before anything is written: the config is validated, the model built, the workdir
  locked (`workdir_lock`), the config compared with the run's (`identity`) and the newest
  checkpoint that verifies restored (`integrity`). Then `on_start` runs (the command line
  records itself) and the job trains. Every stop (a diverged loss or parameters, SIGTERM,
  an error in evaluation) waits for saves in flight and names the checkpoint to resume from.
  """
  workdir = pathlib.Path(workdir)
  mesh = parallel.make_data_mesh()
  validation.validate(config, mesh.size)
  if deadline is not None and jax.process_count() > 1:
    raise ValueError("A training deadline needs one process: the processes' clocks could stop them at "
                     "different steps.")
  _check_workdir(workdir)
  steps_per_epoch = data.num_examples(config.dataset, "train", **run_data.data_options(config)) // config.batch_size
  if steps_per_epoch < 1:
    raise ValueError(f"config.batch_size={config.batch_size} exceeds the {config.dataset} training set.")
  init_key, step_key = jax.random.split(jax.random.key(config.seed))
  try:
    first_batch = next(train_batches(config, mesh, 0, steps_per_epoch))
  except TypeError as error:  # `data` names the options a dataset does not take
    if "option" not in str(error):
      raise
    raise ValueError(f"config.dataset_options: {error}") from None
  parts, abstract_state = build_checked(config, mesh, steps_per_epoch, first_batch["image"], init_key)
  create_state = lambda: jax.jit(parts.create_state, out_shardings=parallel.replicated(mesh))(
      first_batch["image"], init_key)
  is_lead_process = jax.process_index() == 0

  with contextlib.ExitStack() as stack:
    if is_lead_process:
      stack.enter_context(workdir_lock.WorkdirLock(workdir))
    checkpoint_manager = checkpoints.manager(workdir, config.keep_checkpoints)
    stack.callback(checkpoint_manager.close)
    state, changes = _open_run(config, workdir, checkpoint_manager, abstract_state, create_state)
    selector = None
    if config.selection.holdout_examples:
      selector = selection_job.Selector(config, mesh, parts.model, workdir, abstract_state)
      stack.callback(selector.close)
    if is_lead_process:
      identity.record_start(config, workdir, int(state.step), changes,
                            first_start=identity.stored_config(workdir) is None)
    if on_start is not None:
      on_start()
    # With several processes JAX's preemption service handles SIGTERM (`_stop_requested`).
    watcher = stack.enter_context(preemption.SigtermWatcher(enabled=jax.process_count() == 1))
    writer = writers.MetricWriter(workdir, enabled=is_lead_process)
    stack.callback(writer.close)
    profiler = profiling.StepProfiler(config.profile_steps, workdir)
    stack.callback(profiler.stop)
    try:
      final = _train(config, mesh, parts, state, step_key, steps_per_epoch, checkpoint_manager, writer, watcher,
                     selector, profiler, deadline)
    except BaseException as error:
      note = _resume_point(checkpoint_manager, abstract_state, workdir)
      if isinstance(error, (FloatingPointError, preemption.Preempted)):
        raise type(error)(f"{error} {note}") from None
      error.add_note(note)
      raise
    writer.write_final(final)
    return final


def _train(config, mesh, parts, state, step_key, steps_per_epoch, checkpoint_manager, writer, watcher,
           selector: selection_job.Selector | None, profiler: profiling.StepProfiler, deadline: float | None) -> dict:
  """Steps from `state` to config.total_steps (or the `deadline`), saving, logging, evaluating,
  selecting and profiling on schedule."""
  replicated = parallel.replicated(mesh)
  train_step = jax.jit(
      step_lib.make_train_step(config, parts.model, parts.nuisance_classifier, parts.flow_tx, parts.nuisance_tx),
      out_shardings=replicated, donate_argnums=0,
  )
  eval_step = jax.jit(step_lib.make_eval_step(config, parts.model, parts.nuisance_classifier))
  writer.mark_start(int(state.step), writers.hardware())
  progress = writers.Progress(int(state.step), config.total_steps)
  batches = train_batches(config, mesh, int(state.step), steps_per_epoch)
  if int(state.step) < config.total_steps:
    first_batch = next(batches)
    batches = itertools.chain([first_batch], batches)
    train_step = compile_watching(train_step, (state, first_batch, step_key), watcher, int(state.step) + 1)
  evaluation = None
  if selector is not None and selector.due(int(state.step), int(state.step) == config.total_steps):
    selector.measure(state, int(state.step), writer)  # due before a stop that came right after its checkpoint
  running_metrics = None
  for step in range(int(state.step) + 1, config.total_steps + 1):
    profiler.before(step)
    with jax.profiler.StepTraceAnnotation("train", step_num=step):
      state, metrics = train_step(state, next(batches), step_key)
    # Steps are dispatched asynchronously; waiting for the previous one keeps one step queued behind the
    # running one, not every step Python could run ahead to, so a SIGTERM (a preemption's grace period is
    # seconds) is saved after at most two steps' time.
    jax.block_until_ready(running_metrics)
    running_metrics = metrics
    profiler.after(step, metrics)
    final_step = step == config.total_steps or (deadline is not None and time.time() >= deadline)
    if step % config.log_every_steps == 0 or final_step:
      # Reading metrics waits for the step, so only at log steps; a non-finite state
      # between them is caught before any checkpoint is written (`_check_finite`).
      scalars = {f"train/{k}": float(v) for k, v in jax.device_get(metrics).items()}
      if not np.isfinite(scalars["train/loss"]):
        raise FloatingPointError(f"The loss became {scalars['train/loss']} at step {step}: training diverged."
                                 + _DIVERGED_ADVICE)
      writer.write(step, {**scalars, "train/epoch": step / steps_per_epoch, **progress.rates(step)})
      logging.info("%s", progress.line(step, scalars))
    preempted = _stop_requested(watcher, checkpoint_manager, step)
    if step % config.checkpoint_every_steps == 0 or final_step or preempted:
      _check_finite(state, step)
      checkpoints.save(checkpoint_manager, step, state)
    if preempted:
      raise preemption.Preempted(f"Stopped by SIGTERM (preemption) after step {step}, which was saved.")
    if step % config.eval_every_steps == 0 or final_step:
      evaluation = evaluate_all(config, mesh, eval_step, state)
      writer.write(step, evaluation)
    if selector is not None and selector.due(step, final_step):
      selector.measure(state, step, writer)
    if final_step:
      break
  profiler.stop()
  checkpoint_manager.wait_until_finished()
  if jax.process_index() == 0:
    integrity.forget_deleted(checkpoint_manager)
  evaluation = evaluation or evaluate_all(config, mesh, eval_step, state)
  selected = {} if selector is None else selector.finish(
      lambda selected_state: evaluate_all(config, mesh, eval_step, selected_state), writer)
  return {"step": int(state.step), "epochs": int(state.step) / steps_per_epoch, **evaluation, **selected}
