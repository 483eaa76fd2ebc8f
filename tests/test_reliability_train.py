"""Reliability of training runs (issue 17): no bad input or fault loses a run, resumes it
wrongly or ends without naming a checkpoint to resume from.

One micro run (4 steps, checkpoints 2 and 4; conftest's `micro_run`) is trained once per worker; tests that
change a run work on copies of it.
"""

import fcntl
import hashlib
import itertools
import json
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from invjax import data, parallel, train
from invjax.train import checkpoints, identity, integrity, loop, preemption, run_folder, workdir_lock
from test_train import micro_config


def tree_hash(workdir: pathlib.Path) -> dict[str, str]:
  """{relative path: SHA-256 of its bytes} of every file under `workdir`."""
  return {str(path.relative_to(workdir)): hashlib.sha256(path.read_bytes()).hexdigest()
          for path in sorted(workdir.rglob("*")) if path.is_file()}


def final_variables(workdir):
  return train.load_run(workdir).variables


def assert_same_parameters(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


@pytest.fixture
def run(micro_run) -> pathlib.Path:
  """A finished 4-step run with checkpoints 2 and 4 (conftest's, shared with test_train)."""
  return micro_run[0]


@pytest.fixture
def run_copy(run, tmp_path) -> pathlib.Path:
  copy = tmp_path / "run"
  shutil.copytree(run, copy)
  return copy


@pytest.mark.parametrize("overrides,message", [
    ({"keep_checkpoints": 0}, r"keep_checkpoints=0 must be an integer >= 1"),
    ({"model.num_levels": 6}, r"num_levels=6"),
    ({"model.width": 32}, r"config.model.width: run has 8, now 32"),
    ({"model.readout": "dct", "model.permutation": "shuffle"},
     r"config.model.permutation: run has 'reverse', now 'shuffle'; config.model.readout: run has 'center'"),
    ({"optimizer.learning_rate": -1e-3}, r"learning_rate=-0.001 must be a finite number > 0"),
    ({"optimizer.learning_rate": 3e-3}, r"config.optimizer.learning_rate: run has 0.001, now 0.003"),
    ({"model.dropout": 1.5}, r"model.dropout=1.5 must be a finite number in \[0, 1\)"),
    ({"log_every_steps": 0}, r"log_every_steps=0 must be an integer >= 1"),
    ({"seed": 1}, r"config.seed: run has 0, now 1"),
    ({"batch_size": 12}, r"multiple of the 8 devices"),
    ({"dataset_options.contrast": 2.0}, r"config.dataset_options: mnist has no option\(s\) contrast"),
    ({"total_steps": 2}, r"config.total_steps=2 is below step 4, where the run .* stands: pass "
                         r"--config.total_steps=4 or more"),
])
def test_a_failed_start_changes_no_file_of_the_run(run, overrides, message):
  before = tree_hash(run)
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(micro_config(**overrides), run)
  assert tree_hash(run) == before


def test_a_workdir_in_use_is_refused_and_a_killed_holder_leaves_no_lock(run):
  before = tree_hash(run)
  with workdir_lock.WorkdirLock(run):
    with pytest.raises(workdir_lock.WorkdirInUse, match="in use by another training job"):
      train.train_and_evaluate(micro_config(), run)
  assert tree_hash(run) == before
  holder = subprocess.Popen([sys.executable, "-c", (
      "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
      "print('locked', flush=True); time.sleep(60)"), str(run / run_folder.LOCK_FILE)],
      stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "locked"
  with pytest.raises(workdir_lock.WorkdirInUse):
    workdir_lock.WorkdirLock(run).__enter__()
  holder.kill()
  holder.wait()
  with workdir_lock.WorkdirLock(run):
    with open(run / run_folder.LOCK_FILE) as other, pytest.raises(BlockingIOError):
      fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


@pytest.mark.slow
def test_safe_changes_resume_and_are_recorded(run_copy):
  final = train.train_and_evaluate(micro_config(total_steps=6, eval_every_steps=3, keep_checkpoints=1), run_copy)
  assert final["step"] == 6
  stored = identity.stored_config(run_copy)
  assert (stored["total_steps"], stored["eval_every_steps"], stored["keep_checkpoints"]) == (6, 3, 1)
  history = (run_copy / run_folder.HISTORY_FILE).read_text().splitlines()
  assert '"total_steps": {"from": 4, "to": 6}' in history[-1] and '"step": 4' in history[-1]
  assert sorted(p.name for p in (run_copy / "checkpoints").iterdir()) == ["6"]
  assert sorted(p.name for p in (run_copy / run_folder.CHECKSUM_DIR).iterdir()) == ["6.json"]


def test_a_run_saved_before_an_option_existed_resumes_with_it_off(run_copy):
  stored = identity.stored_config(run_copy)
  del stored["loss"]["label_dependence_weight"], stored["model"]["dropout"]
  (run_copy / run_folder.CONFIG_FILE).write_text(json.dumps(stored))
  with pytest.raises(ValueError, match=r"config.model.dropout: run has '<absent>', now 0.1\)\. Only"):
    train.train_and_evaluate(micro_config(), run_copy)
  stored["model"]["dropout"] = 0.1
  (run_copy / run_folder.CONFIG_FILE).write_text(json.dumps(stored))
  assert train.train_and_evaluate(micro_config(), run_copy)["step"] == 4
  assert '"loss.label_dependence_weight": {"from": "<absent>", "to": 0.0}' in (
      run_copy / run_folder.HISTORY_FILE).read_text()


def _flip_bytes(checkpoint: pathlib.Path) -> None:
  """Inverts 4 KiB (or all) of the largest data file of a checkpoint, as a bad disk would."""
  data_file = max((p for p in checkpoint.rglob("*") if p.is_file() and p.parent.name == "d"),
                  key=lambda p: p.stat().st_size)
  raw = bytearray(data_file.read_bytes())
  start = len(raw) // 2
  for i in range(start, min(len(raw), start + 4096)):
    raw[i] ^= 0xFF
  data_file.write_bytes(bytes(raw))


@pytest.mark.slow
def test_a_corrupt_checkpoint_is_moved_aside_and_the_run_resumes_from_the_one_before(run, run_copy, caplog):
  _flip_bytes(run_copy / "checkpoints" / "4")
  caplog.set_level(logging.INFO)
  final = train.train_and_evaluate(micro_config(), run_copy)
  assert final["step"] == 4
  assert (run_copy / run_folder.BAD_CHECKPOINT_DIR / "4").is_dir()
  assert (run_copy / run_folder.BAD_CHECKPOINT_DIR / "4.checksums.json").is_file()
  assert "Resumed from step 2" in caplog.text and "newer checkpoints were unusable" in caplog.text
  assert_same_parameters(final_variables(run_copy), final_variables(run))


def test_analysis_skips_a_corrupt_checkpoint_without_changing_the_run(run_copy):
  _flip_bytes(run_copy / "checkpoints" / "4")
  before = tree_hash(run_copy)
  assert train.load_run(run_copy).step == 2
  with pytest.raises(integrity.CorruptCheckpoint, match="checkpoint 4 (cannot be read|does not match)"):
    train.load_run(run_copy, step=4)
  assert tree_hash(run_copy) == before


def test_a_checkpoint_that_reads_but_differs_from_its_checksums_is_refused(run_copy):
  """Orbax reads some damaged files without an error; the checksums catch what it returns."""
  record = run_copy / run_folder.CHECKSUM_DIR / "4.json"
  checksums = json.loads(record.read_text())
  checksums["step"] = "0" * 64
  record.write_text(json.dumps(checksums))
  with pytest.raises(integrity.CorruptCheckpoint, match=r"checkpoint 4 does not match the checksums recorded "
                                                        r"when it was saved \(1 arrays differ, e.g. step\)"):
    train.load_run(run_copy, step=4)


def test_no_verifying_checkpoint_moves_nothing_and_refuses_to_start_over(run_copy):
  for step in ("2", "4"):
    _flip_bytes(run_copy / "checkpoints" / step)
  before = tree_hash(run_copy)
  with pytest.raises(integrity.CorruptCheckpoint, match="No checkpoint .* reads and verifies.*nothing was moved"):
    train.train_and_evaluate(micro_config(), run_copy)
  assert tree_hash(run_copy) == before


def test_a_run_whose_checkpoints_were_all_set_aside_does_not_start_over(run_copy):
  for step in (2, 4):
    integrity.set_aside(checkpoints.manager(run_copy, keep=3), step)
  with pytest.raises(ValueError, match="no usable checkpoint left"):
    train.train_and_evaluate(micro_config(), run_copy)


def test_a_missing_index_file_is_reported_and_the_checkpoint_before_it_loads(run_copy):
  (run_copy / "checkpoints" / "4" / "default" / "manifest.ocdbt").unlink()
  assert train.load_run(run_copy).step == 2
  with pytest.raises(integrity.CorruptCheckpoint, match="checkpoint 4 cannot be read .manifest.ocdbt missing"):
    train.load_run(run_copy, step=4)


def test_a_damaged_config_json_is_reported_not_overwritten(run_copy):
  (run_copy / run_folder.CONFIG_FILE).write_text('{"dataset": "mni')
  before = tree_hash(run_copy)
  with pytest.raises(ValueError, match="config.json is not valid JSON"):
    train.train_and_evaluate(micro_config(), run_copy)
  with pytest.raises(ValueError, match=f"{run_copy / run_folder.CONFIG_FILE} is not valid JSON"):
    train.load_run(run_copy)  # experiments.evaluate and metamers name the file too
  assert tree_hash(run_copy) == before


def test_a_checkpoint_of_another_run_is_refused_though_its_shapes_and_checksums_fit(run_copy):
  """Issue 23: a CE run's checkpoint (same shapes, with its checksum record) copied into an iCE run
  folder was restored and trained on. Each checksum record holds the saving run's config."""
  record_path = run_copy / run_folder.CHECKSUM_DIR / "4.json"
  record = json.loads(record_path.read_text())
  assert record[integrity.RUN_CONFIG_KEY] == identity.stored_config(run_copy)
  off = next(name for name, value in record[integrity.RUN_CONFIG_KEY]["loss"].items() if value == 0)
  del record[integrity.RUN_CONFIG_KEY]["loss"][off]  # saved by code that predates an option, now off
  record_path.write_text(json.dumps(record))
  assert train.load_run(run_copy).step == 4
  record[integrity.RUN_CONFIG_KEY]["loss"]["nuisance_weight"] = 0.0  # as a CE run saved it
  record_path.write_text(json.dumps(record))
  before = tree_hash(run_copy)
  message = r"Checkpoint 4 .* was saved by another run .*config.loss.nuisance_weight: config.json has 1.0, the checkpoint 0.0"
  with pytest.raises(integrity.CheckpointMismatch, match=message):
    train.train_and_evaluate(micro_config(total_steps=6), run_copy)
  with pytest.raises(integrity.CheckpointMismatch, match=message):
    train.load_run(run_copy)
  assert tree_hash(run_copy) == before


def test_resume_logs_no_orbax_warning_of_a_missing_metadata_file(run_copy, caplog):
  with caplog.at_level(logging.WARNING):
    assert train.load_run(run_copy).step == 4
  assert "Metadata file does not exist" not in caplog.text


def test_analysis_of_a_run_without_checkpoints_changes_nothing(run_copy):
  shutil.rmtree(run_copy / "checkpoints")
  before = tree_hash(run_copy)
  with pytest.raises(FileNotFoundError, match="has no checkpoint yet"):
    train.load_run(run_copy)
  assert not (run_copy / "checkpoints").exists() and tree_hash(run_copy) == before


def test_a_read_only_run_is_refused_in_one_line(run_copy, monkeypatch):
  def read_only(*args, **kwargs):
    raise OSError(30, "Read-only file system", str(args[0]))

  before = tree_hash(run_copy)
  monkeypatch.setattr(workdir_lock, "open", read_only, raising=False)
  with pytest.raises(workdir_lock.WorkdirInUse, match="cannot be written by this job .*Read-only file system.*"
                                                     "pass a writable --workdir"):
    train.train_and_evaluate(micro_config(total_steps=6), run_copy)
  assert tree_hash(run_copy) == before


def test_a_workdir_that_is_a_symlink_loop_is_refused(tmp_path):
  (tmp_path / "a").symlink_to(tmp_path / "b")
  (tmp_path / "b").symlink_to(tmp_path / "a")
  with pytest.raises(ValueError, match="is a symbolic link to .*b, which does not lead to a folder"):
    train.train_and_evaluate(micro_config(), tmp_path / "a")


def test_evaluation_counts_exactly_eval_examples_with_a_partial_last_batch():
  """Issue 23: 700 examples in batches of 500 evaluated 1000."""
  batches = ({"mask": jnp.ones(500, bool), "label": jnp.zeros(500, jnp.int32)} for _ in range(5))
  chosen = list(loop.first_examples(batches, 700, 500))
  assert [int(batch["mask"].sum()) for batch in chosen] == [500, 200]
  assert all(batch["mask"].shape == (500,) for batch in chosen)
  np.testing.assert_array_equal(chosen[1]["mask"], np.arange(500) < 200)


def test_a_checkpoint_that_does_not_fit_the_model_says_so_and_is_left_alone(run_copy):
  config = micro_config(**{"model.width": 16})
  manager = checkpoints.manager(run_copy, keep=3)
  images = np.zeros((1, 32, 32, 3), np.float32)
  abstract = jax.eval_shape(lambda: train.build(config, 1).create_state(images, jax.random.key(0)))
  with pytest.raises(integrity.CheckpointMismatch, match="does not fit the model this config builds") as error:
    checkpoints.restore(manager, abstract)
  assert "elete" not in str(error.value)
  assert (run_copy / "checkpoints" / "4").is_dir()


@pytest.mark.parametrize("replay_batches", [1, 3])
def test_a_replay_buffer_reads_back_and_a_run_without_one_keeps_the_layout_older_checkpoints_have(
    tmp_path, replay_batches):
  """The nuisance classifier's replay buffer (replay_batches > 1) is saved and read back with the state; a
  run without one writes no entry for it, so checkpoints saved before it existed still read."""
  config = micro_config(**{"nuisance_classifier.replay_batches": replay_batches})
  images = jnp.zeros((2, *data.input_shape(config.dataset)))
  abstract = jax.eval_shape(lambda: train.build(config, 1).create_state(images, jax.random.key(0)))
  # Distinct values in every array (no model needs to run): a restore that mixed arrays up would show.
  leaves, tree = jax.tree.flatten(abstract)
  state = jax.tree.unflatten(tree, [jnp.full(leaf.shape, i + 1, leaf.dtype) for i, leaf in enumerate(leaves)])
  checkpoints.save_config(config, tmp_path)
  manager = checkpoints.manager(tmp_path, keep=1)
  checkpoints.save(manager, 0, state)
  manager.wait_until_finished()
  restored = checkpoints.restore(manager, abstract)
  manager.close()
  saved_fields = json.loads((tmp_path / "checkpoints" / "0" / "default" / "_METADATA").read_text())
  assert any("nuisance_replay" in key for key in saved_fields["tree_metadata"]) == (replay_batches > 1)
  assert len(jax.tree.leaves(restored.nuisance_replay)) == (2 if replay_batches > 1 else 0)
  jax.tree.map(np.testing.assert_array_equal, restored, state)


DIVERGING = {"optimizer.learning_rate": 1e3, "total_steps": 6, "checkpoint_every_steps": 1}


@pytest.mark.parametrize("log_every_steps,message", [
    pytest.param(2, r"The loss became nan at step 2", marks=pytest.mark.slow),
    (3, r"The parameters became non-finite by step 2"),
])
def test_divergence_stops_after_the_save_in_flight_and_names_a_verified_checkpoint(tmp_path, log_every_steps,
                                                                                    message):
  with pytest.raises(FloatingPointError, match=message + r".*newest checkpoint that verifies is step 1"):
    train.train_and_evaluate(micro_config(**DIVERGING, log_every_steps=log_every_steps), tmp_path)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["1"]
  assert train.load_run(tmp_path).step == 1


@pytest.mark.slow
def test_a_crash_in_the_final_evaluation_loses_no_step(tmp_path, monkeypatch):
  def broken(*args):
    raise RuntimeError("evaluation failed")

  monkeypatch.setattr(loop, "evaluate_all", broken)
  with pytest.raises(RuntimeError, match="evaluation failed") as error:
    train.train_and_evaluate(micro_config(), tmp_path)
  assert any("newest checkpoint that verifies is step 4" in note for note in error.value.__notes__)
  assert train.load_run(tmp_path).step == 4


def _slow_work(step):
  """About 10 GFLOP that depend on `step`: a stand-in for a big model's step (no host callback, which
  would make dispatch synchronous)."""
  start = jnp.full((512, 512), 1.0 / 512) * step.astype(jnp.float32)
  return jax.lax.fori_loop(0, 40, lambda _, y: jnp.tanh(y @ y), start).mean()


@pytest.mark.slow
def test_the_loop_dispatches_at_most_one_step_ahead_of_the_running_one(tmp_path, monkeypatch):
  """Were Python to run ahead of the device, a SIGTERM (a preemption notice, seconds of grace) would be
  saved only after every step already dispatched had run; between log steps that can be dozens."""
  slow_work = jax.jit(_slow_work)
  slow_work(jnp.int32(1)).block_until_ready()
  slow_work_seconds = min(_seconds(lambda: slow_work(jnp.int32(1)).block_until_ready()) for _ in range(3))
  make_train_step = loop.step_lib.make_train_step

  def make_slow_train_step(*args, **kwargs):
    train_step = make_train_step(*args, **kwargs)

    def slow_train_step(state, batch, key):
      state, metrics = train_step(state, batch, key)
      return state, {**metrics, "loss": metrics["loss"] + 1e-30 * _slow_work(state.step)}

    return slow_train_step

  request_times = []
  train_batches = loop.train_batches

  def timed_batches(*args):
    for batch in list(itertools.islice(train_batches(*args), 8)):  # read ahead: only the steps take time
      request_times.append(time.perf_counter())
      yield batch

  monkeypatch.setattr(loop.step_lib, "make_train_step", make_slow_train_step)
  monkeypatch.setattr(loop, "train_batches", timed_batches)
  # One device, as on a laptop: the tests' 8 host-platform devices dispatch each step synchronously.
  make_data_mesh = parallel.make_data_mesh
  monkeypatch.setattr(parallel, "make_data_mesh", lambda num_devices=None: make_data_mesh(1))
  config = micro_config(total_steps=8, log_every_steps=8, checkpoint_every_steps=8, eval_every_steps=8)
  assert train.train_and_evaluate(config, tmp_path)["step"] == 8
  # The batch of step 8 is asked for once step 6 has run, so steps 1-6 run between the requests for steps 2 and 8.
  loop_requests = request_times[-8:]
  assert loop_requests[7] - loop_requests[1] > 2.5 * slow_work_seconds, (loop_requests, slow_work_seconds)


def _seconds(function) -> float:
  start = time.perf_counter()
  function()
  return time.perf_counter() - start


def test_sigterm_saves_the_current_step_and_the_resumed_run_ends_like_an_uninterrupted_one(run, tmp_path,
                                                                                           monkeypatch):
  original = loop.train_batches

  def preempted_during_step_three(*args):
    for index, batch in enumerate(original(*args)):
      if index == 2:
        os.kill(os.getpid(), signal.SIGTERM)
      yield batch

  monkeypatch.setattr(loop, "train_batches", preempted_during_step_three)
  with pytest.raises(preemption.Preempted, match=r"after step 3.*newest checkpoint that verifies is step 3"):
    train.train_and_evaluate(micro_config(), tmp_path)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["2", "3"]
  monkeypatch.setattr(loop, "train_batches", original)
  assert train.train_and_evaluate(micro_config(), tmp_path)["step"] == 4
  assert_same_parameters(final_variables(tmp_path), final_variables(run))


@pytest.mark.slow
def test_sigterm_during_the_first_compile_stops_the_job_at_once_and_the_rerun_resumes(run, tmp_path, monkeypatch):
  """Issue 23: a SIGTERM while XLA compiled waited for the compile's end (39 s, past a preemption's
  grace period). The compile here is held for 60 s, as a long C++ compile would be."""
  train.train_and_evaluate(micro_config(total_steps=2), tmp_path)
  saved = tree_hash(tmp_path / "checkpoints")
  original = loop._lower_and_compile
  compiling, release = threading.Event(), threading.Event()

  def held_compile(jitted, args):
    compiling.set()
    release.wait(60)
    return original(jitted, args)

  sent = []

  def preempt_once_compiling():
    compiling.wait(60)
    sent.append(time.monotonic())
    os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(loop, "_lower_and_compile", held_compile)
  threading.Thread(target=preempt_once_compiling, daemon=True).start()
  try:
    with pytest.raises(preemption.Preempted, match=r"while compiling, before step 3.*newest checkpoint that verifies "
                                                   r"is step 2"):
      train.train_and_evaluate(micro_config(), tmp_path)
    assert time.monotonic() - sent[0] < 10  # the compile still had about 60 s to go
  finally:
    release.set()
  assert tree_hash(tmp_path / "checkpoints") == saved
  monkeypatch.setattr(loop, "_lower_and_compile", original)
  assert train.train_and_evaluate(micro_config(), tmp_path)["step"] == 4
  assert_same_parameters(final_variables(tmp_path), final_variables(run))


def test_a_torn_last_metrics_line_does_not_swallow_the_next_job_start(tmp_path):
  """Issue 23: a job killed mid-write left '{"step": 1' without a newline; the next job's job_start
  record was appended to it and both were skipped, so the replayed steps stayed in the curves."""
  from invjax.train import writers

  (tmp_path / run_folder.METRICS_FILE).write_text(json.dumps({"step": 5, "train/loss": 1.0}) + '\n{"step": 6, "tr')
  writer = writers.MetricWriter(tmp_path)
  writer.mark_start(4, "1 x cpu")
  writer.close()
  records = run_folder.read_records(tmp_path)
  assert [(record["step"], record.get("event")) for record in records] == [(5, None), (4, run_folder.JOB_START)]
  assert run_folder.without_replayed(records)[-1]["event"] == run_folder.JOB_START
  glued = json.dumps({"step": 5}) + '\n{"step": 6, "tr' + json.dumps({"step": 4, "event": run_folder.JOB_START}) + "\n"
  (tmp_path / run_folder.METRICS_FILE).write_text(glued)  # as the writer left it before it ended torn lines
  assert [record["step"] for record in run_folder.read_records(tmp_path)] == [5, 4]
