"""Saving, resuming and loading runs: a run is a workdir with `config.json` and `checkpoints/`.

Orbax writes each checkpoint into a temporary folder and renames it when
complete, so a job killed in the middle of a save (even with `kill -9`) leaves
the previous checkpoints intact and the half-written one is ignored. Each save
also records checksums that every restore verifies (`invjax.train.integrity`).
"""

import dataclasses
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp
from absl import logging

from invjax import data, parallel
from invjax.train import atomic_io, identity, integrity, run_folder
from invjax.train import state as state_lib


def manager(workdir: str | pathlib.Path, keep: int) -> ocp.CheckpointManager:
  """The run's checkpoints, for a job that trains: it keeps the `keep` newest (`config.keep_checkpoints`)."""
  if keep < 1:
    raise ValueError(f"keep_checkpoints={keep} must be >= 1: a run keeps at least its latest checkpoint.")
  return ocp.CheckpointManager(
      pathlib.Path(workdir).absolute() / run_folder.CHECKPOINT_DIR,
      options=ocp.CheckpointManagerOptions(preservation_policy=ocp.checkpoint_managers.LatestN(n=keep), create=True),
  )


def reader(workdir: str | pathlib.Path) -> ocp.CheckpointManager:
  """The run's checkpoints, read only: orbax saves, deletes and creates nothing through it (and its
  warning that the folder is read only, which is what was asked for, is not shown)."""
  with integrity.without_log("Given directory is read only"):
    return ocp.CheckpointManager(pathlib.Path(workdir).absolute() / run_folder.CHECKPOINT_DIR,
                                 options=ocp.CheckpointManagerOptions(read_only=True, save_interval_steps=0,
                                                                      create=False))


def save(checkpoint_manager: ocp.CheckpointManager, step: int, state) -> None:
  """Saves `state` as checkpoint `step` with its checksums (asynchronously: `wait_until_finished`
  before reading it back or exiting)."""
  if jax.process_index() == 0:
    workdir = integrity.checkpoint_folder(checkpoint_manager).parent
    integrity.record(checkpoint_manager, step, state, run_config=identity.stored_config(workdir))
  checkpoint_manager.save(step, args=ocp.args.StandardSave(state_lib.stored(state)))


def restore(checkpoint_manager: ocp.CheckpointManager, abstract_state, step: int | None = None):
  """The state saved at `step` (default: the latest), laid out like `abstract_state` and verified
  against its checksums. Raises integrity.CheckpointMismatch or integrity.CorruptCheckpoint."""
  step = checkpoint_manager.latest_step() if step is None else step
  if step not in checkpoint_manager.all_steps():
    raise FileNotFoundError(f"{checkpoint_manager.directory} has no checkpoint {step}; it has "
                            f"{list(checkpoint_manager.all_steps()) or 'none'}.")
  workdir = integrity.checkpoint_folder(checkpoint_manager).parent
  saved, stored = integrity.recorded_run_config(checkpoint_manager, step), identity.stored_config(workdir)
  if saved is not None and stored is not None:
    identity.check_checkpoint(saved, stored, step, workdir)
  state, verified = integrity.restore_verified(checkpoint_manager, step, state_lib.stored(abstract_state))
  if not verified:
    logging.warning("Checkpoint %d has no checksum record (saved by an older version): not verified.", step)
  return state_lib.from_stored(state)


def restore_newest_good(checkpoint_manager: ocp.CheckpointManager, abstract_state, set_aside: bool):
  """The newest checkpoint that reads and verifies, and a note of the newer ones skipped.

  The skipped ones are moved into `bad_checkpoints/` (`set_aside`, training) or left
  in place (analysis, which must not change a run). Only once an older checkpoint has
  verified: if none does, the fault may lie in this job (another device topology, a
  file system error), so nothing is moved and CorruptCheckpoint is raised. A
  checkpoint that does not fit the model raises integrity.CheckpointMismatch at once.
  """
  failures = []
  for step in sorted(checkpoint_manager.all_steps(), reverse=True):
    try:
      state = restore(checkpoint_manager, abstract_state, step)
    except integrity.CorruptCheckpoint as error:
      failures.append((step, str(error)))
      logging.warning("Checkpoint %d is unusable (%s); trying the one before it.", step, error)
      continue
    skipped = [f"{reason}: {f'moved to {integrity.set_aside(checkpoint_manager, bad)}' if set_aside else 'skipped'}"
               for bad, reason in failures]
    return state, skipped
  raise integrity.CorruptCheckpoint(
      f"No checkpoint in {checkpoint_manager.directory} reads and verifies ({'; '.join(r for _, r in failures)}); "
      "nothing was moved. If the files are damaged, restore them from a copy or move them away to start over.")


def save_config(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> None:
  """Writes `workdir/config.json` atomically: a reader sees the old file or the whole new one."""
  atomic_io.write_json_atomically(pathlib.Path(workdir) / run_folder.CONFIG_FILE, identity.as_plain(config))


def load_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  stored = identity.stored_config(pathlib.Path(workdir))  # names the file if it is not valid JSON
  if stored is None:
    raise FileNotFoundError(
        f"{pathlib.Path(workdir) / run_folder.CONFIG_FILE} does not exist: {workdir} is not a run folder. "
        "Train one with "
        "`python -m experiments.train --config=configs/<file>.py --workdir=DIR`."
    )
  return ml_collections.ConfigDict(stored)


@dataclasses.dataclass(frozen=True)
class Run:
  """A trained run, ready for analysis: `model.apply(variables, x)`; `variables` also holds the
  logit head ("logit_norm") of a run that has one (`features.logits_function` applies it)."""

  config: ml_collections.ConfigDict
  model: nn.Module
  variables: dict
  nuisance_classifier: nn.Module
  nuisance_variables: dict
  step: int

  @property
  def kind(self) -> str:
    return self.config.model.kind


def load_run(workdir: str | pathlib.Path, step: int | None = None) -> Run:
  """Loads the config and the latest (or a given) checkpoint of a training run."""
  config = load_config(workdir)
  parts = state_lib.build(config, steps_per_epoch=1)
  # Only an existing checkpoints/ is opened: analysis changes no run.
  checkpoint_manager = reader(workdir) if (pathlib.Path(workdir) / run_folder.CHECKPOINT_DIR).is_dir() else None
  if checkpoint_manager is None or checkpoint_manager.latest_step() is None:
    raise FileNotFoundError(f"{workdir} has no checkpoint yet: train it first.")
  images = jnp.zeros((1, *data.input_shape(config.dataset, **config.dataset_options)), jnp.float32)
  replicated = parallel.replicated(parallel.make_data_mesh())  # the devices of this job, not the saving job's
  abstract_state = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=replicated),
                                jax.eval_shape(lambda: parts.create_state(images, jax.random.key(0))))
  try:
    if step is None:
      train_state, skipped = restore_newest_good(checkpoint_manager, abstract_state, set_aside=False)
      for note in skipped:
        logging.warning("Loading %s: %s", workdir, note)
    else:
      train_state = restore(checkpoint_manager, abstract_state, step)
  finally:
    checkpoint_manager.close()  # or its event loop outlives the job and reports itself closed at exit
  return Run(
      config=config,
      model=parts.model,
      variables={"params": train_state.flow["model"],
                 **({"logit_norm": train_state.flow["logit_norm"]} if "logit_norm" in train_state.flow else {})},
      nuisance_classifier=parts.nuisance_classifier,
      nuisance_variables={"params": train_state.nuisance},
      step=int(train_state.step),
  )
