"""Where a run's numbers go: TensorBoard event files, a JSON-lines file, a progress line
(`run_folder` names the files and reads the JSON lines back)."""

import json
import os
import pathlib
import time

import jax
import tensorflow as tf

from invjax.train import run_folder


def _has_torn_last_line(path: pathlib.Path) -> bool:
  """Whether the file's last line lacks its newline (a job was killed while writing it)."""
  with open(path, "rb") as file:
    if file.seek(0, os.SEEK_END) == 0:
      return False
    file.seek(-1, os.SEEK_END)
    return file.read(1) != b"\n"


class MetricWriter:
  """Scalars to `workdir/metrics.jsonl` (one JSON object per write) and TensorBoard.

  In a multi-host job every process computes the same numbers; only the one
  made with `enabled=True` (process 0) writes them.
  """

  def __init__(self, workdir: str | pathlib.Path, enabled: bool = True):
    self._workdir = pathlib.Path(workdir)
    self._enabled = enabled
    if enabled:
      self._workdir.mkdir(parents=True, exist_ok=True)
      self._jsonl = open(self._workdir / run_folder.METRICS_FILE, "a")
      if _has_torn_last_line(self._workdir / run_folder.METRICS_FILE):
        self._jsonl.write("\n")  # a job killed mid-write: its partial line stays alone, skipped on reading
      self._summary = tf.summary.create_file_writer(str(self._workdir / run_folder.TENSORBOARD_DIR))

  def mark_start(self, step: int, hardware: str) -> None:
    """Records that a job (a first start or a resume) begins at `step` on `hardware` (JSON lines only)."""
    self._write_record({"step": step, "event": run_folder.JOB_START, "hardware": hardware})

  def write(self, step: int, scalars: dict[str, float]) -> None:
    if not self._enabled:
      return
    self._write_record({"step": step, **scalars})
    with self._summary.as_default(step=step):
      for name, value in scalars.items():
        tf.summary.scalar(name, value)
    self._summary.flush()

  def _write_record(self, record: dict) -> None:
    if not self._enabled:
      return
    self._jsonl.write(json.dumps({**record, run_folder.WALL_TIME: time.time()}) + "\n")
    self._jsonl.flush()

  def write_final(self, metrics: dict) -> None:
    if not self._enabled:
      return
    (self._workdir / run_folder.FINAL_METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True))

  def close(self) -> None:
    if not self._enabled:
      return
    self._jsonl.close()
    self._summary.close()


class Progress:
  """Steps per second since the job started, and the time left."""

  def __init__(self, start_step: int, total_steps: int):
    self._start_step, self._total_steps = start_step, total_steps
    self._start_time = time.monotonic()

  def rates(self, step: int) -> dict[str, float]:
    elapsed = time.monotonic() - self._start_time
    steps_per_second = (step - self._start_step) / max(elapsed, 1e-9)
    return {"progress/steps_per_second": steps_per_second,
            "progress/eta_seconds": (self._total_steps - step) / max(steps_per_second, 1e-9)}

  def line(self, step: int, scalars: dict[str, float]) -> str:
    rates = self.rates(step)
    eta = int(rates["progress/eta_seconds"])
    shown = " ".join(f"{name.split('/')[-1]}={value:.4g}" for name, value in scalars.items())
    return (f"step {step}/{self._total_steps} ({100 * step / self._total_steps:.0f}%) {shown} "
            f"| {rates['progress/steps_per_second']:.2f} steps/s, ETA {eta // 60}m{eta % 60:02d}s")


def hardware() -> str:
  """What this job runs on, e.g. "1 x cpu (2 host CPUs, 1 process)"."""
  devices = jax.devices()
  processes = jax.process_count()
  return (f"{len(devices)} x {devices[0].device_kind} ({os.cpu_count()} host CPUs, "
          f"{processes} process{'es' if processes > 1 else ''})")
