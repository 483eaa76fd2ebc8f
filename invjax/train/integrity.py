"""Checkpoints that can be trusted: a checksum per save, verified on restore.

Orbax checks no integrity: a checkpoint with flipped bytes in a data file can
restore without a word and train on garbage. So each save first records, in
`workdir/checksums/<step>.json`, the SHA-256 of every array of the state (its
dtype, shape and bytes, keyed by its path in the tree), and a restore reads the
state back and compares every array with that record. The record also holds the
saving run's config (`identity.check_checkpoint`).

A checkpoint is classified on restore as
* mismatched (`CheckpointMismatch`): its arrays' names, shapes or dtypes differ
  from those of the model the config builds, so the config (or the code) does
  not match the run: nothing is wrong with the files, so they are left alone;
* corrupt (`CorruptCheckpoint`): it cannot be read, or an array's checksum
  differs from the one recorded at save time. Training moves such a checkpoint
  (and its checksum record) into `workdir/bad_checkpoints/` - never deletes it -
  and resumes from the newest one that verifies.
A checkpoint saved before checksums were recorded restores unverified.
"""

import contextlib
import hashlib
import json
import logging
import pathlib
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp

from invjax.train import atomic_io, run_folder

RUN_CONFIG_KEY = "run_config"  # in a record beside the arrays' paths (dotted names, never this one)


class CheckpointMismatch(ValueError):
  """A checkpoint's arrays do not fit the model built from the config."""


class CorruptCheckpoint(ValueError):
  """A checkpoint cannot be read or does not match its recorded checksums."""


def _name(path) -> str:
  """A tree path as dotted names, alike for dataclass fields and dict keys (orbax's metadata
  holds dicts where the train state has dataclasses)."""
  return ".".join(str(getattr(key, "name", getattr(key, "key", getattr(key, "idx", key)))) for key in path)


def _host_array(leaf) -> np.ndarray:
  """The full value of a leaf on this host: the train state is replicated, so any shard is all of it."""
  if isinstance(leaf, jax.Array):
    return np.asarray(leaf.addressable_data(0))
  return np.asarray(leaf)


def tree_checksums(state) -> dict[str, str]:
  """{array path: SHA-256 of its dtype, shape and bytes} for every array of `state`."""
  checksums = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(state):
    array = np.ascontiguousarray(_host_array(leaf))
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    checksums[_name(path)] = digest.hexdigest()
  return checksums


def checkpoint_folder(checkpoint_manager: ocp.CheckpointManager) -> pathlib.Path:
  return pathlib.Path(str(checkpoint_manager.directory))


def checksum_path(checkpoint_manager: ocp.CheckpointManager, step: int) -> pathlib.Path:
  return checkpoint_folder(checkpoint_manager).parent / run_folder.CHECKSUM_DIR / f"{step}.json"


def record(checkpoint_manager: ocp.CheckpointManager, step: int, state, run_config: dict | None = None) -> None:
  """Records the checksums of `state`, about to be saved as checkpoint `step`, and the config
  of the run saving it (`identity.check_checkpoint` compares it on restore)."""
  entries = tree_checksums(state)
  if run_config is not None:
    entries[RUN_CONFIG_KEY] = run_config
  atomic_io.write_json_atomically(checksum_path(checkpoint_manager, step), entries)
  forget_deleted(checkpoint_manager, keep=step)


def _read_record(checkpoint_manager: ocp.CheckpointManager, step: int) -> dict | None:
  """The checksum record of checkpoint `step` (None if it has none); CorruptCheckpoint if unreadable."""
  path = checksum_path(checkpoint_manager, step)
  if not path.exists():
    return None
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError) as error:
    raise CorruptCheckpoint(f"the checksum record {path} of checkpoint {step} cannot be read ({error})") from None


def recorded_run_config(checkpoint_manager: ocp.CheckpointManager, step: int) -> dict | None:
  """The config of the run that saved checkpoint `step`, as its checksum record holds it (None for
  checkpoints saved before records held it, or without a record)."""
  try:
    return (_read_record(checkpoint_manager, step) or {}).get(RUN_CONFIG_KEY)
  except CorruptCheckpoint:
    return None  # restore_verified reports the unreadable record


def forget_deleted(checkpoint_manager: ocp.CheckpointManager, keep: int | None = None) -> None:
  """Removes the checksum records of checkpoints orbax has deleted (beyond `keep_checkpoints`)."""
  kept = {*checkpoint_manager.all_steps(), keep}
  for stale in checksum_path(checkpoint_manager, 0).parent.glob("*.json"):
    if stale.stem.isdigit() and int(stale.stem) not in kept:
      stale.unlink()


def _shapes(tree) -> dict[str, tuple]:
  return {_name(path): (tuple(leaf.shape), np.dtype(leaf.dtype).name)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree) if hasattr(leaf, "shape")}


def _first_line(error: Exception) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


_MISSING_STEP_METADATA = "Metadata file does not exist"


@contextlib.contextmanager
def without_log(prefix: str):
  """Drops absl log records that start with `prefix` (an expected warning) while inside."""
  absl_logger = logging.getLogger("absl")
  dropper = logging.Filter()
  dropper.filter = lambda record: not record.getMessage().startswith(prefix)
  absl_logger.addFilter(dropper)
  try:
    yield
  finally:
    absl_logger.removeFilter(dropper)


def check_layout(checkpoint_manager: ocp.CheckpointManager, step: int, abstract_state) -> None:
  """Raises CheckpointMismatch if checkpoint `step` holds arrays other than `abstract_state`'s,
  CorruptCheckpoint if its layout cannot be read."""
  folder = checkpoint_folder(checkpoint_manager) / str(step) / "default"
  # Orbax's readers leave background tasks behind on a missing index file (which then print
  # "Event loop is closed" tracebacks at exit), so the files every save writes are checked first.
  missing = [name for name in ("_METADATA", "manifest.ocdbt") if not (folder / name).exists()]
  if missing:
    raise CorruptCheckpoint(f"checkpoint {step} cannot be read ({', '.join(missing)} missing in {folder})")
  try:
    # The manager keeps the step's metadata file one folder up, so orbax warns on every read.
    with ocp.StandardCheckpointer() as checkpointer, without_log(_MISSING_STEP_METADATA):
      saved = _shapes(checkpointer.metadata(folder).item_metadata)
  except Exception as error:  # orbax raises many types for damaged files
    raise CorruptCheckpoint(f"checkpoint {step} cannot be read ({_first_line(error)})") from None
  if not saved:  # e.g. its manifest is missing
    raise CorruptCheckpoint(f"checkpoint {step} cannot be read (no array is listed in {folder})")
  expected = _shapes(abstract_state)
  differences = [f"{name}: saved {saved[name][0]} {saved[name][1]}, config builds {expected[name][0]} "
                 f"{expected[name][1]}" for name in sorted(set(saved) & set(expected)) if saved[name] != expected[name]]
  differences += [f"{name} only in the checkpoint" for name in sorted(set(saved) - set(expected))]
  differences += [f"{name} only in the model the config builds" for name in sorted(set(expected) - set(saved))]
  if differences:
    shown = "; ".join(differences[:3]) + (f"; and {len(differences) - 3} more" if len(differences) > 3 else "")
    raise CheckpointMismatch(
        f"Checkpoint {step} in {checkpoint_folder(checkpoint_manager)} does not fit the model this config builds "
        f"({len(differences)} arrays differ: {shown}). The config (or the model code) differs from the one that "
        "saved it; the checkpoint itself is intact and was left alone.")


def restore_verified(checkpoint_manager: ocp.CheckpointManager, step: int, abstract_state):
  """Checkpoint `step` laid out like `abstract_state`, and whether a checksum record verified it.

  Raises CheckpointMismatch or CorruptCheckpoint (see the module doc)."""
  check_layout(checkpoint_manager, step, abstract_state)
  try:
    state = checkpoint_manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
  except Exception as error:  # orbax raises many types for damaged files
    raise CorruptCheckpoint(f"checkpoint {step} cannot be read ({_first_line(error)})") from None
  expected = _read_record(checkpoint_manager, step)
  if expected is None:
    return state, False
  expected.pop(RUN_CONFIG_KEY, None)
  actual = tree_checksums(state)
  differing = sorted(name for name in set(expected) | set(actual) if expected.get(name) != actual.get(name))
  if differing:
    raise CorruptCheckpoint(
        f"checkpoint {step} does not match the checksums recorded when it was saved ({len(differing)} arrays "
        f"differ, e.g. {differing[0]})")
  return state, True


def set_aside(checkpoint_manager: ocp.CheckpointManager, step: int) -> pathlib.Path:
  """Moves checkpoint `step` and its checksum record into `bad_checkpoints/` (never deletes
  them) so that the run resumes from an older one; returns where it now lies."""
  folder = checkpoint_folder(checkpoint_manager)
  aside = folder.parent / run_folder.BAD_CHECKPOINT_DIR
  aside.mkdir(exist_ok=True)
  target = aside / str(step)
  suffix = 1
  while target.exists() or target.with_name(target.name + ".checksums.json").exists():
    target, suffix = aside / f"{step}.{suffix}", suffix + 1
  shutil.move(str(folder / str(step)), str(target))
  record_path = checksum_path(checkpoint_manager, step)
  if record_path.exists():
    shutil.move(str(record_path), str(target.with_name(target.name + ".checksums.json")))
  checkpoint_manager.reload()
  return target
