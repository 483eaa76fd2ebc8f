r"""Throughput of the MNIST fi-RevNet: `python -m experiments.benchmark`.

Prints images/s for the forward pass, forward + inverse, and one full iCE
training step (k nuisance-classifier updates and one flow update, SPEC 5) at
batch 128, after compilation, and the process's peak host memory.
"""

import resource
import time

import jax
import jax.numpy as jnp
from absl import app
from absl import flags

from configs import mnist_ice
from invjax import train

_BATCH = flags.DEFINE_integer("batch_size", 128, "Images per call.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per measurement (the best is reported).")
_COMPUTE_DTYPE = flags.DEFINE_string("compute_dtype", "", "Coupling-network operand dtype, e.g. bfloat16.")


def images_per_second(function, *args, batch_size: int, repeats: int) -> float:
  jax.block_until_ready(function(*args))  # compile and warm up
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(function(*args))
    best = min(best, time.perf_counter() - start)
  return batch_size / best


def main(argv):
  del argv
  config = mnist_ice.get_config()
  config.model.compute_dtype = _COMPUTE_DTYPE.value
  config.batch_size = _BATCH.value
  parts = train.build(config, steps_per_epoch=1)
  model = parts.model
  images = jax.random.uniform(jax.random.key(0), (_BATCH.value, 32, 32, 3), minval=-1, maxval=1)
  labels = jax.random.randint(jax.random.key(1), (_BATCH.value,), 0, 10)
  state = jax.jit(parts.create_state)(images, jax.random.key(2))
  variables = {"params": state.flow["model"]}

  forward = jax.jit(lambda v, x: model.apply(v, x))
  round_trip = jax.jit(lambda v, x: model.apply(v, model.apply(v, x)[0], method=model.inverse))
  train_step = jax.jit(train.make_train_step(
      config, model, parts.nuisance_classifier, parts.flow_tx, parts.nuisance_tx))
  batch = {"image": images, "label": labels}
  measure = dict(batch_size=_BATCH.value, repeats=_REPEATS.value)
  print(f"fi-RevNet MNIST preset, batch {_BATCH.value}, {jax.devices()[0].device_kind} "
        f"({jax.device_count()} device(s)), compute dtype {_COMPUTE_DTYPE.value or 'float32'}")
  print(f"forward:           {images_per_second(forward, variables, images, **measure):8.1f} images/s")
  print(f"forward + inverse: {images_per_second(round_trip, variables, images, **measure):8.1f} images/s")
  k = config.nuisance_classifier.steps_per_batch
  step_rate = images_per_second(train_step, state, batch, jax.random.key(3), **measure)
  print(f"iCE train step:    {step_rate:8.1f} images/s (k = {k} nuisance steps + 1 flow step)")
  peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(f"peak host memory:  {peak_mib:8.0f} MiB")


if __name__ == "__main__":
  app.run(main)
