"""experiments.grid (every run of docs/results.md as data) and experiments.run_grid (the 2-worker runner)."""

import pathlib
import subprocess
import sys

import pytest

from experiments import collect, grid, run_grid

REPO = pathlib.Path(__file__).parent.parent


def test_grid_names_are_unique_and_every_group_is_collected_or_says_why_not():
  paths = [run.path for run in grid.RUNS]
  assert len(paths) == len(set(paths))
  assert {run.group for run in grid.RUNS} <= set(collect.GROUPS) | set(grid.UNCOLLECTED)
  assert set(grid.UNCOLLECTED).isdisjoint(collect.GROUPS)


def test_every_config_exists_and_every_oracle_analysis_has_the_oracle():
  for run in grid.RUNS:
    assert (REPO / run.config.split(":")[0]).exists(), run.path
    assert run.analysed or not run.oracle, run.path
  assert grid.RUNS[0] is grid.ORACLE


def test_commands_spell_the_recorded_workdir_and_overrides():
  run = next(run for run in grid.RUNS if run.path == "mnist/ce")
  runs = pathlib.Path("runs/results")
  assert grid.train_command(run, runs) == [
      "-m", "experiments.train", "--workdir=runs/results/mnist/ce", "--config=configs/mnist_ce.py:cpu"]
  assert grid.analysis_command(run, runs) == [
      "-m", "experiments.metamers", "--workdir=runs/results/mnist/ce",
      "--oracle_workdir=runs/results/oracle/mnist_cnn", "--posthoc", "--num_pairs=1000"]


def test_lanes_choose_their_runs_and_the_oracle():
  chosen = grid.in_lanes(["full"])
  assert chosen[0] is grid.ORACLE
  assert {run.lane for run in chosen[1:]} == {"full"}
  with pytest.raises(ValueError, match="unknown lanes"):
    grid.in_lanes(["nope"])


def test_analyses_wait_for_their_training_and_the_oracle(tmp_path):
  jobs = {job.name: job for job in run_grid.jobs(tmp_path, grid.in_lanes(["full"]))}
  assert jobs["analysis of mnist_full/ce"].after == ("mnist_full/ce", "oracle/mnist_cnn")
  assert jobs["mnist_full/ce"].log == tmp_path / "logs" / "mnist_full_ce.log"
  assert jobs["analysis of mnist_full/ce"].log == tmp_path / "logs" / "mnist_full_ce_analysis.log"


def _job(tmp_path, name, code, after=()):
  return run_grid.Job(name, ("-c", code), tmp_path / "logs" / f"{name}.log", after)


def test_runner_names_a_failed_run_skips_what_needs_it_and_runs_the_rest(tmp_path, capsys):
  jobs = [_job(tmp_path, "good", "print('trained')"), _job(tmp_path, "bad", "import sys; sys.exit(3)"),
          _job(tmp_path, "after_bad", "pass", after=("bad",)), _job(tmp_path, "after_good", "pass", after=("good",))]
  failed = run_grid.run_jobs(jobs, workers=2)
  assert set(failed) == {"bad", "after_bad"}
  assert failed["bad"] == f"exit status 3, see {tmp_path / 'logs' / 'bad.log'}"
  assert (tmp_path / "logs" / "good.log").read_text() == "trained\n"
  output = capsys.readouterr()
  assert "FAILED bad" in output.err and "SKIPPED after_bad: bad failed" in output.err
  assert "[0 done, 1 running, 3 left]" in output.out  # the first start, before any ETA
  assert "done, 0 running, 0 left, 2 failed, ETA 0h00m]" in output.out + output.err  # the last end


def test_runner_exits_non_zero_and_names_the_failed_run(tmp_path):
  script = (
      "import sys; from absl import app; from experiments import run_grid\n"
      "run_grid.jobs = lambda runs, chosen: [run_grid.Job('oracle/mnist_cnn', ('-c', 'raise SystemExit(2)'), "
      "runs / 'x.log')]\n"
      "sys.argv = ['run_grid', '--runs=" + str(tmp_path) + "', 'ce']\n"
      "app.run(run_grid.main)\n")
  finished = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert finished.returncode == 1
  assert "FAILED oracle/mnist_cnn (exit status 2" in finished.stderr
