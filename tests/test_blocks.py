"""Property tests over a registry of every invertible block."""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from invjax import blocks, models

import testing_utils


class UserConditioner(nn.Module):
  """A coupling's NN of the user's own: any network works, since it is never inverted."""

  channels: int

  @nn.compact
  def __call__(self, x1, train=False):
    return nn.Conv(self.channels, (3, 3))(jnp.tanh(nn.Conv(8, (1, 1))(x1)))


@dataclasses.dataclass(frozen=True)
class Case:
  name: str
  make: callable
  input_shape: tuple[int, ...]
  parameter_scale: float = 0.3


REGISTRY = [
    Case("ActNorm", blocks.ActNorm, (3, 4, 4, 6)),
    Case("ActNorm-vectors", blocks.ActNorm, (3, 10)),
    Case("ReversePermutation", blocks.ReversePermutation, (3, 4, 4, 6)),
    Case("ShufflePermutation", lambda: blocks.ShufflePermutation(seed=3), (3, 4, 4, 6)),
    Case("InvertibleConv1x1", lambda: blocks.InvertibleConv1x1(seed=1), (3, 4, 4, 6)),
    Case("AdditiveCoupling", lambda: blocks.AdditiveCoupling(width=8, dropout=0.1), (3, 4, 4, 6)),
    Case("AffineCoupling", lambda: blocks.AffineCoupling(width=8, dropout=0.1), (3, 4, 4, 6)),
    Case("AffineCoupling-conditioner", lambda: blocks.AffineCoupling(conditioner=UserConditioner(6)), (3, 4, 4, 6)),
    Case("FlowStep", lambda: blocks.FlowStep(permutation="conv1x1", coupling="affine", width=8, seed=2),
         (3, 4, 4, 4), 0.1),
    Case("FlowSteps", lambda: blocks.FlowSteps(num_steps=3, permutation="shuffle", coupling="affine", width=8),
         (3, 4, 4, 4), 0.1),
    Case("SplitPrior", blocks.SplitPrior, (3, 4, 4, 6)),
    Case("Squeeze", blocks.Squeeze, (3, 4, 4, 2)),
    Case("DCT2D", blocks.DCT2D, (3, 4, 2, 3)),
    Case(
        "Chain",
        lambda: blocks.Chain([blocks.ActNorm(), blocks.InvertibleConv1x1(), blocks.AffineCoupling(width=8)]),
        (3, 4, 4, 4),
    ),
    Case(
        "FiRevNet",
        lambda: models.FiRevNet(image_shape=(4, 4, 1), num_classes=3, num_levels=2,
                                steps_per_level=2, width=8, coupling="affine", permutation="conv1x1"),
        (3, 4, 4, 1),
        0.1,
    ),
    Case(
        "FiRevNet-dct",
        lambda: models.FiRevNet(image_shape=(4, 4, 2), num_classes=4, num_levels=1, steps_per_level=2,
                                width=8, readout="dct", permutation="shuffle"),
        (3, 4, 4, 2),
        0.1,
    ),
]
IDS = [case.name for case in REGISTRY]


@functools.cache
def _setup(case: Case, dtype=jnp.float32):
  """The block, its perturbed variables and an input, made once per case and dtype: the tests below
  share them and the compiled forward and inverse of `_jitted` (float64 ones under `jax.enable_x64`)."""
  block = case.make()
  key_x, key_init, key_perturb = jax.random.split(jax.random.key(42), 3)
  x = jax.random.normal(key_x, case.input_shape, dtype) * 1.5  # both signs
  variables = jax.jit(block.init)(key_init, x)
  variables = testing_utils.cast(
      testing_utils.perturbed(variables, key_perturb, case.parameter_scale), dtype
  )
  return block, variables, x


@functools.cache
def _jitted(case: Case, dtype=jnp.float32):
  """The compiled forward and inverse of `_setup(case, dtype)`'s block, as functions of (variables, input)."""
  block, _, _ = _setup(case, dtype)
  return jax.jit(block.apply), jax.jit(lambda v, y: block.apply(v, y, method=block.inverse))


def test_registry_covers_every_block():
  registered = {type(case.make()).__name__ for case in REGISTRY}
  exported = {
      name for name in blocks.__all__
      if isinstance(getattr(blocks, name), type)
      and issubclass(getattr(blocks, name), blocks.Bijection)
      and name not in ("Bijection", "Coupling")  # base classes, for blocks of one's own
  }
  assert exported <= registered, f"blocks missing from REGISTRY: {exported - registered}"


@pytest.mark.parametrize("case", REGISTRY, ids=IDS)
@pytest.mark.parametrize("dtype,tolerance", [(jnp.float32, 2e-5), (jnp.float64, 1e-12)])
def test_round_trip_and_opposite_logdets(case, dtype, tolerance):
  with jax.enable_x64(dtype == jnp.float64):
    _, variables, x = _setup(case, dtype)
    forward, inverse = _jitted(case, dtype)
    y, forward_logdet = forward(variables, x)
    x_back, inverse_logdet = inverse(variables, y)
    assert y.dtype == x_back.dtype == dtype
    assert forward_logdet.shape == inverse_logdet.shape == (x.shape[0],)
    np.testing.assert_allclose(x_back, x, atol=tolerance * 10, rtol=0)
    np.testing.assert_allclose(inverse_logdet, -forward_logdet, atol=tolerance * 100, rtol=tolerance)


@pytest.mark.parametrize("case", REGISTRY, ids=IDS)
def test_blocks_with_parameters_are_not_the_identity(case):
  _, variables, x = _setup(case)
  y, _ = _jitted(case)[0](variables, x)
  if variables:
    assert y.size != x.size or not np.allclose(y.reshape(x.shape), x, atol=1e-3)


@pytest.mark.parametrize("case", REGISTRY, ids=IDS)
def test_logdet_equals_slogdet_of_jacobian(case):
  with jax.enable_x64(True):
    block, variables, x = _setup(case, jnp.float64)
    _, logdet = _jitted(case, jnp.float64)[0](variables, x)

    def flat_forward(flat_example):
      y, _ = block.apply(variables, flat_example.reshape(1, *x.shape[1:]))
      return y.reshape(-1)

    jacobians = jax.jit(jax.vmap(jax.jacfwd(flat_forward)))(x.reshape(x.shape[0], -1))
    signs, expected = jnp.linalg.slogdet(jacobians)
    assert np.all(signs != 0)
    np.testing.assert_allclose(logdet, expected, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("case", REGISTRY, ids=IDS)
def test_jit_equals_eager(case):
  block, variables, x = _setup(case)
  forward, inverse = _jitted(case)
  eager_forward = block.apply(variables, x)
  y = eager_forward[0]
  eager_inverse = block.apply(variables, y, method=block.inverse)
  for eager, jitted in ((eager_forward, forward(variables, x)), (eager_inverse, inverse(variables, y))):
    # Rounding differs between one compiled program and op-by-op eager mode, and an ill-conditioned
    # inverse amplifies it: Chain's affine coupling has scales down to 6e-6 at these parameters, so
    # x2 = y2 / scale - shift cancels terms of size 15, and eager and jit are each 1.6e-5 to 2.2e-5
    # from the float64 answer (1.06e-5 from each other). The absolute tolerance follows the output's size.
    jax.tree.map(lambda a, b: np.testing.assert_allclose(
        a, b, atol=1e-5 * max(1.0, float(np.abs(a).max())), rtol=1e-5), eager, jitted)


def test_actnorm_data_dependent_init_normalises_the_first_batch():
  x = 3.0 + 2.0 * jax.random.normal(jax.random.key(0), (16, 5, 5, 4))
  block = blocks.ActNorm()
  y, _ = block.apply(block.init(jax.random.key(1), x), x)
  np.testing.assert_allclose(jnp.mean(y, (0, 1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(jnp.std(y, (0, 1, 2)), 1.0, atol=1e-4)


def test_actnorm_initialised_through_inverse_is_the_identity():
  x = jax.random.normal(jax.random.key(0), (2, 3, 3, 4))
  block = blocks.ActNorm()
  variables = block.init(jax.random.key(1), x, method=block.inverse)
  np.testing.assert_array_equal(block.apply(variables, x)[0], x)


def test_couplings_start_as_the_identity():
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 6))
  for block in (blocks.AdditiveCoupling(width=8), blocks.AffineCoupling(width=8)):
    y, _ = block.apply(block.init(jax.random.key(1), x), x)
    if isinstance(block, blocks.AdditiveCoupling):
      np.testing.assert_array_equal(y, x)
    else:  # scale = sigmoid(2) on the transformed half
      np.testing.assert_allclose(y[..., 3:], x[..., 3:] * jax.nn.sigmoid(2.0), rtol=1e-6)


def test_coupling_conditioner_replaces_the_coupling_network():
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 6))
  block = blocks.AffineCoupling(conditioner=UserConditioner(6))
  params = block.init(jax.random.key(1), x)["params"]
  assert list(params) == ["conditioner"]
  h = UserConditioner(6).apply({"params": params["conditioner"]}, x[..., :3])
  y, _ = block.apply({"params": params}, x)
  np.testing.assert_allclose(y[..., 3:], blocks.AffineCoupling.transform(h, x[..., 3:])[0], rtol=1e-6)


def test_dropout_is_active_only_in_training():
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 6))
  block = blocks.AdditiveCoupling(width=8, dropout=0.5)
  variables = testing_utils.perturbed(block.init(jax.random.key(1), x), jax.random.key(2), 0.3)
  eval_a, _ = block.apply(variables, x)
  eval_b, _ = block.apply(variables, x, train=False)
  train, _ = block.apply(variables, x, train=True, rngs={"dropout": jax.random.key(3)})
  np.testing.assert_array_equal(eval_a, eval_b)
  assert not np.allclose(train, eval_a)


@pytest.mark.parametrize("block", [blocks.AdditiveCoupling(width=8), blocks.AffineCoupling(width=8)])
def test_coupling_rejects_odd_channels(block):
  with pytest.raises(ValueError, match="even channel count"):
    block.init(jax.random.key(0), jnp.zeros((2, 4, 4, 5)))


@pytest.mark.parametrize("block", [blocks.Squeeze(), blocks.AdditiveCoupling(width=8), blocks.DCT2D()])
def test_image_blocks_reject_wrong_rank(block):
  with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
    block.init(jax.random.key(0), jnp.zeros((2, 4, 6)))


def test_squeeze_rejects_odd_spatial_size():
  with pytest.raises(ValueError, match="even height and width"):
    blocks.Squeeze().init(jax.random.key(0), jnp.zeros((2, 5, 4, 1)))


def test_dct_readout_is_a_scaled_global_average():
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 3))
  y, _ = blocks.DCT2D().apply({}, x)
  np.testing.assert_allclose(y[:, 0, 0, :], 4.0 * jnp.mean(x, axis=(1, 2)), atol=1e-5)


def test_block_inside_a_user_model_trains():
  class UserModel(nn.Module):
    @nn.compact
    def __call__(self, x):
      y, logdet = blocks.AffineCoupling(width=8)(x)
      return nn.Dense(1)(y.reshape(len(y), -1))[:, 0] + logdet

  x = jax.random.normal(jax.random.key(0), (4, 4, 4, 2))
  model = UserModel()
  variables = model.init(jax.random.key(1), x)
  grads = jax.grad(lambda v: jnp.sum(model.apply(v, x) ** 2))(variables)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert np.any(grads["params"]["Dense_0"]["kernel"] != 0)
  assert np.any(grads["params"]["AffineCoupling_0"]["CouplingNetwork_0"]["zero_conv"]["kernel"] != 0)
