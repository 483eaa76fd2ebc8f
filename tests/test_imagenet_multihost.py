"""Two processes on localhost train the ImageNet tiny job through jax.distributed,
each reading its own half of the generated tiny ImageNet, and agree."""

import pytest

from test_multihost import run_two_workers


@pytest.mark.slow  # about 2.5 min of CPU time; 5 min on the loaded 2-core machine
def test_two_processes_train_the_tiny_job_to_identical_parameters(tiny_imagenet_dirs, tmp_path):
  outputs = run_two_workers("imagenet_multihost_worker.py", tmp_path, tiny_imagenet_dirs[1], timeout=600)
  fingerprints = [[line for line in lines if line.startswith("FINGERPRINT")] for lines in outputs]
  assert fingerprints[0] and fingerprints[0] == fingerprints[1], fingerprints
  assert fingerprints[0][0].split()[1] == "2"  # both saw two processes
  shards = [[line for line in lines if line.startswith("SHARD")] for lines in outputs]
  assert shards == [["SHARD (0, 30)"], ["SHARD (30, 60)"]]  # each read its own half
  assert (tmp_path / "final_metrics.json").is_file()
