"""End to end: `python -m experiments.evaluate` on a freshly trained two-step CNN run.

The input checks themselves are tested on the library function in
test_analysis_external.py.
"""

import pathlib
import subprocess
import sys

import numpy as np
import pytest

from configs import mnist_cnn
from invjax import data, train

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
  config = mnist_cnn.get_config("tiny")
  config.total_steps = 2
  config.batch_size = 16
  config.eval_batch_size = 64
  config.eval_examples = config.train_eval_examples = 64
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 2
  workdir = tmp_path_factory.mktemp("cnn_run")
  train.train_and_evaluate(config, str(workdir))
  return workdir


def _evaluate(workdir, images, labels, tmp_path):
  np.save(tmp_path / "images.npy", images)
  np.save(tmp_path / "labels.npy", labels)
  return subprocess.run(
      [sys.executable, "-m", "experiments.evaluate", f"--workdir={workdir}", f"--images={tmp_path / 'images.npy'}",
       f"--labels={tmp_path / 'labels.npy'}", f"--out={tmp_path / 'result.json'}", "--batch_size=32"],
      cwd=REPO, capture_output=True, text=True, timeout=300,
  )


def test_evaluate_reports_accuracy_and_confusion_of_raw_digits(cnn_run, tmp_path):
  images, labels = data.as_numpy("mnist", "test")
  digits = np.round((images[:50, 2:30, 2:30, 0] + 1.0) * 127.5).astype(np.uint8)  # back to raw 28x28 pixels
  finished = _evaluate(cnn_run, digits, labels[:50], tmp_path)
  assert finished.returncode == 0, finished.stderr
  assert "Detected (N, 28, 28) digits, uint8 in [0, 255]; 50 images." in finished.stdout
  assert "Accuracy:" in finished.stdout and "true \\ predicted" in finished.stdout
  assert (tmp_path / "result.json").exists()


def test_evaluate_refuses_a_bad_file_and_says_what_is_accepted(cnn_run, tmp_path):
  finished = _evaluate(cnn_run, np.zeros((4, 28, 28, 1), np.uint8), np.zeros(4, np.int64), tmp_path)
  assert finished.returncode == 1
  assert "accepted are images of shape (N, 28, 28) or (N, 32, 32, 3)" in finished.stderr
