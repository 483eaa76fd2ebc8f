r"""Throughput of the MNIST fi-RevNet: `python -m experiments.benchmark`.

Prints images/s for the forward pass, forward + inverse, and one full iCE
training step (k nuisance-classifier updates and one flow update, SPEC 5) at
batch 128, after compilation, by default for float32 and bfloat16 operands
(`config.model.compute_dtype`) and the train step with each backprop
(`config.model.backprop`: "autodiff", "remat", the configs' default, and
"reversible", which the ':full' variant uses; the forward passes do not depend
on it); beside each rate the FLOP rate it reaches (the
matrix products and convolutions in the program, `product_flops`, over the time) and that rate as a fraction
of a jitted 2048x2048 matrix product measured in the same run, interleaved with
the model's calls so that both see the same load (float32, and bfloat16
operands with float32 accumulation). Each function's compile time, and the
process's peak host memory.

--profile adds the train step split into separately compiled parts: the flow's
forward pass keeping its pullback (`jax.vjp`), the nuisance-classifier updates,
the flow loss and its gradient with respect to the latents, the flow's backward
pass (the pullback) and the optimizer update. Their sum exceeds the fused step
by what XLA saves by compiling them together (and the pullback's residuals
crossing a function boundary).

--conv=native,matmul measures the model with each convolution formulation of
`invjax/blocks/conv.py`, interleaved in one run (the default: each platform's own, chosen when the
program is lowered).
"""

import contextlib
import itertools
import resource
import time

import jax
import jax.numpy as jnp
import optax
from absl import app, flags

from configs import mnist_ice
from invjax import losses, models, train
from invjax.blocks import conv
from invjax.blocks.flow_steps import BACKPROPS
from invjax.flops import product_flops

_BATCH = flags.DEFINE_integer("batch_size", 128, "Images per call.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per measurement (the best is reported).")
_COMPUTE_DTYPE = flags.DEFINE_list(
    "compute_dtype", ["float32", "bfloat16"], "Coupling-network operand dtypes to compare.")
_PROFILE = flags.DEFINE_bool("profile", False, "Also time the train step's parts, compiled separately.")
_CONV = flags.DEFINE_list("conv", [], f"Convolution formulations to compare, of {conv.FORMULATIONS}.")
_BACKPROP = flags.DEFINE_list(
    "backprop", list(BACKPROPS), "config.model.backprop values to compare (the train step's gradient).")
_MATMUL_SIZE = 2048


class Timed:
  """A compiled function, its arguments, FLOPs per call (XLA's count) and compile time."""

  def __init__(self, name, function, *args):
    start = time.perf_counter()
    self.compiled = jax.jit(function).lower(*args).compile()
    self.compile_seconds = time.perf_counter() - start
    self.name, self.args = name, args
    self.flops = product_flops(jax.make_jaxpr(function)(*args).jaxpr)
    self.best = self.best_cpu = float("inf")

  def __call__(self):
    start, start_cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(self.compiled(*self.args))
    self.best = min(self.best, time.perf_counter() - start)
    self.best_cpu = min(self.best_cpu, time.process_time() - start_cpu)


def _matmuls():
  a = jax.random.normal(jax.random.key(0), (_MATMUL_SIZE, _MATMUL_SIZE))
  b = jax.random.normal(jax.random.key(1), (_MATMUL_SIZE, _MATMUL_SIZE))
  product = lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32)
  bf16 = jnp.bfloat16
  return [Timed("matmul float32", product, a, b), Timed("matmul bfloat16", product, a.astype(bf16), b.astype(bf16))]


def measure(timed: list[Timed], matmuls: list[Timed], repeats: int) -> None:
  """Best of `repeats` calls of each, interleaved with the matrix products; warms up first."""
  for item in timed + matmuls:
    item()
    item.best = item.best_cpu = float("inf")
  for _ in range(repeats):
    for item in timed:
      item()
      for matmul in matmuls:
        matmul()


def report(item: Timed, batch_size: int, floor: Timed) -> dict:
  """Prints `item`'s line; returns it as a row (images/s, milliseconds, GFLOP/s, its fraction of `floor`'s)."""
  rate = item.flops / item.best / 1e9
  floor_rate = floor.flops / floor.best / 1e9
  print(f"  {item.name:44s} {batch_size / item.best:6.1f} images/s {1e3 * item.best:7.0f} ms "
        f"(cpu {1e3 * item.best_cpu:6.0f} ms) {rate:6.1f} GFLOP/s = {rate / floor_rate:4.0%} of {floor.name} "
        f"{floor_rate:4.0f}  compile {item.compile_seconds:5.1f} s")
  return {"name": item.name.strip(), "images_per_second": batch_size / item.best, "milliseconds": 1e3 * item.best,
          "gflops_per_second": rate, "fraction_of_matmul": rate / floor_rate,
          "compile_seconds": item.compile_seconds}


def _model_functions(config, parts, state, batch, key, profile, suffix, passes=True):
  """The model's measured functions, compiled (inside the caller's convolution formulation);
  `passes`: also the forward and forward + inverse passes (which backprop does not change)."""
  model, images = parts.model, batch["image"]
  variables = {"params": state.flow["model"]}
  train_step = train.make_train_step(config, model, parts.nuisance_classifier, parts.flow_tx, parts.nuisance_tx)
  timed = [
      Timed("forward" + suffix, lambda v, x: model.apply(v, x), variables, images),
      Timed("forward + inverse" + suffix, lambda v, x: model.apply(v, model.apply(v, x)[0], method=model.inverse),
            variables, images),
  ] if passes else []
  timed.append(Timed("iCE train step" + suffix, train_step, state, batch, key))
  return timed + (_step_parts(config, parts, state, batch, key, suffix) if profile else [])


def _step_parts(config, parts, state, batch, key, suffix):
  """The train step's parts, compiled separately and run on the values the previous part made."""
  model, classifier = parts.model, parts.nuisance_classifier
  num_classes, labels = config.num_classes, batch["label"]

  def flow_forward(params, images, key):
    forward = lambda p: model.apply({"params": p}, images, train=True, rngs={"dropout": key})
    return jax.vjp(forward, params)

  def nuisance_updates(params, opt_state, z_n, key):
    def update(carry, step_key):
      logits_fn = lambda p: classifier.apply({"params": p}, z_n, train=True, rngs={"dropout": step_key})
      params, opt_state, loss, _ = losses.cross_entropy_step(logits_fn, parts.nuisance_tx, *carry, labels)
      return (params, opt_state), loss
    keys = jax.random.split(key, config.nuisance_classifier.steps_per_batch)
    return jax.lax.scan(update, (params, opt_state), keys)

  def loss_gradient(outputs, prior, nuisance):
    def loss(outputs, prior):
      z, logdet = outputs
      logits, z_n = models.split_latent(z, num_classes)
      bits = jnp.mean(losses.bits_per_dim(
          losses.FactorialGaussian().apply({"params": prior}, z_n), logdet, z.shape[1]))
      nuisance_logits = classifier.apply({"params": nuisance}, z_n)
      return (losses.cross_entropy(logits, labels) + bits
              + losses.nuisance_term(nuisance_logits, labels, config.loss.nuisance_form, key))
    return jax.grad(loss, (0, 1))(outputs, prior)

  def backward(pullback, output_grads):
    return pullback(output_grads)

  def optimizer_update(flow, opt_state, grads):
    updates, opt_state = parts.flow_tx.update(grads, opt_state, flow)
    return optax.apply_updates(flow, updates), opt_state

  forward = Timed("  flow forward (keeps pullback)" + suffix, flow_forward, state.flow["model"], batch["image"], key)
  outputs, pullback = forward.compiled(*forward.args)
  z_n = models.split_latent(outputs[0], num_classes)[1]
  nuisance = Timed("  nuisance-classifier updates" + suffix, nuisance_updates,
                   state.nuisance, state.nuisance_opt_state, z_n, key)
  gradient = Timed("  flow loss and latent gradient" + suffix, loss_gradient,
                   outputs, state.flow["prior"], state.nuisance)
  output_grads, prior_grads = gradient.compiled(*gradient.args)
  pulled_back = Timed("  flow backward (pullback)" + suffix, backward, pullback, output_grads)
  grads = {"model": pulled_back.compiled(*pulled_back.args)[0], "prior": prior_grads}
  update = Timed("  optimizer update" + suffix, optimizer_update, state.flow, state.flow_opt_state, grads)
  return [forward, nuisance, gradient, pulled_back, update]


def run(config, batch_size: int, compute_dtypes=("float32", "bfloat16"), backprops=(), formulations=(),
        repeats: int = 5, profile: bool = False) -> list[dict]:
  """Measures `config`'s model (a fi-RevNet config, e.g. `mnist_ice.get_config()`) for each compute
  dtype, backprop and convolution formulation (empty: the config's, the platform's); prints the table
  and returns its rows."""
  images = jax.random.uniform(jax.random.key(0), (batch_size, 32, 32, 3), minval=-1, maxval=1)
  labels = jax.random.randint(jax.random.key(1), (batch_size,), 0, config.num_classes)
  batch = {"image": images, "label": labels}
  key = jax.random.key(3)
  matmuls = _matmuls()
  variants = []  # (timed functions, the matmul that is their floor)
  for compute_dtype, backprop in itertools.product(compute_dtypes, backprops or [None]):
    config = config.copy_and_resolve_references()
    config.model.compute_dtype = "" if compute_dtype == "float32" else compute_dtype
    config.model.backprop = backprop or config.model.backprop
    config.batch_size = batch_size
    parts = train.build(config, steps_per_epoch=1)
    state = jax.block_until_ready(jax.jit(parts.create_state)(images, jax.random.key(2)))
    for formulation in formulations or [None]:
      context = conv.use_formulation(formulation) if formulation else contextlib.nullcontext()
      tags = ([compute_dtype] * (len(compute_dtypes) > 1) + [backprop] * bool(backprop)
              + [formulation] * bool(formulation))
      passes = not backprops or backprop == backprops[0]
      with context:
        suffix = f" [{', '.join(tags)}]" if tags else ""
        timed = _model_functions(config, parts, state, batch, key, profile, suffix, passes)
      variants.append((timed, matmuls[compute_dtype == "bfloat16"]))
  measure([item for timed, _ in variants for item in timed], matmuls, repeats)

  levels, steps = config.model.num_levels, config.model.steps_per_level
  print(f"fi-RevNet {levels} levels x {steps} steps, width {config.model.width}, batch {batch_size}, "
        f"{jax.devices()[0].device_kind} ({jax.device_count()} device(s)), compute dtype {', '.join(compute_dtypes)}, "
        f"backprop {', '.join(backprops) or config.model.backprop}, "
        f"convolutions: {', '.join(formulations) or conv.formulation_for(jax.default_backend())}; best of {repeats} "
        f"calls (cpu: process CPU time of the best call)")
  for item in matmuls:
    print(f"  {item.name + ' 2048x2048':44s} {item.flops / item.best / 1e9:6.1f} GFLOP/s (jitted, same run)")
  rows = [report(item, batch_size, floor) for timed, floor in variants for item in timed]
  print(f"  k = {config.nuisance_classifier.steps_per_batch} nuisance steps + 1 flow step per train step")
  peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(f"peak host memory: {peak_mib:8.0f} MiB")
  return rows


def run_with_flags(config) -> list[dict]:
  """`run` with this module's flags (by default `make benchmark`'s settings)."""
  return run(config, _BATCH.value, _COMPUTE_DTYPE.value, _BACKPROP.value, _CONV.value, _REPEATS.value, _PROFILE.value)


def main(argv):
  del argv
  run_with_flags(mnist_ice.get_config())


if __name__ == "__main__":
  app.run(main)
