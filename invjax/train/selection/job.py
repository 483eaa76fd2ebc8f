"""The selection rule (`rule`) inside a training job: when to measure, keeping the selected
checkpoint, and surviving a restart.

A new selection is made durable in this order: the checkpoint is saved into
`selected/checkpoints/` (orbax's atomic rename; checksums as for training
checkpoints) and waited for, then `selection.json` is replaced atomically, then
older checkpoints in `selected/` are deleted. A job killed anywhere in between
leaves a selection.json that names a complete checkpoint; the next job deletes
any other one. A resumed job skips the measurements selection.json already
holds (steps up to `last_step`: training is deterministic, so the restarted
steps reproduce them) and first measures the step it resumes at if that was
due, which a stop right after a checkpoint (SIGTERM) leaves unmeasured.
"""

import dataclasses
import pathlib

import jax
from absl import logging

from invjax.train import atomic_io, checkpoints, integrity, run_folder
from invjax.train.selection import measurement, rule


class Selector:
  """Measures on schedule, applies the rule and keeps its checkpoint; one per training job."""

  def __init__(self, config, mesh, model, workdir: pathlib.Path, abstract_state):
    self._config, self._mesh, self._abstract_state = config, mesh, abstract_state
    self._workdir = pathlib.Path(workdir)
    self._tolerance = config.selection.logit_error_tolerance
    self._every = config.selection.every_steps or config.eval_every_steps
    self._encode = jax.jit(measurement.make_encode(config, model))
    self._is_lead = jax.process_index() == 0
    self.state = rule.read_state(self._workdir)
    self._manager = checkpoints.manager(self._workdir / run_folder.SELECTED_DIR, keep=2)
    if self.state.selected is not None and self.state.selected.step not in self._manager.all_steps():
      self._manager.close()
      raise ValueError(f"{self._workdir / run_folder.SELECTION_FILE} names checkpoint {self.state.selected.step}, "
                       f"which {self._workdir / run_folder.SELECTED_DIR} lacks: move both away to select afresh.")
    self._prune()

  def close(self) -> None:
    self._manager.close()

  def due(self, step: int, final_step: bool) -> bool:
    return step > self.state.last_step and (step % self._every == 0 or final_step)

  def measure(self, state, step: int, writer) -> None:
    """Measures `state` (at `step`), applies the rule, keeps the checkpoint if selected and logs both."""
    measured = measurement.measure(self._config, self._mesh, self._encode, state.flow["model"], step)
    new_state, selected = rule.update(self.state, measured, self._tolerance)
    if selected:
      self._save(step, state)
    self._commit(new_state)
    writer.write(step, {**measured.as_metrics("selection/holdout_"),
                        "selection/best_logit_error": new_state.best_logit_error,
                        "selection/selected_step": float(new_state.selected.step)})
    logging.info("Selection at step %d: held-out logit error %.2f%%, fresh nuisance classifier %.2f%% / %.4f nats; "
                 "kept step %d.", step, measured.logit_error, measured.nuisance_error,
                 measured.nuisance_cross_entropy, new_state.selected.step)

  def finish(self, evaluate_all, writer) -> dict:
    """Evaluates the selected checkpoint on every split (for reporting) and records it; {} if none."""
    if self.state.selected is None:
      return {}
    step = self.state.selected.step
    selected_state = checkpoints.restore(self._manager, self._abstract_state, step)
    evaluation = evaluate_all(selected_state)
    self._commit(dataclasses.replace(self.state, selected_evaluation=evaluation))
    reported = {"selected/step": step, **self.state.selected.as_metrics("selected/holdout_"),
                **{f"selected/{name}": value for name, value in evaluation.items()}}
    writer.write(self.state.last_step, reported)
    return reported

  def _save(self, step: int, state) -> None:
    if self._is_lead:
      checkpoints.save_config(self._config, self._workdir / run_folder.SELECTED_DIR)
    checkpoints.save(self._manager, step, state)
    self._manager.wait_until_finished()

  def _commit(self, new_state: rule.SelectionState) -> None:
    self.state = new_state
    if self._is_lead:
      atomic_io.write_json_atomically(self._workdir / run_folder.SELECTION_FILE,
                                      rule.to_json(new_state, self._tolerance))
    self._prune()

  def _prune(self) -> None:
    """Deletes every checkpoint in selected/ but the one selection.json names."""
    kept = None if self.state.selected is None else self.state.selected.step
    for step in self._manager.all_steps():
      if step != kept:
        self._manager.delete(step)
    if self._is_lead:
      integrity.forget_deleted(self._manager)
