"""The run folder: the name of every file a run keeps, and reading its metrics history back.

`experiments.train --workdir=RUN` makes RUN a run folder:

    RUN/config.json            the run's identity, written at its first start (`identity`)
    RUN/config_history.jsonl   the safe config changes of later jobs, with their steps (`identity`)
    RUN/commands.txt           the command line of every job (`experiments.commands`)
    RUN/.lock                  held while a job trains (`workdir_lock`)
    RUN/checkpoints/           orbax checkpoints (`checkpoints`)
    RUN/checksums/<step>.json  each checkpoint's checksums and config (`integrity`)
    RUN/bad_checkpoints/       checkpoints that failed verification, set aside (`integrity`)
    RUN/metrics.jsonl          one JSON object per logged step and per job start (`writers`; read here)
    RUN/tensorboard/           the same scalars for TensorBoard (`writers`)
    RUN/final_metrics.json     the evaluation at the end of training (`writers`)
    RUN/profile/               jax.profiler traces of chosen steps (`profiling`)
    RUN/selection.json         the shift-blind selection's state (`selection.rule`)
    RUN/selected/              the selected checkpoint, a run folder of its own (`selection.job`)
    RUN/analysis/              what the analysis commands write (`experiments.metamers`)

The modules in brackets write those files and take their names from here; a trained run
is opened with `train.load_run(RUN)` (`checkpoints`).
"""

import json
import pathlib

CONFIG_FILE = "config.json"
HISTORY_FILE = "config_history.jsonl"
COMMANDS_FILE = "commands.txt"
LOCK_FILE = ".lock"
CHECKPOINT_DIR = "checkpoints"
CHECKSUM_DIR = "checksums"
BAD_CHECKPOINT_DIR = "bad_checkpoints"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
FINAL_METRICS_FILE = "final_metrics.json"
PROFILE_DIR = "profile"
SELECTION_FILE = "selection.json"
SELECTED_DIR = "selected"
ANALYSIS_DIR = "analysis"

WALL_TIME = "wall_time"  # Unix time of each JSON line of metrics.jsonl.
JOB_START = "job_start"  # the "event" of the line a job writes when it starts.


def read_records(workdir: str | pathlib.Path) -> list[dict]:
  """The JSON lines of a run, in the order written (a torn line is skipped, the record after it kept)."""
  path = pathlib.Path(workdir) / METRICS_FILE
  if not path.exists():
    raise FileNotFoundError(f"{path} does not exist: {workdir} is not a training run folder.")
  records = []
  for line in path.read_text().splitlines():
    # A job killed mid-write leaves a partial line; before the writer ended such a line on opening,
    # the next job's first record followed it on the same line: the last record of a line is read.
    for start in dict.fromkeys((0, max(0, line.rfind('{"step"')))):
      try:
        records.append(json.loads(line[start:]))
        break
      except json.JSONDecodeError:
        continue
  return records


def without_replayed(records: list[dict]) -> list[dict]:
  """The records an uninterrupted run would have written: a job that resumes at
  step s repeats the steps after s, so the earlier records past s are dropped."""
  kept = []
  for record in records:
    if record.get("event") == JOB_START:
      kept = [earlier for earlier in kept if earlier["step"] <= record["step"]]
    kept.append(record)
  return kept


def wall_seconds(records: list[dict]) -> float:
  """Wall time spent by all the jobs of a run: from each job's start to its last record."""
  total, job_start, last = 0.0, None, None
  for record in records:
    if WALL_TIME not in record:
      continue
    if record.get("event") == JOB_START:
      if job_start is not None:
        total += last - job_start
      job_start = record[WALL_TIME]
    last = record[WALL_TIME]
  if job_start is not None:
    total += last - job_start
  return total
