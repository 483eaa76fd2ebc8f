r"""Memory, compile time and speed of the iCE train step against depth: `python -m experiments.benchmark_depth`.

For each steps-per-level count and each `config.model.backprop` ("autodiff"
stores every flow step's activations, "reversible" rebuilds them with the
inverse), on the MNIST preset at batch 128, prints one table row:

- the train step's compile time (lowering and XLA compilation, no cache);
- its temporary memory, from XLA's `compiled.memory_analysis()` (the buffers
  live during the step besides its arguments and outputs);
- its time per step, the best of `--repeats` calls after a warm-up, unless the
  temporary memory exceeds `--max_run_gib` (then only compiled, not run: this
  machine has 24 GiB).

`--batch_size` and `--repeats` are those of `experiments.benchmark`, whose
timing this shares.
"""

import jax
from absl import app
from absl import flags

from configs import mnist_ice
from experiments import benchmark
from invjax import train

_STEPS = flags.DEFINE_list("steps_per_level", ["4", "16", "64", "128"], "Flow steps per level to measure.")
_BACKPROPS = flags.DEFINE_list("backprop", ["autodiff", "reversible"], "config.model.backprop values.")
_MAX_RUN_GIB = flags.DEFINE_float("max_run_gib", 6.0, "Run a step only if its temporary memory is below this.")


def measure_row(steps_per_level: int, backprop: str) -> dict:
  config = mnist_ice.get_config()
  config.model.steps_per_level = steps_per_level
  config.model.backprop = backprop
  config.batch_size = flags.FLAGS.batch_size
  parts = train.build(config, steps_per_epoch=1)
  images = jax.random.uniform(jax.random.key(0), (flags.FLAGS.batch_size, 32, 32, 3), minval=-1, maxval=1)
  batch = {"image": images, "label": jax.random.randint(jax.random.key(1), (flags.FLAGS.batch_size,), 0, 10)}
  state = jax.jit(parts.create_state)(images, jax.random.key(2))
  step = train.make_train_step(config, parts.model, parts.nuisance_classifier, parts.flow_tx, parts.nuisance_tx)
  timed = benchmark.Timed(f"{steps_per_level} steps, {backprop}", step, state, batch, jax.random.key(3))
  temp_gib = timed.compiled.memory_analysis().temp_size_in_bytes / 2**30
  row = {"compile_s": timed.compile_seconds, "temp_gib": temp_gib, "step_s": None}
  if temp_gib <= _MAX_RUN_GIB.value:
    for _ in range(flags.FLAGS.repeats + 1):
      timed()
    row["step_s"] = timed.best
  return row


def main(argv):
  del argv
  print(f"iCE train step, MNIST preset (3 levels, width 128), batch {flags.FLAGS.batch_size}, "
        f"{jax.devices()[0].device_kind} ({jax.device_count()} device(s))")
  print("| steps per level | backprop | compile (s) | temporary memory (GiB) | step (s) | images/s |")
  print("|---|---|---|---|---|---|")
  for steps in map(int, _STEPS.value):
    for backprop in _BACKPROPS.value:
      row = measure_row(steps, backprop)
      step = "not run" if row["step_s"] is None else f"{row['step_s']:.2f}"
      rate = "-" if row["step_s"] is None else f"{flags.FLAGS.batch_size / row['step_s']:.1f}"
      print(f"| {steps} | {backprop} | {row['compile_s']:.1f} | {row['temp_gib']:.2f} | {step} | {rate} |", flush=True)


if __name__ == "__main__":
  app.run(main)
