"""Stopping cleanly when the machine is taken away: SIGTERM ends a job at a checkpoint.

Preemptible machines (cloud TPU and GPU VMs, most cluster schedulers) send
SIGTERM and allow some seconds before killing the job. While a
`SigtermWatcher` is active, SIGTERM only sets a flag; the training loop reads
it after each step, saves that step, waits for the save, verifies it and stops
with `Preempted` (and while its train step compiles, in slices of 0.1 s:
`loop.compile_watching`; no step needs saving then). (A job of several processes leaves SIGTERM to JAX's
preemption service instead, which agrees on one step for all: `loop._stop_requested`.) The next job on the
workdir resumes from that step exactly
(data order and noise depend only on (seed, step)), so a preempted run ends
with the same parameters as an uninterrupted one. The handler is installed only
in the main thread (Python allows no other) and the previous one is put back on
exit.
"""

import signal
import threading


class Preempted(Exception):
  """The job stopped on SIGTERM with every step it trained saved and verified."""


class SigtermWatcher:
  """`with SigtermWatcher() as watcher:` ... `if watcher.requested:` stop at the next checkpoint."""

  def __init__(self, enabled: bool = True):
    self.requested = False
    self._enabled = enabled
    self._previous = None

  def _handle(self, signum, frame) -> None:
    self.requested = True

  def __enter__(self) -> "SigtermWatcher":
    if self._enabled and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None
