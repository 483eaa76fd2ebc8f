"""Saving, resuming and loading runs: a run is a workdir with `config.json` and `checkpoints/`.

Orbax writes each checkpoint into a temporary folder and renames it when
complete, so a job killed in the middle of a save (even with `kill -9`) leaves
the previous checkpoints intact and the half-written one is ignored.
"""

import dataclasses
import json
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp

from invjax import data
from invjax.train import state as state_lib

CONFIG_FILE = "config.json"


def manager(workdir: str | pathlib.Path, keep: int) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      pathlib.Path(workdir).absolute() / "checkpoints",
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
  )


def save(checkpoint_manager: ocp.CheckpointManager, step: int, state) -> None:
  """Saves `state` as checkpoint `step` (asynchronously: `wait_until_finished` before exiting)."""
  checkpoint_manager.save(step, args=ocp.args.StandardSave(state))


def restore(checkpoint_manager: ocp.CheckpointManager, abstract_state, step: int | None = None):
  """The state saved at `step` (default: the latest), laid out like `abstract_state`."""
  step = checkpoint_manager.latest_step() if step is None else step
  try:
    return checkpoint_manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
  except Exception as error:  # orbax raises many types for damaged files
    raise ValueError(
        f"Checkpoint {step} in {checkpoint_manager.directory} cannot be read ({error}). "
        "Delete that step's folder to resume from the one before it."
    ) from error


def save_config(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> None:
  path = pathlib.Path(workdir) / CONFIG_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(config.to_json_best_effort(indent=2, sort_keys=True))


def load_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  path = pathlib.Path(workdir) / CONFIG_FILE
  if not path.exists():
    raise FileNotFoundError(
        f"{path} does not exist: {workdir} is not a run folder. Train one with "
        "`python -m experiments.train --config=configs/<file>.py --workdir=DIR`."
    )
  return ml_collections.ConfigDict(json.loads(path.read_text()))


@dataclasses.dataclass(frozen=True)
class Run:
  """A trained run, ready for analysis: `model.apply(variables, x)`."""

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
  checkpoint_manager = manager(workdir, keep=config.keep_checkpoints)
  if checkpoint_manager.latest_step() is None:
    raise FileNotFoundError(f"{workdir} has no checkpoint yet: train it first.")
  images = jnp.zeros((1, *data.input_shape(config.dataset, **config.dataset_options)), jnp.float32)
  abstract_state = jax.eval_shape(lambda: parts.create_state(images, jax.random.key(0)))
  train_state = restore(checkpoint_manager, abstract_state, step)
  return Run(
      config=config,
      model=parts.model,
      variables={"params": train_state.flow["model"]},
      nuisance_classifier=parts.nuisance_classifier,
      nuisance_variables={"params": train_state.nuisance},
      step=int(train_state.step),
  )
