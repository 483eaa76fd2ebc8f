"""One workdir, one job: an exclusive lock on `workdir/.lock` held while a job trains.

Two jobs on one run would interleave checkpoints, metrics and config changes.
The lock is `fcntl.flock` on a file the run keeps: the kernel releases it when
the holding process ends in any way (`kill -9`, a crash, a preempted machine),
so a killed job never leaves a run stuck, and nothing has to be cleaned up.
Taking the lock writes nothing into the file, so a refused job changes nothing. It is
advisory and local: on a shared file system without flock support (or across
hosts) it does not exclude jobs on other machines.
"""

import fcntl
import pathlib

from invjax.train import run_folder


class WorkdirInUse(RuntimeError):
  """Another job holds the workdir (or this job may not write there)."""


class WorkdirLock:
  """`with WorkdirLock(workdir):` holds the workdir for this job or raises WorkdirInUse."""

  def __init__(self, workdir: pathlib.Path):
    self._path = pathlib.Path(workdir) / run_folder.LOCK_FILE
    self._file = None

  def __enter__(self) -> "WorkdirLock":
    try:
      self._path.parent.mkdir(parents=True, exist_ok=True)
      file = open(self._path, "a")
    except OSError as error:  # no permission, a read-only file system (EROFS), a full disk
      raise WorkdirInUse(f"{self._path.parent} cannot be written by this job ({error}); training writes "
                         "checkpoints there: pass a writable --workdir.") from None
    try:
      fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      file.close()
      raise WorkdirInUse(
          f"{self._path.parent} is in use by another training job (it holds a lock on {self._path}); wait for "
          "it to end or stop it, or pass another --workdir.") from None
    self._file = file
    return self

  def __exit__(self, *exc_info) -> None:
    fcntl.flock(self._file, fcntl.LOCK_UN)
    self._file.close()
    self._file = None
