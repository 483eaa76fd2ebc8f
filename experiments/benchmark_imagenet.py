r"""Measures the ImageNet job on this machine: one fiRevNet48 train step and the input pipeline.

    python -m experiments.benchmark_imagenet --what=step --batch_size=2
    python -m experiments.benchmark_imagenet --what=memory --batch_size=1   # then 4
    python -m experiments.benchmark_imagenet --what=pipeline

`step`: the train step of configs/imagenet_ice.py (or --config) at 224x224
and a small batch: its compile time, its wall and process CPU time (on a
shared machine the CPU time is the steadier number), the parameter count,
the state's size, FLOPs per image and the compiled temporary memory at two
batch sizes (per example: their difference). FLOPs come two ways:
`forward_gflops_per_image` and `train_step_gflops_per_image` count the
program's matrix products and convolutions, scan bodies times their length
(`invjax.flops.product_flops`); the `_per_scan_body` numbers are XLA's cost
analysis, which counts a loop body once (the flow steps of a level run as one
`lax.scan`). For the scanned reversible step at 224x224 the CPU compiler
reported almost no temporary memory (3 KB), which cannot be all it uses: use
`memory`. A device needs about state + batch x memory per example
(docs/imagenet.md). Parameter values do not change the cost, so the state is
zeros of the right shapes (no ActNorm initialisation pass to compile).

`memory`: the peak resident memory the first run of the compiled train step
adds to the process (sampled every 5 ms; freed memory is reused by later
runs, so only the first tells), at --batch_size. Run it at two batch sizes,
each in a process of its own: the difference per example is what the
activations cost, measured rather than taken from the compiler.

`pipeline`: writes a tiny ImageNet in the manual layout with pictures of
ImageNet's typical size (300-500 pixels a side), prepares it with TFDS and
reads training batches (decode, Inception crop, resize to 224, flip, batch)
as one host of the pod does; prints images/s.

Results go to stdout as JSON lines (and --out, if given).
"""

import json
import tempfile
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from invjax import data, train
from invjax.data import imagenet, pipeline, tiny_imagenet
from invjax.flops import product_flops
from invjax.train import step as step_lib

_CONFIG = config_flags.DEFINE_config_file("config", "configs/imagenet_ice.py", "Training configuration file.")
_WHAT = flags.DEFINE_enum("what", "step", ["step", "memory", "pipeline"], "What to measure.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 2, "Batch of the measured train step (and batch_size - 1).")
_STEPS = flags.DEFINE_integer("steps", 2, "Timed train steps after the first.")
_PIPELINE_BATCHES = flags.DEFINE_integer("pipeline_batches", 20, "Timed pipeline batches of 64.")
_OUT = flags.DEFINE_string("out", None, "Also append the JSON lines to this file.")

GIB = 2**30


def _report(record: dict) -> None:
  line = json.dumps(record)
  print(line, flush=True)
  if _OUT.value:
    with open(_OUT.value, "a") as file:
      file.write(line + "\n")


def _compiled(function, *arguments):
  start = time.perf_counter()
  compiled = jax.jit(function).lower(*arguments).compile()
  return compiled, time.perf_counter() - start


def _flops(compiled) -> float:
  analysis = compiled.cost_analysis()
  return float((analysis[0] if isinstance(analysis, list) else analysis)["flops"])


def _resident_bytes() -> int:
  with open("/proc/self/status") as status:
    return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def _step_and_batches(config):
  """The train step, its parts and `batch_of(size, abstract)`: a batch of random images."""
  image_size = config.dataset_options.image_size
  parts = train.build(config, steps_per_epoch=1251)
  step = step_lib.make_train_step(config, parts.model, parts.nuisance_classifier, parts.flow_tx, parts.nuisance_tx)
  key = jax.random.key(0)

  def batch_of(size, abstract):
    shapes = {"image": ((size, image_size, image_size, 3), jnp.float32), "label": ((size,), jnp.int32),
              "mask": ((size,), jnp.bool_)}
    if abstract:
      return {name: jax.ShapeDtypeStruct(*spec) for name, spec in shapes.items()}
    return {"image": jax.random.uniform(key, shapes["image"][0], minval=-1, maxval=1),
            "label": jnp.arange(size, dtype=jnp.int32) % config.num_classes, "mask": jnp.ones(size, bool)}

  return parts, step, batch_of, key


def measure_memory(config) -> None:
  parts, step, batch_of, key = _step_and_batches(config)
  size = _BATCH_SIZE.value
  abstract_state = jax.eval_shape(parts.create_state, batch_of(size, True)["image"], key)
  compiled, _ = _compiled(step, abstract_state, batch_of(size, True), key)
  state = jax.tree.map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype), abstract_state)
  batch = jax.block_until_ready(batch_of(size, False))
  base = peak = _resident_bytes()
  running = True

  def sample():
    nonlocal peak
    while running:
      peak = max(peak, _resident_bytes())
      time.sleep(0.005)

  sampler = threading.Thread(target=sample)
  sampler.start()
  jax.block_until_ready(compiled(state, batch, key))
  running = False
  sampler.join()
  _report({"measured": "fiRevNet48 train step, first run's resident memory", "config": config.model.to_dict(),
           "image_size": config.dataset_options.image_size, "batch_size": size,
           "peak_resident_increase_gib": (peak - base) / GIB})


def measure_step(config) -> None:
  parts, step, batch_of, key = _step_and_batches(config)
  image_size = config.dataset_options.image_size
  size = _BATCH_SIZE.value
  abstract_state = jax.eval_shape(parts.create_state, batch_of(size, True)["image"], key)
  model_params = sum(leaf.size for leaf in jax.tree.leaves(abstract_state.flow["model"]))
  nuisance_params = sum(leaf.size for leaf in jax.tree.leaves(abstract_state.nuisance))
  forward = lambda params, images: parts.model.apply({"params": params}, images)
  compiled_forward, _ = _compiled(forward, abstract_state.flow["model"], batch_of(size, True)["image"])
  forward_products = product_flops(
      jax.make_jaxpr(forward)(abstract_state.flow["model"], batch_of(size, True)["image"]).jaxpr)
  step_products = product_flops(jax.make_jaxpr(step)(abstract_state, batch_of(size, True), key).jaxpr)
  smaller, smaller_seconds = _compiled(step, abstract_state, batch_of(size - 1, True), key)
  compiled, compile_seconds = _compiled(step, abstract_state, batch_of(size, True), key)
  temp, temp_smaller = (c.memory_analysis().temp_size_in_bytes for c in (compiled, smaller))
  per_example = (temp - temp_smaller)
  state_bytes = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(abstract_state))

  state = jax.tree.map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype), abstract_state)
  batch = batch_of(size, False)
  state, metrics = compiled(state, batch, key)
  jax.block_until_ready(metrics)
  times, cpu_times = [], []
  for _ in range(_STEPS.value):
    start, cpu_start = time.perf_counter(), time.process_time()
    state, metrics = compiled(state, batch, key)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
    cpu_times.append(time.process_time() - cpu_start)
  _report({
      "measured": "fiRevNet48 train step", "config": config.model.to_dict(), "image_size": image_size,
      "loss": {"nuisance_weight": config.loss.nuisance_weight, "mle_weight": config.loss.mle_weight},
      "batch_size": size, "device": str(jax.devices()[0]), "compile_seconds": round(compile_seconds, 1),
      "compile_seconds_batch_minus_1": round(smaller_seconds, 1),
      "step_seconds": [round(t, 2) for t in times], "step_cpu_seconds": [round(t, 2) for t in cpu_times],
      "images_per_second": size / float(np.median(times)),
      "model_parameters": int(model_params), "nuisance_classifier_parameters": int(nuisance_params),
      "forward_gflops_per_image": forward_products / size / 1e9,
      "train_step_gflops_per_image": step_products / size / 1e9,
      "forward_gflops_per_image_per_scan_body": _flops(compiled_forward) / size / 1e9,
      "train_step_gflops_per_image_per_scan_body": _flops(compiled) / size / 1e9,
      "temp_gib": temp / GIB, "temp_gib_batch_minus_1": temp_smaller / GIB,
      "temp_gib_per_example": per_example / GIB, "state_gib": state_bytes / GIB,
      "finite_loss": bool(np.isfinite(metrics["loss"])),
  })


def measure_pipeline(image_size: int) -> None:
  with tempfile.TemporaryDirectory() as directory:
    start = time.perf_counter()
    tiny = tiny_imagenet.write(f"{directory}/manual", num_validation=50, train_per_class=30, image_sizes=(300, 500))
    imagenet.prepare(f"{directory}/tfds", f"{directory}/manual")
    prepare_seconds = time.perf_counter() - start
    batch_size = 64
    batches = data.load("imagenet", "train", batch_size=batch_size, seed=0, dequantize=False,
                        image_size=image_size, data_dir=f"{directory}/tfds")
    rate = pipeline.measure_throughput(batches, num_batches=_PIPELINE_BATCHES.value, warmup_batches=3)
  _report({
      "measured": "ImageNet input pipeline, one host", "image_size": image_size, "batch_size": batch_size,
      "train_images": tiny.num_train, "jpeg_sides": [300, 500], "write_and_prepare_seconds": round(prepare_seconds, 1),
      "images_per_second": round(rate, 1), "timed_batches": _PIPELINE_BATCHES.value,
  })


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  if _WHAT.value == "step":
    if _BATCH_SIZE.value < 2:
      raise app.UsageError("--batch_size must be at least 2 (the memory per example is a difference).")
    measure_step(config)
  elif _WHAT.value == "memory":
    measure_memory(config)
  else:
    measure_pipeline(config.dataset_options.image_size)


if __name__ == "__main__":
  app.run(main)
