"""invjax inside other JAX code: as a Flax NNX module (nnx.bridge) and as jax.export artefacts."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from invjax import blocks, export, models

import testing_utils


def _block():
  return blocks.Chain([blocks.ActNorm(), blocks.InvertibleConv1x1(seed=1), blocks.AffineCoupling(width=8, dropout=0.0)])


def _loss(y, logdet):
  return jnp.sum(jnp.sin(y)) - jnp.sum(logdet)


def test_block_as_an_nnx_module_runs_both_directions_under_nnx_jit_and_nnx_grad():
  x = jax.random.normal(jax.random.key(0), (3, 4, 4, 6))
  block = _block()
  module = nnx.bridge.ToNNX(block, rngs=nnx.Rngs(0)).lazy_init(x)
  # A trained Linen run's parameters go in the same way (here: moved off the identity initialisation).
  params = testing_utils.perturbed(nnx.to_pure_dict(nnx.state(module, nnx.Param)), jax.random.key(1), 0.3)
  state = nnx.state(module, nnx.Param)
  nnx.replace_by_pure_dict(state, params)
  nnx.update(module, state)
  variables = {"params": params}

  y, logdet = module(x)
  y_linen, logdet_linen = block.apply(variables, x)
  np.testing.assert_array_equal(y, y_linen)
  np.testing.assert_array_equal(logdet, logdet_linen)
  x_back, inverse_logdet = module.inverse(y)
  np.testing.assert_allclose(x_back, x, atol=1e-5)
  np.testing.assert_allclose(inverse_logdet, -logdet, atol=1e-5)

  nnx_jitted = nnx.jit(lambda module, x, y: (module(x), module.inverse(y)))(module, x, y)
  linen_jitted = jax.jit(lambda variables, x, y: (block.apply(variables, x),
                                                  block.apply(variables, y, method=block.inverse)))(variables, x, y)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), nnx_jitted, linen_jitted)

  grads = nnx.grad(lambda module: _loss(*module(x)))(module)
  linen_grads = jax.grad(lambda params: _loss(*block.apply({"params": params}, x)))(params)
  assert np.any(linen_grads["layers_2"]["CouplingNetwork_0"]["Conv2D_0"]["kernel"] != 0)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               nnx.to_pure_dict(grads), linen_grads)


def test_exported_fi_revnet_runs_any_batch_size_from_its_bytes():
  model = models.FiRevNet(image_shape=(8, 8, 2), num_classes=3, num_levels=2, steps_per_level=1, width=8,
                          coupling="affine", dropout=0.1)
  x = jax.random.uniform(jax.random.key(0), (5, 8, 8, 2), minval=-1, maxval=1)
  variables = testing_utils.perturbed(model.init(jax.random.key(1), x), jax.random.key(2), 0.05)

  exported = export.export_forward_inverse(model, variables, jax.ShapeDtypeStruct((1, 8, 8, 2), x.dtype))
  assert str(exported.forward.in_avals[0].shape[0]) == "b"
  forward = jax.export.deserialize(exported.forward.serialize())
  inverse = jax.export.deserialize(exported.inverse.serialize())

  z, logdet = forward.call(x)
  z_jit, logdet_jit = jax.jit(model.apply)(variables, x)
  np.testing.assert_allclose(z, z_jit, atol=1e-6)
  np.testing.assert_allclose(logdet, logdet_jit, atol=1e-5)
  assert np.abs(logdet).max() > 0.1  # affine couplings off their initialisation: a non-trivial log-det
  x_back, inverse_logdet = inverse.call(z[:2])
  x_jit, inverse_logdet_jit = jax.jit(lambda z: model.apply(variables, z, method=model.inverse))(z[:2])
  np.testing.assert_allclose(x_back, x_jit, atol=1e-6)
  np.testing.assert_allclose(inverse_logdet, inverse_logdet_jit, atol=1e-5)
  np.testing.assert_allclose(x_back, x[:2], atol=1e-5)
