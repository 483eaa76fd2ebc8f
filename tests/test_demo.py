"""`python -m experiments.demo` (what `make demo` runs) end to end, on the tiny demo setting.

The tiny setting trains for a few steps, so its numbers mean nothing; what is
checked is what a newcomer relies on: the printed findings, demo.json and the
figure, a second run that reuses the trained runs instead of training again,
and a one-line refusal of a bad setting before anything is written.
"""

import json
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = "--config=configs/mnist_demo.py:tiny"


def run_demo(*flags: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "experiments.demo", TINY, *flags], cwd=REPO,
                        capture_output=True, text=True, timeout=900)


def train_lines(run: pathlib.Path) -> int:
  return sum('"train/loss"' in line for line in (run / "metrics.jsonl").read_text().splitlines())


@pytest.mark.slow
def test_demo_prints_its_findings_writes_the_figure_and_resumes(tmp_path):
  figure = tmp_path / "figures" / "demo.png"
  first = run_demo(f"--workdir={tmp_path / 'demo'}", f"--figure={figure}")
  assert first.returncode == 0, first.stderr[-3000:]
  assert "MNIST test error" in first.stdout
  assert "puts" in first.stdout and "in the nuisance source b's class" in first.stdout
  assert figure.read_bytes().startswith(b"\x89PNG")
  results = json.loads((tmp_path / "demo" / "demo.json").read_text())
  assert 0 <= results["flow_test_error"] <= 100 and 0 <= results["judge_test_error"] <= 100
  for classifier in ("flow_on_metamers", "judge_on_metamers"):
    fractions = results[classifier]
    assert fractions["num_pairs"] == 20  # every pair has two different classes
    total = fractions["logit_source_class"] + fractions["nuisance_source_class"] + fractions["other_class"]
    assert total == pytest.approx(1.0)
    assert min(fractions["logit_source_class"], fractions["nuisance_source_class"], fractions["other_class"]) >= 0
  trained = {name: train_lines(tmp_path / "demo" / name) for name in ("flow", "judge")}
  assert all(trained.values())

  second = run_demo(f"--workdir={tmp_path / 'demo'}", f"--figure={figure}")
  assert second.returncode == 0, second.stderr[-3000:]
  assert {name: train_lines(tmp_path / "demo" / name) for name in ("flow", "judge")} == trained
  assert json.loads((tmp_path / "demo" / "demo.json").read_text())["flow_test_error"] == results["flow_test_error"]


def test_demo_refuses_more_figure_pairs_than_pairs_before_writing(tmp_path):
  finished = run_demo(f"--workdir={tmp_path / 'demo'}", "--config.metamers.figure_pairs=21")
  assert finished.returncode == 1
  assert finished.stderr.strip().splitlines()[-1].startswith("Error: config.metamers needs 1 <= figure_pairs")
  assert not (tmp_path / "demo").exists()


def test_the_authors_variant_trains_their_recipe_and_a_mislabelled_objective_is_refused():
  # In its own process: experiments.demo defines absl flags that other experiments in a test worker also define.
  script = """
from configs import mnist_demo
from experiments import demo
from invjax.train import validation
config = mnist_demo.get_config("authors")
demo._check(config)
validation.validate(config.flow, num_devices=1)
assert config.flow.loss.logit_batch_norm and config.flow.model.split_prior
config = mnist_demo.get_config()
config.objective = "the authors' iCE"
try:
  demo._check(config)
except ValueError as error:
  assert "does not name how config.flow trains" in str(error)
else:
  raise AssertionError("a CE flow named the authors' iCE was accepted")
"""
  finished = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert finished.returncode == 0, finished.stderr
