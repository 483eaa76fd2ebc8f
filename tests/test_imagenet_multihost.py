"""Two processes on localhost train the ImageNet tiny job through jax.distributed,
each reading its own half of the generated tiny ImageNet, and agree."""

import os
import pathlib
import socket
import subprocess
import sys

import pytest

from imagenet_testing import tiny_imagenet_dirs  # noqa: F401  (a fixture)

TESTS = pathlib.Path(__file__).resolve().parent


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow  # about 2.5 min of CPU time; 5 min on the loaded 2-core machine
def test_two_processes_train_the_tiny_job_to_identical_parameters(tiny_imagenet_dirs, tmp_path):
  port = _free_port()
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
         "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
  workers = [
      subprocess.Popen([sys.executable, str(TESTS / "imagenet_multihost_worker.py"), str(port), str(i),
                        str(tmp_path), str(tiny_imagenet_dirs[1])],
                       cwd=TESTS.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)
  ]
  outputs = []
  for worker in workers:
    stdout, stderr = worker.communicate(timeout=600)
    assert worker.returncode == 0, stderr[-4000:]
    outputs.append(stdout.splitlines())
  fingerprints = [[line for line in output if line.startswith("FINGERPRINT")] for output in outputs]
  assert fingerprints[0] and fingerprints[0] == fingerprints[1], fingerprints
  assert fingerprints[0][0].split()[1] == "2"  # both saw two processes
  shards = [[line for line in output if line.startswith("SHARD")] for output in outputs]
  assert shards == [["SHARD (0, 30)"], ["SHARD (30, 60)"]]  # each read its own half
  assert (tmp_path / "final_metrics.json").is_file()
