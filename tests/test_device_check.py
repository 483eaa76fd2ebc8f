"""`make device-check` at tiny scale on the CPU: known to work before a device is lent."""

import functools
import json

import pytest

from experiments import benchmark, device_check
from test_train import micro_config


def test_run_configs_keep_the_presets_epochs_at_the_device_batch_size():
  configs = device_check.run_configs("", 1024)
  assert set(configs) == {"mnist_ce", "mnist_ice"}
  for config in configs.values():
    assert (config.batch_size, config.eval_batch_size) == (1024, 1024)
    assert config.total_steps == 200 * (60_000 // 128) * 128 // 1024  # the preset's 200 epochs (SPEC 5)
    assert (config.model.steps_per_level, config.model.width) == (16, 128)  # the paper's model
  assert configs["mnist_ice"].loss.nuisance_weight > 0 and configs["mnist_ce"].loss.nuisance_weight == 0


@pytest.mark.slow  # 170 s on the 2-core CPU: three benchmark rows and two runs, each compiled, with metamers
def test_device_check_benchmarks_trains_until_the_deadline_and_writes_rows_and_figures(tmp_path):
  configs = {"mnist_ce": micro_config(**{"total_steps": 10_000, "loss.nuisance_weight": 0.0, "loss.mle_weight": 0.0}),
             "mnist_ice": micro_config(total_steps=10_000)}
  run_benchmark = functools.partial(benchmark.run, micro_config(), 16, ("float32",), (), (), 1)
  out = tmp_path / "device"
  rows = device_check.device_check(configs, 0.01, out, tmp_path / "runs", run_benchmark)
  written = json.loads((out / "benchmark.json").read_text())
  assert written["backend"] == "cpu" and written["convolutions"] == "matmul"
  assert [row["name"] for row in written["rows"]] == ["forward", "forward + inverse", "iCE train step"]
  for name in configs:
    row = json.loads((out / f"{name}.json").read_text())
    assert row == rows[name]
    assert 1 <= row["steps"] == row["steps_this_job"] < 10_000  # ended by the deadline, not total_steps
    assert 0 <= row["final_metrics"]["test/logit_error"] <= 100
    assert row["metamer_logit_preservation"]["max_abs"] < 1e-3
    assert (out / f"{name}_metamers.png").stat().st_size > 0
