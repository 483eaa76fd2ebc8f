r"""Trains and analyses every run of docs/results.md (`experiments.grid`), then writes results/*.json.

    python -m experiments.run_grid --runs=runs/results             # every lane, then the results (`make results`)
    python -m experiments.run_grid --runs=runs/results full textured  # only those lanes, no collection

Two jobs run at a time (one per core of the 2-core CPU the numbers were taken on), taken in grid
order as they become ready: a run's analysis after its training, analyses with the oracle after the
oracle's training. Every command resumes: run this again after an interruption and each run
continues from its last checkpoint; finished runs are only re-evaluated. Logs go to
RUNS/logs/<group>_<name>.log (and <group>_<name>_analysis.log). Progress across the jobs (done,
running, left, an ETA from the mean time of the jobs done) is printed as they start and end. A
failed job is named with its log, the jobs that need it are skipped, and the exit status is 1.

Without lanes, the spheres figure (RUNS/spheres) and the collection into results/ and docs/figures/
follow once every job has succeeded.
"""

import dataclasses
import pathlib
import subprocess
import sys
import threading
import time

from absl import app, flags

from experiments import grid

_RUNS = flags.DEFINE_string("runs", "runs/results", "Folder the runs are trained in, one subfolder per group.")
_WORKERS = flags.DEFINE_integer("workers", 2, "Jobs run at a time.")


@dataclasses.dataclass(frozen=True)
class Job:
  """One command of the grid: `python <arguments>`, its output appended to `log`, started once every
  job named in `after` has succeeded."""
  name: str
  arguments: tuple[str, ...]
  log: pathlib.Path
  after: tuple[str, ...] = ()


def jobs(runs: pathlib.Path, chosen: list[grid.Run]) -> list[Job]:
  """The training and analysis jobs of the `chosen` runs under `runs`."""
  made = []
  for run in chosen:
    log = runs / "logs" / run.path.replace("/", "_")
    made.append(Job(run.path, tuple(grid.train_command(run, runs)), log.with_name(log.name + ".log")))
    if run.analysed:
      made.append(Job(f"analysis of {run.path}", tuple(grid.analysis_command(run, runs)),
                      log.with_name(log.name + "_analysis.log"),
                      (run.path, grid.ORACLE.path) if run.oracle else (run.path,)))
  return made


def _say(message: str, error: bool = False) -> None:
  print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr if error else sys.stdout, flush=True)


def _duration(seconds: float) -> str:
  minutes = round(seconds / 60)
  return f"{minutes // 60}h{minutes % 60:02d}m"


class _Progress:
  """Which jobs are done, running, failed and left, and the ETA of the rest."""

  def __init__(self, jobs: list[Job], workers: int):
    names = {job.name for job in jobs}
    if unknown := sorted({name for job in jobs for name in job.after} - names):
      raise ValueError(f"jobs wait for jobs that are not there: {unknown}")
    self.left, self.workers = list(jobs), workers
    self.running, self.done, self.failed = set(), set(), {}
    self.seconds_done = 0.0

  def line(self) -> str:
    eta = ""
    if self.done:
      mean = self.seconds_done / len(self.done)
      eta = f", ETA {_duration(mean * (len(self.left) + len(self.running)) / self.workers)}"
    failed = f", {len(self.failed)} failed" if self.failed else ""
    return f"[{len(self.done)} done, {len(self.running)} running, {len(self.left)} left{failed}{eta}]"

  def next_ready(self) -> Job | None:
    """The first job left whose jobs before it have all succeeded; a job after a failed one is
    recorded as failed (skipped) and passed over."""
    for job in list(self.left):
      if blocked := [name for name in job.after if name in self.failed]:
        self.left.remove(job)
        self.failed[job.name] = f"skipped: {blocked[0]} failed"
        _say(f"SKIPPED {job.name}: {blocked[0]} failed {self.line()}", error=True)
      elif all(name in self.done for name in job.after):
        self.left.remove(job)
        self.running.add(job.name)
        return job
    return None


def run_jobs(jobs: list[Job], workers: int = 2, python: str = sys.executable) -> dict[str, str]:
  """Runs `jobs` on `workers` threads, each a subprocess at a time; returns {name: why} of the failed
  (and skipped) jobs, empty if all succeeded."""
  progress = _Progress(jobs, workers)
  changed = threading.Condition()

  def worker():
    while True:
      with changed:
        while (job := progress.next_ready()) is None and progress.left:
          changed.wait()
        if job is None:
          changed.notify_all()
          return
        _say(f"start {job.name} (log: {job.log}) {progress.line()}")
      start = time.monotonic()
      job.log.parent.mkdir(parents=True, exist_ok=True)
      with open(job.log, "a") as log:
        status = subprocess.run([python, *job.arguments], stdout=log, stderr=subprocess.STDOUT).returncode
      with changed:
        progress.running.discard(job.name)
        if status == 0:
          progress.done.add(job.name)
          progress.seconds_done += time.monotonic() - start
          _say(f"done  {job.name} {progress.line()}")
        else:
          progress.failed[job.name] = f"exit status {status}, see {job.log}"
          _say(f"FAILED {job.name}: see {job.log} {progress.line()}", error=True)
        changed.notify_all()

  threads = [threading.Thread(target=worker) for _ in range(workers)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  return progress.failed


def _collect(runs: pathlib.Path) -> bool:
  """The spheres figure, then the published results/*.json and docs/figures/ of the finished grid;
  False (and the failed step named) if either fails."""
  spheres_log = runs / "logs" / "spheres.log"
  with open(spheres_log, "w") as log:
    status = subprocess.run([sys.executable, "-m", "experiments.spheres", f"--out={runs / 'spheres'}"], stdout=log,
                            stderr=subprocess.STDOUT).returncode
  if status:
    _say(f"FAILED the spheres figure: see {spheres_log}", error=True)
    return False
  _say(f"spheres figure in {runs / 'spheres'}")
  return subprocess.run([sys.executable, "-m", "experiments.results", f"--runs={runs}", "--out=results",
                         "--figures=docs/figures"]).returncode == 0


def main(argv):
  lanes = argv[1:]
  try:
    chosen = grid.in_lanes(lanes or list(grid.LANES))
  except ValueError as error:
    raise app.UsageError(str(error)) from None
  runs = pathlib.Path(_RUNS.value)
  failed = run_jobs(jobs(runs, chosen), _WORKERS.value)
  if failed:
    for name, why in failed.items():
      print(f"FAILED {name} ({why})", file=sys.stderr)
    sys.exit(1)
  if not lanes and not _collect(runs):
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
