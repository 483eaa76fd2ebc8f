"""A run's identity: the config fields that define what a run trains, fixed at its first start.

The first job of a run writes `workdir/config.json`. A later job on the same
workdir resumes that run, so it must train the same function on the same data
with the same objective and optimizer: `check_resume` compares its config with
config.json field by field and refuses any difference outside `SAFE_FIELDS`,
naming each differing field. A resumed job with a different architecture whose
shapes happen to fit would otherwise train a different model on the old
parameters, and config.json would describe the checkpoints wrongly.

`SAFE_FIELDS` are those that change when, how often or on how much the run is
evaluated, logged, checkpointed or profiled, and how long it trains (total_steps), plus
`model.backprop` (the same gradients, computed by autodiff or by inverting the
reversible blocks; in another order of float32 operations, so a run that changes
it on resume differs from an uninterrupted one by rounding, ~1e-3 in the
parameters after training amplifies it: the README says so). Such changes are allowed, and each is appended to
`workdir/config_history.jsonl` with the step it took effect at. So is a field
that config.json predates when its value is "off" (0, "", False, empty): options
are added to the code base that way.

Each checkpoint carries the identity too: its checksum record (`integrity`) holds
config.json as it was when the checkpoint was saved, and a restore refuses a
checkpoint whose config differs from the run's config.json in any field that may
not change on resume (`check_checkpoint`): a checkpoint of another run copied
into the folder, with the same shapes and its own checksums, is not trained on.
"""

import json
import pathlib
import time

import ml_collections

from invjax.train import atomic_io, integrity, run_folder

SAFE_FIELDS = (
    "total_steps", "log_every_steps", "eval_every_steps", "checkpoint_every_steps", "keep_checkpoints",
    "eval_splits", "eval_examples", "train_eval_examples", "eval_batch_size", "model.backprop", "profile_steps",
)
_ABSENT = "<absent>"


def as_plain(config: ml_collections.ConfigDict) -> dict:
  """The config as JSON values (tuples become lists), as config.json stores it."""
  return json.loads(config.to_json_best_effort())


def _flatten(tree: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def differences(stored: dict, new: dict) -> dict[str, tuple]:
  """{dotted field: (stored value, new value)} for every field that differs (or exists in one only)."""
  old_fields, new_fields = _flatten(stored), _flatten(new)
  return {name: (old_fields.get(name, _ABSENT), new_fields.get(name, _ABSENT))
          for name in sorted(set(old_fields) | set(new_fields))
          if old_fields.get(name, _ABSENT) != new_fields.get(name, _ABSENT)}


def stored_config(workdir: pathlib.Path) -> dict | None:
  """The config.json of the run in `workdir`, or None before its first start."""
  path = workdir / run_folder.CONFIG_FILE
  if not path.exists():
    return None
  try:
    return json.loads(path.read_text())
  except ValueError as error:
    raise ValueError(f"{path} is not valid JSON ({error}); the run's identity is unknown: restore the file "
                     "from a copy, or start a new run in a new workdir.") from None


def _allowed(name: str, old, new) -> bool:
  """A safe field, or one the run's config.json predates that is off (0, "", False, empty): the
  code base adds options that way, and a run saved before one existed trained without it."""
  return name in SAFE_FIELDS or (old == _ABSENT and new in (0, "", False, None, [], {}))


def _listed(refused: dict[str, tuple], old_label: str, new_label: str) -> str:
  return "; ".join(f"config.{name}: {old_label} {old!r}, {new_label} {new!r}" for name, (old, new) in refused.items())


def check_resume(stored: dict, config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict[str, tuple]:
  """The allowed changes from `stored` to `config`; ValueError naming every other differing field."""
  changes = differences(stored, as_plain(config))
  refused = {name: values for name, values in changes.items() if not _allowed(name, *values)}
  if refused:
    listed = _listed(refused, "run has", "now")
    raise ValueError(
        f"{workdir} holds a run with a different config ({listed}). Only {', '.join(SAFE_FIELDS)} may change "
        f"on resume: drop those overrides to resume the run, or pass a new --workdir to start another run.")
  return {name: values for name, values in changes.items() if name not in refused}


def check_checkpoint(saved: dict, stored: dict, step: int, workdir: pathlib.Path) -> None:
  """Raises integrity.CheckpointMismatch if checkpoint `step`, saved under the config `saved`, belongs
  to another run than the config.json `stored` of `workdir` (fields that may change on resume aside,
  and fields one of the two predates that are off in the other: code and config.json may be newer)."""
  refused = {name: (old, new) for name, (old, new) in differences(stored, saved).items()
             if not (_allowed(name, old, new) or _allowed(name, new, old))}
  if refused:
    raise integrity.CheckpointMismatch(
        f"Checkpoint {step} in {workdir / run_folder.CHECKPOINT_DIR} was saved by another run than the one in "
        f"{workdir} "
        f"({_listed(refused, 'config.json has', 'the checkpoint')}); it was left alone. Move it away (and "
        f"{workdir / run_folder.CHECKSUM_DIR / f'{step}.json'}) to resume from the run's own checkpoints.")


def record_start(config: ml_collections.ConfigDict, workdir: pathlib.Path, step: int,
                 changes: dict[str, tuple], first_start: bool) -> None:
  """Writes config.json (first start, or a resume with safe changes) and the change to the history."""
  if not first_start and not changes:
    return
  atomic_io.write_json_atomically(workdir / run_folder.CONFIG_FILE, as_plain(config))
  entry = {"step": step, "time": time.time(),
           "changes": {name: {"from": old, "to": new} for name, (old, new) in changes.items()}}
  if first_start:
    entry = {"step": step, "time": time.time(), "event": "first start"}
  with open(workdir / run_folder.HISTORY_FILE, "a") as file:
    file.write(json.dumps(entry) + "\n")
