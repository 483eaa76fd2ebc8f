"""The training loop's hooks for running on accelerators: a profile of chosen steps, a wall-clock
deadline, and checkpoints read without being written."""

import gzip
import json
import time

import pytest

from invjax import train
from invjax.train import checkpoints, run_folder
from test_train import micro_config


@pytest.mark.slow  # the profiler's stop and trace conversion alone took about 100 s on the 2-core CPU
def test_profile_steps_write_a_trace_of_those_steps(tmp_path):
  train.train_and_evaluate(micro_config(total_steps=3, profile_steps="2,3"), tmp_path)
  profile = tmp_path / run_folder.PROFILE_DIR
  assert list(profile.rglob("*.xplane.pb"))  # TensorBoard's profile plugin (XProf)
  (perfetto,) = profile.rglob("*.trace.json.gz")  # ui.perfetto.dev
  events = json.loads(gzip.decompress(perfetto.read_bytes()))["traceEvents"]
  steps = {int(event["args"]["step_num"]) for event in events
           if event.get("name") == "train" and "step_num" in event.get("args", {})}
  assert steps == {2, 3}


@pytest.mark.slow
def test_no_profile_by_default(tmp_path):
  train.train_and_evaluate(micro_config(total_steps=1), tmp_path)
  assert not (tmp_path / run_folder.PROFILE_DIR).exists()


@pytest.mark.slow
def test_a_deadline_ends_the_job_saved_and_evaluated_and_the_run_resumes(tmp_path):
  final = train.train_and_evaluate(micro_config(total_steps=1000), tmp_path, deadline=time.time())
  assert final["step"] == 1 and "test/logit_error" in final
  assert checkpoints.reader(tmp_path).latest_step() == 1
  assert train.train_and_evaluate(micro_config(total_steps=2), tmp_path)["step"] == 2


def test_a_run_is_read_without_creating_anything(tmp_path):
  """Analysis opens checkpoints read only (orbax's read_only): a missing run stays missing."""
  assert checkpoints.reader(tmp_path / "missing").latest_step() is None
  assert not (tmp_path / "missing").exists()
  with pytest.raises(FileNotFoundError, match="does not exist"):
    train.load_run(tmp_path / "missing")
