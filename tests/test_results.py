"""experiments.results and experiments.collect: the machine-readable results of docs/results.md."""

import json
import pathlib
import shlex
import subprocess
import sys

import pytest

from configs import mnist_ice, shift_mnist_ce, shift_mnist_cnn
from experiments import collect, commands
from invjax.train import checkpoints, run_folder


def _finished_run(workdir, config, final, command=None):
  """A run folder as experiments.train leaves it: config, metrics of two jobs, final metrics, command."""
  command = command or shlex.join(["python", "-m", "experiments.train", f"--workdir={workdir}", "--config=X"])
  workdir.mkdir(parents=True, exist_ok=True)
  checkpoints.save_config(config, workdir)
  records = [
      {"step": 0, "event": run_folder.JOB_START, "hardware": "1 x cpu", "wall_time": 1000.0},
      {"step": 50, "train/loss": 1.0, "wall_time": 1060.0},
      {"step": 50, "event": run_folder.JOB_START, "hardware": "1 x H100", "wall_time": 5000.0},
      {"step": 100, "train/loss": 0.5, "wall_time": 5120.0},
  ]
  (workdir / run_folder.METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records) + '{"step": 1')
  (workdir / run_folder.FINAL_METRICS_FILE).write_text(json.dumps(final))
  (workdir / run_folder.COMMANDS_FILE).write_text("python -m experiments.train --old\n" + command + "\n")
  return workdir


REPO = pathlib.Path(__file__).parent.parent


def _collect(runs, out, *flags):
  return subprocess.run([sys.executable, "-m", "experiments.results", f"--runs={runs}", f"--out={out}",
                         f"--figures={out / 'figures'}", *flags],
                        cwd=REPO, capture_output=True, text=True, timeout=300)


SHIFT_FINAL = {"epochs": 2.0, "train/logit_error": 0.1, "test/logit_error": 0.9, "test_shifted/logit_error": 61.234,
               "test_none/logit_error": 30.0}


def test_wall_time_sums_the_jobs_and_skips_a_torn_line(tmp_path):
  _finished_run(tmp_path, shift_mnist_ce.get_config("tiny"), SHIFT_FINAL)
  records = run_folder.read_records(tmp_path)
  assert len(records) == 4
  assert run_folder.wall_seconds(records) == 60 + 120


def test_shift_mnist_rows_say_what_ran_and_how(tmp_path):
  config = shift_mnist_cnn.get_config("tiny")
  config.variant = "textured"
  row = collect.shift_mnist_row(_finished_run(tmp_path, config, SHIFT_FINAL, command="python -m experiments.train -y"))
  assert row == {
      "variant": "textured", "model": "cnn", "loss": "ce", "train_error": 0.1, "test_error": 0.9,
      "test_shifted_error": 61.23, "test_none_error": 30.0, "model_size": None, "epochs": 2.0, "wall_minutes": 3.0, "hardware": "1 x H100",
      "command": "python -m experiments.train -y",
  }


def test_shift_mnist_bars_name_the_loss_weights_and_schedule_their_commands_set():
  """Two runs of one config that differ in a loss weight get different bar labels (the figure's only key)."""
  train = "python -m experiments.train --workdir=w --config=configs/shift_mnist_authors.py:cpu --config.variant=binary"
  row = {"model": "fi-revnet", "loss": "ice", "epochs": 6.0, "command": f"{train} --config.model.compute_dtype=bfloat16"}
  penalised = row | {"command": f"{row['command']} --config.loss.independence_start_step=937 "
                                "--config.loss.class_mean_gap_weight=0.1"}
  assert collect._bar_label(row) == "fi-revnet\nauthors\nbf16 6 ep"
  assert collect._bar_label(penalised) == "fi-revnet\nauthors\nclass_mean_gap 0.1\nfrom step 937\nbf16 6 ep"


def test_mnist_rows_need_the_posthoc_analysis(tmp_path):
  final = {"epochs": 1.0, "train/logit_error": 1.0, "test/logit_error": 2.0, "test/bits_per_dim": 1.23456}
  workdir = _finished_run(tmp_path, mnist_ice.get_config("tiny"), final)
  with pytest.raises(FileNotFoundError, match="--posthoc"):
    collect.mnist_row(workdir)
  (workdir / "analysis").mkdir()
  analysis = {"command": "python -m experiments.metamers --posthoc",
              "posthoc_nuisance_classifier": {"train_error": 0.4021, "test_error": 0.277}}
  (workdir / collect.METAMER_METRICS).write_text(json.dumps(analysis))
  row = collect.mnist_row(workdir)
  assert (row["model"], row["loss"]) == ("fi-revnet", "ice")
  assert (row["nuisance_train_error"], row["nuisance_test_error"], row["bits_per_dim"]) == (40.21, 27.7, 1.235)
  assert row["analysis_command"] == analysis["command"]


def test_training_curves_read_every_evaluation_in_epochs(tmp_path):
  final = {**SHIFT_FINAL, "epochs": 2.0, "step": 100}
  workdir = _finished_run(tmp_path, shift_mnist_ce.get_config("tiny"), final)
  evaluations = [{"step": 50, "test_shifted/logit_error": 40.0}, {"step": 100, "test_shifted/logit_error": 90.0}]
  with (workdir / run_folder.METRICS_FILE).open("a") as records:
    records.write("\n" + "".join(json.dumps(record) + "\n" for record in evaluations))
  assert collect.evaluations(workdir, "test_shifted/logit_error") == ([1.0, 2.0], [40.0, 90.0])
  assert collect.evaluations(workdir, "test_none/logit_error") == ([], [])
  replayed = [{"step": 75, "event": run_folder.JOB_START}, {"step": 100, "test_shifted/logit_error": 95.0}]
  with (workdir / run_folder.METRICS_FILE).open("a") as records:
    records.write("".join(json.dumps(record) + "\n" for record in replayed))
  assert collect.evaluations(workdir, "test_shifted/logit_error") == ([1.0, 2.0], [40.0, 95.0])


def test_unfinished_run_is_an_error_naming_it(tmp_path):
  workdir = _finished_run(tmp_path, shift_mnist_ce.get_config("tiny"), SHIFT_FINAL)
  (workdir / run_folder.FINAL_METRICS_FILE).unlink()
  with pytest.raises(FileNotFoundError, match="has not finished"):
    collect.shift_mnist_row(workdir)


def test_main_writes_the_json_files_and_tables(tmp_path):
  runs, out = tmp_path / "runs", tmp_path / "results"
  for name, variant in (("binary_ce", "binary"), ("textured_ce", "textured")):
    config = shift_mnist_ce.get_config("tiny")
    config.variant = variant
    _finished_run(runs / "shift_mnist" / name, config, {**SHIFT_FINAL, "step": 100})
  completed = _collect(runs, out)
  assert completed.returncode == 0, completed.stderr[-3000:]
  rows = json.loads((out / "shift_mnist.json").read_text())
  assert [row["variant"] for row in rows] == ["binary", "textured"]
  assert json.loads((out / "mnist.json").read_text()) == []
  assert "| textured | fi-revnet | 3x4 w48 | ce | 0.1 | 0.9 | 61.23 | 30.0 |" in (out / "tables.md").read_text()
  assert (out / "figures" / "shift_mnist_errors.png").stat().st_size > 0
  assert (out / "figures" / "binary_training_curves.png").stat().st_size > 0


def test_model_size_names_levels_steps_and_width():
  assert collect.model_size(mnist_ice.get_config("full")) == "3x16 w128"
  assert collect.model_size(mnist_ice.get_config("cpu")) == "3x4 w48"
  config = mnist_ice.get_config("tiny")
  del config.model.steps_per_level
  config.model.steps_per_level = (2, 2, 6)
  assert collect.model_size(config) == "3x2+2+6 w48"


@pytest.mark.slow
def test_main_keeps_the_rows_of_groups_without_run_folders(tmp_path):
  runs, out = tmp_path / "runs", tmp_path / "results"
  config = shift_mnist_ce.get_config("cpu")
  config.variant = "textured"
  config.dataset_options.texture_images = "shared"
  for loss, per_class in (("ce", 1), ("ce", 4), ("ice", 1)):
    config.dataset_options.texture_images_per_class = per_class
    config.loss.nuisance_weight = 1.0 if loss == "ice" else 0.0
    _finished_run(runs / "textured_curve" / f"{loss}_{per_class}", config, {**SHIFT_FINAL, "step": 100})
  out.mkdir()
  earlier_rows = [{"model": "fi-revnet", "loss": "ce", "logit_test_error": 1.22, "command": "python -m x"}]
  (out / "mnist.json").write_text(json.dumps(earlier_rows))
  completed = _collect(runs, out)
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert "Kept" in completed.stdout
  assert json.loads((out / "mnist.json").read_text()) == earlier_rows
  curve = json.loads((out / "textured_curve.json").read_text())
  assert [(row["loss"], row["texture_images_per_class"], row["model_size"]) for row in curve] == [
      ("ce", 1, "3x4 w48"), ("ce", 4, "3x4 w48"), ("ice", 1, "3x4 w48")]
  assert "| fi-revnet | - | ce | - | 1.22 |" in (out / "tables.md").read_text()
  assert (out / "figures" / "textured_curve.png").stat().st_size > 0
  (runs / "textured_curve" / "ice_1" / run_folder.FINAL_METRICS_FILE).unlink()
  completed = _collect(runs, out)
  assert completed.returncode == 1 and "has not finished" in completed.stderr
  completed = _collect(runs, out, "--skip_unfinished")
  assert completed.returncode == 0 and f"Left out {runs / 'textured_curve' / 'ice_1'}: not finished" in completed.stdout
  assert len(json.loads((out / "textured_curve.json").read_text())) == 2


@pytest.mark.slow
def test_main_keeps_earlier_rows_of_runs_without_folders_and_recollects_the_others(tmp_path):
  runs, out = tmp_path / "runs", tmp_path / "results"
  config = shift_mnist_ce.get_config("full")
  config.variant = "binary"
  command = "python -m experiments.train --workdir=runs/results/shift_mnist_full/binary_ice --config=X"
  _finished_run(runs / "shift_mnist_full" / "binary_ice", config, {**SHIFT_FINAL, "step": 100}, command=command)
  out.mkdir()
  earlier_rows = [
      {"variant": "binary", "loss": "ce", "test_shifted_error": 90.56,
       "command": "python -m experiments.train --workdir=old/shift_mnist_full/binary_ce --config=Y"},
      {"variant": "binary", "loss": "ice", "test_shifted_error": 12.0,
       "command": "python -m experiments.train --workdir 'old/shift_mnist_full/binary_ice' --config=Z"},
  ]
  (out / "shift_mnist_full.json").write_text(json.dumps(earlier_rows))
  completed = _collect(runs, out)
  assert completed.returncode == 1 and "--replace_rows" in completed.stderr
  assert "old/shift_mnist_full/binary_ice" in completed.stderr and len(completed.stderr.splitlines()) == 1
  assert json.loads((out / "shift_mnist_full.json").read_text()) == earlier_rows
  completed = _collect(runs, out, "--replace_rows")
  assert completed.returncode == 0, completed.stderr[-3000:]
  kept_lines = [line for line in completed.stdout.splitlines() if line.startswith("Kept")]
  assert kept_lines == [f"Kept 1 rows of {out / 'shift_mnist_full.json'} whose runs have no folder under "
                        f"{runs / 'shift_mnist_full'}: binary_ce"]
  rows = json.loads((out / "shift_mnist_full.json").read_text())
  assert [(row["test_shifted_error"], row["command"]) for row in rows] == [
      (90.56, earlier_rows[0]["command"]), (61.23, command)]


def test_main_without_runs_exits_with_the_reason(tmp_path):
  completed = _collect(tmp_path, tmp_path / "results")
  assert completed.returncode == 1 and "no finished runs" in completed.stderr


def test_commands_are_recorded_one_line_per_job(tmp_path, monkeypatch):
  with pytest.raises(FileNotFoundError, match="experiments.train"):
    commands.last_recorded(tmp_path)
  monkeypatch.setattr(sys, "argv", ["train.py", "--workdir=my run", "--config=configs/mnist_ce.py:cpu"])
  commands.record(tmp_path, "experiments.train")
  monkeypatch.setattr(sys, "argv", ["train.py", "--config.total_steps=9"])
  commands.record(tmp_path, "experiments.train")
  assert (tmp_path / run_folder.COMMANDS_FILE).read_text().splitlines()[0] == (
      "python -m experiments.train '--workdir=my run' --config=configs/mnist_ce.py:cpu")
  assert commands.last_recorded(tmp_path) == "python -m experiments.train --config.total_steps=9"


def test_ablation_rows_name_the_varied_settings(tmp_path):
  config = shift_mnist_ce.get_config("tiny")
  config.variant = "textured"
  config.dataset_options.texture_max = 255
  config.dataset_options.texture_images = "shared"
  row = collect.ablation_row(_finished_run(tmp_path / "textured_255", config, SHIFT_FINAL))
  assert (row["run"], row["loss"], row["nuisance_form"]) == ("textured_255", "ce", None)
  assert (row["texture_max"], row["texture_size"], row["texture_images"]) == (255, 64, "shared")
  config.variant = "binary"
  workdir = _finished_run(tmp_path / "binary", config, SHIFT_FINAL)
  row = collect.ablation_row(workdir)
  assert row["texture_max"] is row["texture_size"] is row["texture_images"] is None
  assert row["nuisance_test_error"] is None
  (workdir / "analysis").mkdir()
  (workdir / collect.METAMER_METRICS).write_text(json.dumps({"posthoc_nuisance_classifier": {"test_error": 0.0123}}))
  assert collect.ablation_row(workdir)["nuisance_test_error"] == 1.23
  config.loss.label_dependence_weight = 10.0
  row = collect.ablation_row(_finished_run(tmp_path / "binary_dependence", config, SHIFT_FINAL))
  assert (row["loss"], row["nuisance_weight"], row["label_dependence_weight"]) == ("ice", 0.0, 10.0)
  assert (row["dequantize"], row["model_dropout"]) == (config.dequantize, config.model.dropout)


def test_objectives_rows_give_every_term_weight_the_architecture_and_each_part_of_z_n(tmp_path):
  config = mnist_ice.get_config("tiny")
  config.loss.class_mean_gap_weight = 2.0
  config.model.split = False
  final = {"epochs": 1.0, "train/logit_error": 1.0, "test/logit_error": 1.5, "test/bits_per_dim": 2.5}
  workdir = _finished_run(tmp_path / "nosplit_gap", config, final)
  (workdir / "analysis").mkdir()
  by_part = {"all": {"mlp": {"train_error": 0.01, "test_error": 0.05}, "linear": {"train_error": 0.1, "test_error": 0.2}},
             "final": {"mlp": {"train_error": 0.0, "test_error": 0.3}, "linear": {"train_error": 0.4, "test_error": 0.5}}}
  (workdir / collect.METAMER_METRICS).write_text(json.dumps({
      "command": "python -m experiments.metamers --posthoc",
      "posthoc_nuisance_classifier": {"train_error": 0.01, "test_error": 0.05, "by_part": by_part}}))
  row = collect.objectives_row(workdir)
  assert (row["run"], row["split"], row["class_mean_gap_weight"], row["random_feature_gap_weight"]) == (
      "nosplit_gap", False, 2.0, 0.0)
  assert (row["nuisance_test_error"], row["posthoc_all_linear"], row["posthoc_final_mlp"]) == (5.0, 20.0, 30.0)
  assert collect.markdown_table([row], collect.TABLES["objectives"]).count("| - |") >= 1  # split parts absent


@pytest.mark.slow
def test_main_writes_next_to_the_runs_and_never_replaces_published_rows_unasked(tmp_path):
  """Issue 23: `--runs=MYRUNS` wrote into the repository's results/ and docs/figures/, replacing
  the published row of a run of the same name."""
  runs, published = tmp_path / "my runs", tmp_path / "published"
  config = shift_mnist_ce.get_config("tiny")
  config.variant = "binary"
  command = f"python -m experiments.train --workdir='{runs}/shift_mnist/binary_ce' --config=X"
  _finished_run(runs / "shift_mnist" / "binary_ce", config, {**SHIFT_FINAL, "step": 100}, command=command)
  completed = subprocess.run([sys.executable, "-m", "experiments.results", f"--runs={runs}"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert len(json.loads((runs / "results" / "shift_mnist.json").read_text())) == 1
  assert (runs / "figures" / "shift_mnist_errors.png").exists()
  published.mkdir()
  rows = [{"variant": "binary", "loss": "ce", "test_error": 1.22,
           "command": "python -m experiments.train --workdir=runs/results/shift_mnist/binary_ce --config=Y"}]
  (published / "shift_mnist.json").write_text(json.dumps(rows))
  completed = _collect(runs, published)
  assert completed.returncode == 1 and completed.stderr.startswith("Error: ") and "--replace_rows" in completed.stderr
  assert json.loads((published / "shift_mnist.json").read_text()) == rows
  assert not (published / "tables.md").exists() and not (published / "figures").exists()
  completed = _collect(runs, runs / "results")  # its own rows: collected again without a flag
  assert completed.returncode == 0, completed.stderr[-3000:]
