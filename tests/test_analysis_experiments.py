"""End to end: `python -m experiments.metamers` and `python -m experiments.spheres`.

Runs are untrained models saved the way training saves them (config.json and
an orbax checkpoint), which is all `train.load_run` needs.
"""

import json
import pathlib
import subprocess
import sys

import pytest

from configs import mnist_ce, mnist_cnn

from testing_utils import untrained_run

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_experiment(name: str, *flags: str) -> subprocess.CompletedProcess:
  finished = subprocess.run(
      [sys.executable, "-m", f"experiments.{name}", *flags], cwd=REPO, capture_output=True, text=True, timeout=600
  )
  assert finished.returncode == 0, finished.stderr[-3000:]
  return finished


POSTHOC_FLAGS = ("--posthoc", "--posthoc_train_examples=256", "--posthoc_test_examples=64", "--posthoc_epochs=1")


@pytest.mark.slow  # 40 s on the 2-core CPU (a subprocess compiling every analysis); fast: test_metamers, test_analysis_*
@pytest.mark.parametrize("posthoc", [False, True])
def test_metamers_experiment_writes_figures_and_metrics(tmp_path, posthoc):
  flow_config = mnist_ce.get_config("tiny")
  flow_config.model.steps_per_level, flow_config.model.width = 1, 8
  flow_run = untrained_run(flow_config, tmp_path / "flow")
  oracle_run = untrained_run(mnist_cnn.get_config("tiny"), tmp_path / "oracle")
  finished = run_experiment(
      "metamers", f"--workdir={flow_run}", f"--oracle_workdir={oracle_run}", f"--out={tmp_path / 'analysis'}",
      "--num_pairs=16", "--figure_pairs=3", "--num_paths=2", "--path_steps=3", "--batch_size=8",
      *(POSTHOC_FLAGS if posthoc else ()),
  )
  for name in ("metamers.png", "interpolations.png", "metamer_metrics.json"):
    assert f"Wrote {tmp_path / 'analysis' / name}" in finished.stdout
  metrics = json.loads((tmp_path / "analysis" / "metamer_metrics.json").read_text())
  assert metrics["logit_preservation"]["max_abs"] <= 1e-4
  assert len(metrics["path_logit_preservation"]["max_abs"]) == 3
  assert metrics["oracle"]["metamers"]["num_pairs"] == 16
  noise_errors = metrics["dequantization_noise_error"]
  assert list(noise_errors) == ["none", "channel 0", "channel 1", "channel 2", "all"]
  assert all(0 <= error <= 100 for error in noise_errors.values())
  assert ("posthoc_nuisance_classifier" in metrics) == posthoc
  if posthoc:
    assert 0 <= metrics["posthoc_nuisance_classifier"]["test_label_dependence"] <= 1
    by_part = metrics["posthoc_nuisance_classifier"]["by_part"]
    assert list(by_part) == ["all", "final", "split_1", "split_2"]
    assert set(by_part["split_1"]) == {"mlp", "linear"}


@pytest.mark.slow
def test_spheres_experiment_writes_the_decision_planes(tmp_path):
  finished = run_experiment(
      "spheres", f"--out={tmp_path}", "--steps=20", "--nuisance_examples=512", "--nuisance_epochs=1",
      "--resolution=21",
  )
  assert f"Wrote {tmp_path / 'spheres_planes.png'}" in finished.stdout
  metrics = json.loads((tmp_path / "spheres_metrics.json").read_text())
  assert metrics["metamer_logit_class"] == 0  # the metamer keeps the inner point's logits
