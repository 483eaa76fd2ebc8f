r"""Memory, compile time and speed of the iCE train step against depth: `python -m experiments.benchmark_depth`.

For each steps-per-level count and each `config.model.backprop` ("autodiff"
stores every flow step's activations, "remat" only each step's input and
recomputes the rest, "reversible" rebuilds them with the inverse), on the MNIST
preset at batch 128, prints one table row:

- the train step's compile time (lowering and XLA compilation, no cache);
- its temporary memory, from XLA's `compiled.memory_analysis()` (the buffers
  live during the step besides its arguments and outputs);
- how far the process's resident memory rises above its level before the
  first call during that call (sampled every millisecond): XLA:CPU's memory
  analysis may leave out buffers that live inside a loop body, and a scanned
  step is one, so this is the check on the number above;
- its time per step, the best of `--repeats` calls after that first one,
  unless the temporary memory exceeds `--max_run_gib` (then only compiled, not
  run: this machine has 24 GiB).

Each row runs in a process of its own, so that no row reuses memory an
earlier one freed. `--batch_size`, `--repeats` and `--backprop` (default: all three)
are those of `experiments.benchmark`, whose timing this shares.
"""

import os
import subprocess
import sys
import threading

import jax
from absl import app, flags

from configs import mnist_ice
from experiments import benchmark
from invjax import train
from invjax.blocks.flow_steps import BACKPROPS

_STEPS = flags.DEFINE_list("steps_per_level", ["4", "16", "64", "128"], "Flow steps per level to measure.")
_MAX_RUN_GIB = flags.DEFINE_float("max_run_gib", 6.0, "Run a step only if its temporary memory is below this.")


class ResidentMemoryRise:
  """Context manager: `.gib` is the peak rise of this process's resident memory while it was open."""

  def __enter__(self):
    self._start = self._peak = _resident_bytes()
    self._done = threading.Event()
    self._sampler = threading.Thread(target=self._sample)
    self._sampler.start()
    return self

  def _sample(self):
    while not self._done.wait(0.001):
      self._peak = max(self._peak, _resident_bytes())

  def __exit__(self, *exc_info):
    self._done.set()
    self._sampler.join()
    self.gib = (max(self._peak, _resident_bytes()) - self._start) / 2**30


def _resident_bytes() -> int:
  with open("/proc/self/statm") as statm:
    return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_row(steps_per_level: int, backprop: str) -> dict:
  config = mnist_ice.get_config()
  config.model.steps_per_level = steps_per_level
  config.model.backprop = backprop
  config.batch_size = flags.FLAGS.batch_size
  parts = train.build(config, steps_per_epoch=1)
  images = jax.random.uniform(jax.random.key(0), (flags.FLAGS.batch_size, 32, 32, 3), minval=-1, maxval=1)
  batch = {"image": images, "label": jax.random.randint(jax.random.key(1), (flags.FLAGS.batch_size,), 0, 10)}
  state = jax.block_until_ready(jax.jit(parts.create_state)(images, jax.random.key(2)))  # not under the compile timer
  step = train.make_train_step(config, parts.model, parts.nuisance_classifier, parts.flow_tx, parts.nuisance_tx)
  timed = benchmark.Timed(f"{steps_per_level} steps, {backprop}", step, state, batch, jax.random.key(3))
  temp_gib = timed.compiled.memory_analysis().temp_size_in_bytes / 2**30
  row = {"compile_s": timed.compile_seconds, "temp_gib": temp_gib, "rise_gib": None, "step_s": None}
  if temp_gib <= _MAX_RUN_GIB.value:
    with ResidentMemoryRise() as rise:
      timed()
    timed.best, row["rise_gib"] = float("inf"), rise.gib
    for _ in range(flags.FLAGS.repeats):
      timed()
    row["step_s"] = timed.best
  return row


def print_row(steps: int, backprop: str) -> None:
  row = measure_row(steps, backprop)
  if row["step_s"] is None:
    rise, step, rate = "-", "not run", "-"
  else:
    rise, step = f"{row['rise_gib']:.2f}", f"{row['step_s']:.2f}"
    rate = f"{flags.FLAGS.batch_size / row['step_s']:.1f}"
  print(f"| {steps} | {backprop} | {row['compile_s']:.1f} | {row['temp_gib']:.2f} | {rise} | {step} | {rate} |",
        flush=True)


def main(argv):
  del argv
  backprops = flags.FLAGS.backprop or BACKPROPS
  rows = [(steps, backprop) for steps in map(int, _STEPS.value) for backprop in backprops]
  if len(rows) == 1:
    print_row(*rows[0])
    return
  print(f"iCE train step, MNIST preset (3 levels, width 128), batch {flags.FLAGS.batch_size}, "
        f"{jax.devices()[0].device_kind} ({jax.device_count()} device(s))")
  print("| steps per level | backprop | compile (s) | temporary memory (GiB) | resident rise (GiB) | step (s) "
        "| images/s |")
  print("|---|---|---|---|---|---|---|")
  for steps, backprop in rows:
    command = [sys.executable, "-m", "experiments.benchmark_depth", f"--steps_per_level={steps}",
               f"--backprop={backprop}", f"--batch_size={flags.FLAGS.batch_size}",
               f"--repeats={flags.FLAGS.repeats}", f"--max_run_gib={_MAX_RUN_GIB.value}"]
    child = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    print(child.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
  app.run(main)
