"""A profile of a window of training steps: `config.profile_steps`.

`--config.profile_steps=10,20` records steps 10 to 20 (both included) with
`jax.profiler` into `<workdir>/profile/`: `plugins/profile/<time>/<host>.xplane.pb`,
which TensorBoard's profile plugin (XProf) opens (`tensorboard --logdir
<workdir>/profile`), and `<host>.trace.json.gz` beside it, which
https://ui.perfetto.dev opens. Each step is a `jax.profiler.StepTraceAnnotation`
("train", step_num), so the tools split the trace step by step. The window is
counted in global steps: a job resumed after step 20 records nothing. Starting
the window after the first step keeps compilation out of it.
"""

import numbers
import pathlib

import jax

from invjax.train import run_folder


def _step(part) -> int | None:
  if isinstance(part, str) and part.strip().isdigit():
    return int(part)
  return int(part) if isinstance(part, numbers.Integral) and not isinstance(part, bool) else None


def window(value) -> tuple[int, int] | None:
  """(first, last) step of `config.profile_steps` ("" or empty: None); ValueError unless it is two
  steps 1 <= first <= last, as "first,last" or a pair of integers."""
  if isinstance(value, (str, tuple, list)) and not value:
    return None
  parts = value.split(",") if isinstance(value, str) else value
  steps = [_step(part) for part in parts] if isinstance(parts, (list, tuple)) else []
  if len(steps) != 2 or None in steps or not 1 <= steps[0] <= steps[1]:
    raise ValueError(f"config.profile_steps={value!r} must be two steps 'first,last' with 1 <= first <= last "
                     "(e.g. '10,20'), or '' for no profile.")
  return steps[0], steps[1]


class StepProfiler:
  """Starts `jax.profiler`'s trace before the window's first step and stops it once its last has run."""

  def __init__(self, profile_steps, workdir: pathlib.Path):
    self._window = window(profile_steps)
    self._directory = workdir / run_folder.PROFILE_DIR
    self._tracing = False

  def before(self, step: int) -> None:
    if self._window and not self._tracing and self._window[0] <= step <= self._window[1]:
      self._directory.mkdir(parents=True, exist_ok=True)
      jax.profiler.start_trace(str(self._directory), create_perfetto_trace=True)
      self._tracing = True

  def after(self, step: int, outputs) -> None:
    """Stops after the window's last step, once `outputs` (that step's) are computed."""
    if self._tracing and step >= self._window[1]:
      jax.block_until_ready(outputs)
      self.stop()

  def stop(self) -> None:
    if self._tracing:
      self._tracing = False
      jax.profiler.stop_trace()
