"""Bad command lines end in one line on stderr and exit status 1, never a traceback (issue 17).

Starting a process costs ~15 s here (jax and TensorFlow imports), so each tool's
cases run in one process (`_DRIVER`): it parses each command line with the
tools' own parser (`commands._parse_flags`) and runs its `main`, recording the
exit status and stderr. One case per tool also runs as a real process.
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from configs import mnist_cnn
from test_train import micro_config

from testing_utils import ONE_DEVICE_XLA_FLAGS, untrained_run

REPO = pathlib.Path(__file__).resolve().parents[1]
ONE_DEVICE = {**os.environ, "XLA_FLAGS": ONE_DEVICE_XLA_FLAGS}  # as a user runs the tools (configs' batch sizes need not divide 8)

_DRIVER = """
import contextlib, io, json, sys, traceback
from absl import flags
from experiments import commands
import importlib
module = importlib.import_module("experiments." + sys.argv[1])

results = []
tool, cases = sys.argv[1], json.loads(sys.argv[2])
for argv in cases:
  flags.FLAGS.unparse_flags()
  sys.argv = [sys.argv[0], *argv]  # config_flags reads its overrides from sys.argv
  stderr, code = io.StringIO(), 0
  with contextlib.redirect_stderr(stderr):
    try:
      module.main(commands._parse_flags([tool, *argv]))
    except SystemExit as stop:
      code = stop.code
    except BaseException:
      code, _ = "traceback", traceback.print_exc()
  results.append({"argv": argv, "code": code, "stderr": stderr.getvalue()})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """An untrained CNN run, an untrained fi-RevNet run, a file and .npy inputs."""
  folder = tmp_path_factory.mktemp("cli")
  untrained_run(mnist_cnn.get_config("tiny"), folder / "cnn")
  untrained_run(micro_config(), folder / "revnet")
  (folder / "a_file").write_text("not a folder")
  np.save(folder / "labels.npy", np.zeros(8, np.int64))
  overshoot = np.full((8, 28, 28), 0.5, np.float32)
  overshoot[0, 0, 0] = 1.02
  np.save(folder / "overshoot.npy", overshoot)
  np.save(folder / "int32.npy", np.full((8, 28, 28), 1020, np.int32))
  np.save(folder / "digits.npy", np.zeros((8, 28, 28), np.uint8))
  return folder


def _start(tool: str, cases: list[list[str]]) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "-c", _DRIVER, tool, json.dumps(cases)], cwd=REPO, text=True,
                          env=ONE_DEVICE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _cases(folder: pathlib.Path) -> dict[str, list[tuple[list[str], str]]]:
  tiny = ["--config=configs/mnist_ce.py:tiny", f"--workdir={folder / 'new_run'}"]
  evaluate = [f"--workdir={folder / 'cnn'}", f"--labels={folder / 'labels.npy'}"]
  metamers = [f"--workdir={folder / 'revnet'}"]
  return {
      "train": [
          ([*tiny, "--config.model.widht=4"], r"names a field the config does not have: 'widht' \(did you mean 'width'"),
          (["--config=configs/nope.py", f"--workdir={folder / 'x'}"], r"--config=configs/nope.py cannot be loaded"),
          (["--config=configs/mnist_ce.py:tiny", f"--workdir={folder / 'a_file'}"], r"is a file, not a folder"),
          ([*tiny, "--config.keep_checkpoints=0"], r"keep_checkpoints=0 must be an integer >= 1"),
          ([*tiny, "--config.checkpoint_every_steps=0"], r"checkpoint_every_steps=0 must be an integer >= 1"),
          ([*tiny, "--config.model.width=0"], r"model.width=0 must be an integer >= 1"),
          ([*tiny, "--config.model.steps_per_level=0"], r"steps_per_level=0 must be"),
          ([*tiny, "--config.eval_examples=-1"], r"eval_examples=-1 must be an integer >= 0"),
          ([*tiny, "--config.optimizer.learning_rate=-0.001"], r"learning_rate=-0.001 must be a finite number > 0"),
          ([*tiny, "--config.model.dropout=1.0"], r"model.dropout=1.0 must be a finite number in \[0, 1\)"),
          ([*tiny, "--config.total_steps=abc"], r"--config.total_steps=abc"),
          (["--config=configs/mnist_ce.py:huge", f"--workdir={folder / 'x'}"], r"Unknown config variant 'huge'"),
          ([f"--workdir={folder / 'x'}"], r"--config must have a value|Flag --config must"),
      ],
      "evaluate": [
          ([*evaluate, f"--images={folder / 'digits.npy'}", "--batch_size=0"], r"--batch_size=0 must be >= 1"),
          ([*evaluate, f"--images={folder / 'missing.npy'}"], r"missing.npy is not a file"),
          ([f"--workdir={folder / 'missing_run'}", f"--images={folder / 'digits.npy'}",
            f"--labels={folder / 'labels.npy'}"], r"missing_run is not a run folder"),
          ([*evaluate, f"--images={folder / 'digits.npy'}", f"--out={folder / 'no_such_dir' / 'r.json'}"],
           r"--out=.* cannot be written"),
          ([*evaluate, f"--images={folder / 'overshoot.npy'}"], r"1 of 6272 values exceed 1.*--pixel_range=0-1"),
          ([*evaluate, f"--images={folder / 'overshoot.npy'}", "--pixel_range=0-1"], r"outside \[0, 1\].*np.clip"),
          ([*evaluate, f"--images={folder / 'int32.npy'}"], r"span \[1020, 1020\], outside \[0, 255\]"),
          ([*evaluate, f"--images={folder / 'digits.npy'}", "--pixel_range=0-100"], r"--pixel_range"),
      ],
      "metamers": [
          ([*metamers, "--num_pairs=0"], r"--num_pairs=0 must be >= 18"),
          ([*metamers, "--num_pairs=-5"], r"--num_pairs=-5 must be >= 18"),
          ([*metamers, "--path_steps=1"], r"--path_steps=1 must be >= 2"),
          ([*metamers, "--batch_size=0"], r"--batch_size=0 must be >= 1"),
          ([*metamers, "--split=validation"], r"--split=validation is not a split of mnist"),
          ([f"--workdir={folder / 'cnn'}"], r"holds a cnn model; metamers need a fi-RevNet run"),
          ([f"--workdir={folder / 'missing_run'}"], r"missing_run is not a run folder"),
          ([*metamers, f"--out={folder / 'a_file'}"], r"--out=.*a_file is a file"),
      ],
  }


@pytest.mark.slow
def test_bad_command_lines_end_in_one_line_and_status_1(runs):
  cases = _cases(runs)
  jobs = {tool: _start(tool, [argv for argv, _ in tool_cases]) for tool, tool_cases in cases.items()}
  real = subprocess.Popen([sys.executable, "-m", "experiments.train", "--config=configs/mnist_ce.py:tiny",
                           f"--workdir={runs / 'a_file'}"], cwd=REPO, env=ONE_DEVICE, text=True,
                          stderr=subprocess.PIPE)
  for tool, job in jobs.items():
    stdout, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, stderr[-3000:]
    for result, (_, message) in zip(json.loads(stdout.splitlines()[-1]), cases[tool], strict=True):
      errors = [line for line in result["stderr"].splitlines() if line.startswith("Error: ")]
      assert result["code"] == 1, (tool, result)
      assert len(errors) == 1 and "Traceback" not in result["stderr"], (tool, result)
      assert re.search(message, errors[0]), (tool, result["argv"], errors[0])
  _, stderr = real.communicate(timeout=600)
  assert real.returncode == 1 and "Traceback" not in stderr
  assert [line for line in stderr.splitlines() if line.startswith("Error: ")] == [
      f"Error: --workdir={runs / 'a_file'} is a file, not a folder: pass a folder (it is created if missing)."]


@pytest.mark.slow
def test_sigterm_ends_a_training_job_at_a_saved_step_with_status_143(tmp_path):
  command = [sys.executable, "-m", "experiments.train", "--config=configs/mnist_ice.py:tiny", f"--workdir={tmp_path}",
             "--config.model.steps_per_level=1", "--config.model.width=8", "--config.log_every_steps=1",
             "--config.checkpoint_every_steps=1000", "--config.eval_every_steps=100000"]
  job = subprocess.Popen([*command, "--config.total_steps=100000"], cwd=REPO, env=ONE_DEVICE, text=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  metrics, deadline = tmp_path / "metrics.jsonl", time.monotonic() + 300
  while time.monotonic() < deadline and not (metrics.exists() and metrics.read_text().count('"train/loss"') >= 3):
    time.sleep(0.5)
  job.send_signal(signal.SIGTERM)
  _, stderr = job.communicate(timeout=300)
  assert job.returncode == 143, stderr[-3000:]
  stopped = re.search(r"Stopped by SIGTERM \(preemption\) after step (\d+), which was saved\. The newest "
                      r"checkpoint that verifies is step (\d+)", stderr)
  assert stopped and stopped.group(1) == stopped.group(2), stderr[-3000:]
  step = int(stopped.group(1))
  resumed = subprocess.run([*command, f"--config.total_steps={step + 1}"], cwd=REPO, env=ONE_DEVICE, text=True,
                           capture_output=True, timeout=300)
  assert resumed.returncode == 0 and f"Resumed from step {step} in" in resumed.stderr, resumed.stderr[-3000:]


def test_an_unwritable_output_folder_is_one_line_naming_the_flag(tmp_path, monkeypatch):
  """Issue 23: metamers on a run on a read-only mount, without --out, ended in a traceback."""
  import errno

  from experiments import commands

  assert commands.output_folder(tmp_path / "analysis", "out").is_dir()
  monkeypatch.setattr(os, "access", lambda path, mode: False)  # as on a read-only file system (EROFS)
  with pytest.raises(ValueError, match=r"analysis cannot be written .*pass --out=FOLDER"):
    commands.output_folder(tmp_path / "analysis", "out")

  def read_only(self, *args, **kwargs):
    raise OSError(errno.EROFS, "Read-only file system", str(self))

  monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
  with pytest.raises(ValueError, match=r"new cannot be written .*Read-only file system.*pass --out=FOLDER"):
    commands.output_folder(tmp_path / "new", "out")


def test_orbax_errors_of_a_failed_save_are_not_shown_without_verbose():
  """Issue 23: a full disk during a save printed the right one-line error after orbax's background
  threads had each logged it with a traceback (69 in all on the paper's model)."""
  import logging

  from absl import flags
  from absl.testing import flagsaver

  from experiments import commands

  flags.FLAGS.mark_as_parsed()
  record = lambda level, path: logging.LogRecord("absl", level, path, 1, "failed", None, None)
  orbax_file = os.path.join(os.sep, "venv", "orbax", "checkpoint", "future.py")
  assert not commands._without_background_save_tracebacks(record(logging.ERROR, orbax_file))
  assert commands._without_background_save_tracebacks(record(logging.WARNING, orbax_file))
  assert commands._without_background_save_tracebacks(record(logging.ERROR, "/repo/invjax/train/loop.py"))
  with flagsaver.flagsaver(verbose=True):
    assert commands._without_background_save_tracebacks(record(logging.ERROR, orbax_file))
