"""GPUs and TPUs get their own program, checked on a CPU host with `jax.export`.

`invjax.blocks.conv` chooses the convolution formulation per lowering platform
(`jax.lax.platform_dependent`): an export of the train step, the forward and
inverse passes and `metameric_sample` for ("cuda",) or ("tpu",) must hold native
convolutions, no host callbacks and no custom calls that only a CPU runs; one
for ("cpu",) must hold the matrix products and no convolution. Exports are
traced from abstract arguments (`jax.eval_shape`), so nothing of the real-size
models is computed.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from configs import imagenet_ice, mnist_ice
from invjax import data, metamers, models, parallel, train
from invjax.blocks import conv

import testing_utils

ACCELERATORS = [("cuda",), ("tpu",)]
# Custom calls any platform runs: sharding annotations and shape checks. A host callback
# (jax.debug.print, pure_callback) or a CPU library call (LAPACK) would appear as another target.
PORTABLE_CUSTOM_CALLS = {"Sharding", "SPMDFullToShardShape", "SPMDShardToFullShape", "shape_assertion"}


def _module_text(function, platforms, *args) -> str:
  return export.export(jax.jit(function), platforms=platforms)(*args).mlir_module()


def _assert_runs_on(text: str, platforms) -> None:
  """Native convolutions on accelerators, matrix products and no convolution on CPUs; only
  portable custom calls either way."""
  targets = set(re.findall(r"stablehlo\.custom_call @(\w+)", text))
  assert targets <= PORTABLE_CUSTOM_CALLS, f"custom calls {sorted(targets - PORTABLE_CUSTOM_CALLS)}"
  assert "callback" not in text
  convolutions = text.count("stablehlo.convolution")
  if platforms == ("cpu",):
    assert convolutions == 0 and "stablehlo.dot_general" in text
  else:
    assert convolutions > 0


def _abstract_train_step(config):
  """The real train step of `config` (invjax/train/step.py) and abstract arguments for it."""
  parts = train.build(config, steps_per_epoch=1)
  shape = (config.batch_size, *data.input_shape(config.dataset, **config.dataset_options))
  batch = {"image": jax.ShapeDtypeStruct(shape, jnp.float32),
           "label": jax.ShapeDtypeStruct((config.batch_size,), jnp.int32)}
  key = jax.eval_shape(lambda: jax.random.key(0))
  state = jax.eval_shape(parts.create_state, batch["image"], key)
  step = train.make_train_step(config, parts.model, parts.nuisance_classifier, parts.flow_tx, parts.nuisance_tx)
  return step, (state, batch, key)


def _mnist_ice():
  """The paper's MNIST model with iCE (configs/mnist_ice.py), at a small batch."""
  config = mnist_ice.get_config()
  config.batch_size = 8
  return config


def _imagenet_ice_tiny():
  """fiRevNet48's layout (configs/imagenet_ice.py:tiny) with the pod's bfloat16 operands."""
  config = imagenet_ice.get_config("tiny")
  config.model.compute_dtype = "bfloat16"
  return config


TRAIN_STEP_CONFIGS = {"mnist_ice": _mnist_ice, "imagenet_ice_tiny": _imagenet_ice_tiny}
# fiRevNet48 for the accelerators it is meant for; its CPU export would show nothing MNIST's does not.
TRAIN_STEP_CASES = [("mnist_ice", "cpu"), ("mnist_ice", "cuda"), ("mnist_ice", "tpu"),
                    ("imagenet_ice_tiny", "cuda"), ("imagenet_ice_tiny", "tpu")]


@pytest.mark.parametrize("name,platform", TRAIN_STEP_CASES, ids=[f"{n}-{p}" for n, p in TRAIN_STEP_CASES])
def test_ice_train_step_lowers_for_each_platform(name, platform):
  step, args = _abstract_train_step(TRAIN_STEP_CONFIGS[name]())
  _assert_runs_on(_module_text(step, (platform,), *args), (platform,))


@pytest.fixture(scope="module")
def small_flow():
  model = models.fi_revnet_mnist(steps_per_level=1, width=8)
  x = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3), minval=-1, maxval=1)
  variables = testing_utils.perturbed(jax.jit(model.init)(jax.random.key(1), x), jax.random.key(2), 0.03)
  return model, variables, x


def _passes(model):
  forward = lambda variables, x: model.apply(variables, x)
  inverse = lambda variables, z: model.apply(variables, z, method=model.inverse)
  metamer = lambda variables, a, b: metamers.metameric_sample(model, variables, a, b)
  return forward, inverse, metamer


@pytest.mark.parametrize("platforms", [("cpu",), *ACCELERATORS], ids="-".join)
def test_forward_inverse_and_metamers_lower_for_each_platform(small_flow, platforms):
  model, variables, x = small_flow
  forward, inverse, metamer = _passes(model)
  z, _ = jax.jit(forward)(variables, x)
  for function, args in [(forward, (variables, x)), (inverse, (variables, z)), (metamer, (variables, x, x[::-1]))]:
    _assert_runs_on(_module_text(function, platforms, *args), platforms)


def test_exported_round_trip_run_on_cpu_equals_the_jitted_one(small_flow):
  """Exported for cpu, cuda and tpu at once; called here, the module takes its cpu branch."""
  model, variables, x = small_flow
  forward, inverse, _ = _passes(model)
  platforms = ("cpu", "cuda", "tpu")
  exported_forward = export.export(jax.jit(forward), platforms=platforms)(variables, x)
  z, logdet = jax.jit(forward)(variables, x)
  exported_inverse = export.export(jax.jit(inverse), platforms=platforms)(variables, z)
  z_exported, logdet_exported = exported_forward.call(variables, x)
  x_back = exported_inverse.call(variables, z_exported)[0]
  np.testing.assert_allclose(z_exported, z, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(logdet_exported, logdet, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(x_back, jax.jit(inverse)(variables, z)[0], rtol=1e-6, atol=1e-6)
  assert np.max(np.abs(x_back - x)) <= 1e-5


def test_one_traced_function_lowers_to_each_platforms_formulation():
  x = jnp.ones((2, 6, 6, 4))
  kernel = jnp.ones((3, 3, 4, 8))
  traced = jax.jit(conv.conv2d_same).trace(x, kernel)
  for platform in ("cpu", "cuda", "tpu"):
    text = traced.lower(lowering_platforms=(platform,)).as_text()
    assert ("stablehlo.convolution" in text) == (conv.formulation_for(platform) == "native"), platform


def test_a_function_jitted_before_use_formulation_is_traced_again():
  """The forced formulation is part of jax.jit's cache key, not read from a global once."""
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 4, 8))
  traces = []

  @jax.jit
  def convolve(x, kernel):
    traces.append(conv.formulation_for(jax.default_backend()))
    return conv.conv2d_same(x, kernel)

  default = convolve(x, kernel)
  with conv.use_formulation("native"):
    forced = convolve(x, kernel)
    assert "stablehlo.convolution" in convolve.lower(x, kernel).as_text()
  assert traces[:2] == ["matmul", "native"]
  assert "stablehlo.convolution" not in convolve.lower(x, kernel).as_text()
  np.testing.assert_allclose(forced, default, rtol=1e-5, atol=1e-5)


def test_data_mesh_is_jax_make_mesh_with_automatic_axes():
  mesh = parallel.make_data_mesh()
  expected = jax.make_mesh((jax.device_count(),), (parallel.DATA_AXIS,),
                           axis_types=(jax.sharding.AxisType.Auto,))
  assert mesh == expected and mesh.size == 8  # conftest's virtual CPU devices
  assert parallel.make_data_mesh(4).size == 4
  # Automatic axes: a reshape that merges the sharded batch axis needs no output sharding.
  x = jax.device_put(jnp.arange(8 * 6.0).reshape(8, 3, 2), parallel.batch_sharding(mesh))
  np.testing.assert_array_equal(jax.jit(lambda x: x.reshape(4, 12))(x), np.arange(48.0).reshape(4, 12))
