"""End to end: `python -m experiments.evaluate` on a run folder.

The run is an untrained CNN (`test_analysis_experiments.untrained_run`). The input checks
themselves are tested on the library function in test_analysis_external.py.
"""

import pathlib
import subprocess
import sys

import numpy as np
import pytest

from configs import mnist_cnn

from testing_utils import untrained_run

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
  return untrained_run(mnist_cnn.get_config("tiny"), tmp_path_factory.mktemp("cnn_run"))


def _evaluate(workdir, images, labels, tmp_path):
  np.save(tmp_path / "images.npy", images)
  np.save(tmp_path / "labels.npy", labels)
  return subprocess.run(
      [sys.executable, "-m", "experiments.evaluate", f"--workdir={workdir}", f"--images={tmp_path / 'images.npy'}",
       f"--labels={tmp_path / 'labels.npy'}", f"--out={tmp_path / 'result.json'}", "--batch_size=32"],
      cwd=REPO, capture_output=True, text=True, timeout=300,
  )


def test_evaluate_reports_accuracy_and_confusion_of_raw_digits(cnn_run, tmp_path):
  rng = np.random.default_rng(0)
  digits, labels = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), rng.integers(0, 10, 50)
  finished = _evaluate(cnn_run, digits, labels, tmp_path)
  assert finished.returncode == 0, finished.stderr
  assert "Detected (N, 28, 28) digits, uint8 in [0, 255]; 50 images." in finished.stdout
  assert "Accuracy:" in finished.stdout and "true \\ predicted" in finished.stdout
  assert "read only" not in finished.stderr  # orbax's warning about the read-only reader it was asked for
  assert (tmp_path / "result.json").exists()


@pytest.mark.slow
def test_evaluate_refuses_a_bad_file_and_says_what_is_accepted(cnn_run, tmp_path):
  finished = _evaluate(cnn_run, np.zeros((4, 28, 28, 1), np.uint8), np.zeros(4, np.int64), tmp_path)
  assert finished.returncode == 1
  assert "accepted are images of shape (N, 28, 28) or (N, 32, 32, 3)" in finished.stderr


def test_pixel_range_settles_what_auto_refuses_to_guess():
  """Digits in [0, 1] with one pixel of overshoot: auto refuses (it once read them as [0, 255]);
  --pixel_range=0-1 takes them once clipped, and 0-255 reads dark digits as they are."""
  from invjax.analysis import external

  digits = np.full((4, 28, 28), 0.5, np.float32)
  digits[0, 0, 0] = 1.02
  labels = np.zeros(4, np.int64)
  with pytest.raises(ValueError, match="pixel_range"):
    external.prepare_external_images(digits, labels, num_classes=10)
  as_unit = external.prepare_external_images(np.clip(digits, 0, 1), labels, num_classes=10, pixel_range="0-1")
  np.testing.assert_allclose(as_unit.images[1, 2:30, 2:30, 0], 0.5 * 255 / 127.5 - 1, rtol=1e-6)
  as_bytes = external.prepare_external_images(digits, labels, num_classes=10, pixel_range="0-255")
  np.testing.assert_allclose(as_bytes.images[1, 2:30, 2:30, 0], 0.5 / 127.5 - 1, rtol=1e-6)
  exact = external.prepare_external_images(np.full((4, 28, 28), 200, np.int32), labels, num_classes=10)
  np.testing.assert_allclose(exact.images[0, 2:30, 2:30, 0], 200 / 127.5 - 1, rtol=1e-6)
