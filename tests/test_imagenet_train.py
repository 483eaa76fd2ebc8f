"""The ImageNet tiny job end to end, on the generated real-format tiny ImageNet:
train, checkpoint, resume, top-1/top-5 errors, then its metamers in the paper's
Figure 1 layout."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from configs import imagenet_ce, imagenet_ice
from invjax import train
from invjax.train import run_folder

REPO = pathlib.Path(__file__).resolve().parents[1]
METAMER_LOGIT_TOLERANCE = 1e-3  # float32, 32x32 inputs, 1000 logits


def _run(*arguments):
  result = subprocess.run([sys.executable, "-m", *arguments], cwd=REPO, capture_output=True, text=True,
                          timeout=900, env=os.environ)
  assert result.returncode == 0, result.stderr[-4000:]
  return result.stdout


def _check_metamers(workdir: pathlib.Path, *flags: str) -> None:
  output = _run("experiments.metamers", f"--workdir={workdir}", *flags)
  assert "max |logit difference| over 1000 logits" in output
  metrics = json.loads((workdir / "analysis" / "metamer_metrics.json").read_text())
  figure1 = metrics["figure1"]
  assert len(figure1["nuisance_source_labels"]) >= 4
  assert figure1["logit_source_label"] not in figure1["nuisance_source_labels"]
  assert figure1["max_abs_logit_difference"] <= METAMER_LOGIT_TOLERANCE
  assert metrics["logit_preservation"]["max_abs"] <= METAMER_LOGIT_TOLERANCE
  assert (workdir / "analysis" / "figure1.png").stat().st_size > 10_000


def _tiny_config(data_dir: pathlib.Path):
  config = imagenet_ice.get_config("tiny")
  config.dataset_options.data_dir = str(data_dir)
  config.total_steps, config.checkpoint_every_steps, config.eval_every_steps = 3, 3, 6
  return config


def _assert_top5_at_most_top1(workdir: pathlib.Path) -> None:
  saved = json.loads((workdir / "final_metrics.json").read_text())
  for split in ("train", "test"):
    top1, top5 = saved[f"{split}/logit_error"], saved[f"{split}/logit_top5_error"]
    assert 0 <= top5 <= top1 <= 100


@pytest.mark.slow  # 40 s on the 2-core CPU; fast: the ImageNet data tests and the step's lowering (test_export_platforms)
def test_tiny_job_trains_and_evaluates_top1_and_top5(tiny_imagenet_dirs, tmp_path):
  """The fast part of the test below: the ImageNet job's one compile of its train and eval steps."""
  assert train.train_and_evaluate(_tiny_config(tiny_imagenet_dirs[1]), str(tmp_path))["step"] == 3
  _assert_top5_at_most_top1(tmp_path)


@pytest.mark.slow  # 190 s on the 2-core CPU; resuming is tested fast on MNIST (test_train), Figure 1's layout in
# test_imagenet_figure
def test_tiny_job_trains_resumes_evaluates_and_draws_figure1(tiny_imagenet_dirs, tmp_path):
  config = _tiny_config(tiny_imagenet_dirs[1])
  train.train_and_evaluate(config, str(tmp_path))
  config.total_steps = 6
  final = train.train_and_evaluate(config, str(tmp_path))
  assert final["step"] == 6
  records = run_folder.read_records(tmp_path)
  assert [record["step"] for record in records if record.get("event") == run_folder.JOB_START] == [0, 3]
  _assert_top5_at_most_top1(tmp_path)
  _check_metamers(tmp_path, "--num_pairs=8", "--figure_pairs=3", "--num_paths=2", "--path_steps=3",
                  "--figure1_nuisances=4")


def test_ce_and_pod_settings_are_valid_configs():
  for get_config in (imagenet_ce.get_config, imagenet_ice.get_config):
    pod = get_config()
    train.validate(pod, num_devices=16)  # a v4-32 slice
    train.validate(pod, num_devices=8)  # 8 GPUs
    assert pod.batch_size == 1024 and pod.total_steps == 90 * 1251
  assert imagenet_ce.get_config().loss.nuisance_weight == 0 < imagenet_ice.get_config().loss.nuisance_weight


def test_the_job_stops_with_one_line_before_writing_when_the_data_is_not_prepared(tmp_path, monkeypatch):
  monkeypatch.delenv("INVJAX_IMAGENET_DIR", raising=False)
  workdir = tmp_path / "run"
  result = subprocess.run(
      [sys.executable, "-m", "experiments.train", "--config=configs/imagenet_ice.py:tiny", f"--workdir={workdir}",
       f"--config.dataset_options.data_dir={tmp_path / 'empty'}"],
      cwd=REPO, capture_output=True, text=True, timeout=300, env=os.environ)
  assert result.returncode == 1
  last_line = result.stderr.strip().splitlines()[-1]
  assert "imagenet2012 (version 5.1.0) is not prepared in" in last_line and "prepare_imagenet" in last_line
  assert not workdir.exists() or not any(workdir.iterdir())


@pytest.mark.slow
def test_tiny_job_command_lines(tiny_imagenet_dirs, tmp_path):
  """The README's commands: train the :tiny config, run again to go on, then metamers."""
  data_dir = f"--config.dataset_options.data_dir={tiny_imagenet_dirs[1]}"
  workdir = tmp_path / "run"
  _run("experiments.train", "--config=configs/imagenet_ice.py:tiny", f"--workdir={workdir}", data_dir)
  _run("experiments.train", "--config=configs/imagenet_ice.py:tiny", f"--workdir={workdir}", data_dir,
       "--config.total_steps=30")
  final = json.loads((workdir / "final_metrics.json").read_text())
  assert final["step"] == 30 and final["test/logit_top5_error"] <= final["test/logit_error"]
  # 10 classes: chance is 90% top-1 error; colour alone separates the generated classes.
  assert final["train/logit_error"] < 80, final
  _check_metamers(workdir)
