"""Two processes on localhost train together through jax.distributed and agree."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

TESTS = pathlib.Path(__file__).resolve().parent


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def run_two_workers(worker: str, *arguments, timeout: int = 400) -> list[list[str]]:
  """Runs tests/`worker` PORT PROCESS_ID *arguments as two processes on localhost with one
  CPU device each; returns the stdout lines of each (and fails on a non-zero exit)."""
  port = _free_port()
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1 --xla_backend_optimization_level=0",
         "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
  workers = [
      subprocess.Popen([sys.executable, str(TESTS / worker), str(port), str(i), *map(str, arguments)],
                       cwd=TESTS.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)
  ]
  outputs = []
  for process in workers:
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr[-4000:]
    outputs.append(stdout.splitlines())
  return outputs


@pytest.mark.slow  # 50 s on the 2-core CPU (two processes, each compiling); fast: test_train's sharded step
def test_two_processes_end_with_identical_parameters(tmp_path):
  outputs = [[line for line in lines if line.startswith("FINGERPRINT")]
             for lines in run_two_workers("multihost_worker.py", tmp_path)]
  assert outputs[0] and outputs[0] == outputs[1], outputs
  assert outputs[0][0].split()[1] == "2"  # both saw two processes
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  logged_steps = [record["step"] for record in records if "train/loss" in record]
  assert logged_steps == [2]  # written once, by process 0 alone
