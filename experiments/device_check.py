r"""One prepared command for a lent GPU or TPU: `make device-check` (`python -m experiments.device_check`).

    python -m experiments.device_check [--minutes=8] [--train_batch_size=0] [--out=results/device]
                                       [--workdir=runs/device]

On whatever accelerator JAX finds (or the CPU):

1. prints the backend, the devices and the convolution formulation they get
   (`invjax.blocks.conv`: native convolutions on GPUs and TPUs);
2. runs `make benchmark` there (`experiments.benchmark`, with its flags: by
   default batch 128, float32 and bfloat16 operands, each backprop), into
   OUT/benchmark.json;
3. trains the paper's MNIST fi-RevNet (3 levels x 16 steps, width 128) with CE
   (configs/mnist_ce.py) and with iCE (configs/mnist_ice.py) for as many steps
   as fit in --minutes, half each (compilation and the final evaluation on the
   whole test split included), at --train_batch_size (default 1024 on an accelerator,
   128 on a CPU) in WORKDIR/mnist_ce and WORKDIR/mnist_ice; running the command
   again resumes both runs for another --minutes;
4. writes OUT/mnist_ce.json and OUT/mnist_ice.json (steps, epochs, images/s,
   test errors, bits/dim, the metamers' logit preservation) and each run's
   metamer figure OUT/<run>_metamers.png (logit source, metamer, nuisance
   source for test pairs of different classes).

--variant=tiny trains the configs' `:tiny` models instead: a try on a CPU.
"""

import functools
import json
import pathlib
import time
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from absl import flags, logging

from configs import mnist_ce, mnist_ice
from experiments import benchmark, commands
from invjax import data, metamers, parallel, plotting, train
from invjax.analysis import features, oracle
from invjax.blocks import conv
from invjax.train import checkpoints, writers

RUNS = {"mnist_ce": mnist_ce, "mnist_ice": mnist_ice}  # the paper's MNIST model with CE and with iCE
ACCELERATOR_TRAIN_BATCH_SIZE = 1024
CPU_TRAIN_BATCH_SIZE = 128
FIGURE_PAIRS = 18
FIGURE_EXAMPLES = 1000  # test examples the figure's pairs are drawn from

_MINUTES = flags.DEFINE_float("minutes", 8.0, "Training time of the two runs together, in minutes.")
_TRAIN_BATCH_SIZE = flags.DEFINE_integer(
    "train_batch_size", 0,
    f"Training batch size (0: {ACCELERATOR_TRAIN_BATCH_SIZE} on an accelerator, {CPU_TRAIN_BATCH_SIZE} on a CPU).")
_OUT = flags.DEFINE_string("out", "results/device", "Folder of the JSON rows and the metamer figures.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/device", "Folder of the two training runs.")
_VARIANT = flags.DEFINE_enum("variant", "", ["", "tiny"], "Config variant: '' (the paper's model) or 'tiny'.")


def describe_devices() -> dict:
  """The backend, the devices and the convolution formulation the programs get on them."""
  backend = jax.default_backend()
  return {"backend": backend, "device_kind": jax.devices()[0].device_kind, "devices": jax.device_count(),
          "hardware": writers.hardware(), "convolutions": conv.formulation_for(backend)}


def run_configs(variant: str, batch_size: int) -> dict[str, ml_collections.ConfigDict]:
  """The CE and iCE configs at `batch_size` (also their evaluation's), for as many training images as
  the preset's steps: the deadline, not total_steps, ends a device check."""
  configs = {}
  for name, module in RUNS.items():
    config = module.get_config(variant or None)
    config.total_steps = config.total_steps * config.batch_size // batch_size
    config.batch_size = config.eval_batch_size = batch_size
    configs[name] = config
  return configs


def _write_json(path: pathlib.Path, value) -> None:
  path.write_text(json.dumps(value, indent=2) + "\n")


def _saved_step(workdir: pathlib.Path) -> int:
  """The step a run resumes from (0 for a new run)."""
  reader = checkpoints.reader(workdir)
  try:
    return reader.latest_step() or 0
  finally:
    reader.close()


def _metamer_figure(workdir: pathlib.Path, title: str) -> tuple[object, dict]:
  """The run's metamers of FIGURE_PAIRS test pairs of different classes, and their logit preservation."""
  run = train.load_run(workdir)
  images, labels = data.as_numpy(run.config.dataset, "test", max_examples=FIGURE_EXAMPLES,
                                 **run.config.dataset_options)
  a, b = oracle.pairs_of_different_classes(labels, FIGURE_PAIRS, np.random.default_rng(0))
  x_met = np.asarray(metamers.metameric_sample(run.model, run.variables, images[a], images[b],
                                               mesh=parallel.make_data_mesh()))
  logits = jax.jit(features.logits_function(run.model))
  metamer_logits = np.asarray(logits(run.variables, x_met))
  captions = [(f"label {ya}", f"model {c}", f"label {yb}")
              for ya, c, yb in zip(labels[a], metamer_logits.argmax(-1), labels[b], strict=True)]
  figure = plotting.metamer_figure(images[a], x_met, images[b], captions=captions, title=title)
  preservation = oracle.logit_preservation(metamer_logits, logits(run.variables, images[a]))
  return figure, {name: float(value) for name, value in preservation.items()}


def device_check(configs: dict[str, ml_collections.ConfigDict], minutes: float, out: pathlib.Path,
                 workdir: pathlib.Path, run_benchmark: Callable[[], list[dict]]) -> dict[str, dict]:
  """Benchmark, then each run trained until its share of `minutes` (the later runs get what the
  earlier ones left), its metamers drawn; writes OUT/benchmark.json, OUT/<run>.json and
  OUT/<run>_metamers.png. Returns the rows written, by file stem."""
  devices = describe_devices()
  print(f"Backend {devices['backend']}: {devices['hardware']}; convolutions: {devices['convolutions']}", flush=True)
  out.mkdir(parents=True, exist_ok=True)
  command = commands.command_line("experiments.device_check")
  rows = {"benchmark": {**devices, "command": command, "rows": run_benchmark()}}
  _write_json(out / "benchmark.json", rows["benchmark"])
  end = time.time() + 60 * minutes
  for index, (name, config) in enumerate(configs.items()):
    start, start_step = time.time(), _saved_step(workdir / name)
    deadline = start + (end - start) / (len(configs) - index)
    print(f"Training {name} (batch {config.batch_size}) until {time.strftime('%H:%M:%S', time.localtime(deadline))} "
          f"in {workdir / name} ...", flush=True)
    final = train.train_and_evaluate(config, workdir / name, deadline=deadline)
    seconds = time.time() - start
    figure, preservation = _metamer_figure(workdir / name, f"{name} on {devices['device_kind']} (step {final['step']})")
    figure.savefig(out / f"{name}_metamers.png", dpi=100)
    rows[name] = {
        **devices, "command": command, "config": f"configs/{name}.py", "batch_size": config.batch_size,
        "steps": final["step"], "epochs": final["epochs"], "steps_this_job": final["step"] - start_step,
        "minutes_this_job": seconds / 60,
        # Compilation and evaluation included: a floor of the training rate.
        "images_per_second_overall": (final["step"] - start_step) * config.batch_size / seconds,
        "final_metrics": final, "metamer_logit_preservation": preservation,
    }
    _write_json(out / f"{name}.json", rows[name])
    print(f"{name}: step {final['step']} ({final['epochs']:.2f} epochs), {seconds / 60:.1f} minutes, test logit "
          f"error {final['test/logit_error']:.2f}%; wrote {out / name}.json and {out / name}_metamers.png", flush=True)
  return rows


def main(argv):
  commands.check_no_arguments(argv)
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(commands.ProjectLinesOnly())
  with commands.one_line_errors():
    if _MINUTES.value <= 0:
      raise ValueError(f"--minutes={_MINUTES.value} must be > 0.")
    if _TRAIN_BATCH_SIZE.value < 0:
      raise ValueError(f"--train_batch_size={_TRAIN_BATCH_SIZE.value} must be >= 1 (0: the device's default).")
    if pathlib.Path(_OUT.value).is_file():
      raise ValueError(f"--out={_OUT.value} is a file: pass a folder (it is created if missing).")
    batch_size = _TRAIN_BATCH_SIZE.value or (
        CPU_TRAIN_BATCH_SIZE if jax.default_backend() == "cpu" else ACCELERATOR_TRAIN_BATCH_SIZE)
    configs = run_configs(_VARIANT.value, batch_size)
    for config in configs.values():
      train.validate(config, jax.device_count())
    benchmark_config = mnist_ice.get_config(_VARIANT.value or None)
    device_check(configs, _MINUTES.value, pathlib.Path(_OUT.value), pathlib.Path(_WORKDIR.value),
                 functools.partial(benchmark.run_with_flags, benchmark_config))


if __name__ == "__main__":
  commands.run(main)
