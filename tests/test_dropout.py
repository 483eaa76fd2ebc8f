"""The hash-based dropout mask: right rate, fresh per key, independent of sharding."""

import jax
import jax.numpy as jnp
import numpy as np

from invjax import parallel
from invjax.blocks import dropout


def test_mask_keeps_the_requested_fraction_and_differs_between_keys():
  a = dropout.keep_mask(jax.random.key(0), (64, 8, 8, 32), 0.9)
  b = dropout.keep_mask(jax.random.key(1), (64, 8, 8, 32), 0.9)
  assert abs(float(a.mean()) - 0.9) < 0.005
  assert abs(float((a & b).mean()) - 0.81) < 0.005  # independent masks
  np.testing.assert_array_equal(a, dropout.keep_mask(jax.random.key(0), (64, 8, 8, 32), 0.9))


def test_neighbouring_entries_are_uncorrelated():
  mask = np.asarray(dropout.keep_mask(jax.random.key(3), (1 << 18,), 0.5), np.float64)
  assert abs(np.corrcoef(mask[:-1], mask[1:])[0, 1]) < 0.01


def test_dropout_rescales_and_is_off_when_deterministic():
  x = jnp.ones((16, 4, 4, 8))
  layer = dropout.Dropout(0.25)
  np.testing.assert_array_equal(layer.apply({}, x, deterministic=True), x)
  y = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)})
  np.testing.assert_allclose(np.unique(np.asarray(y)), [0.0, 1.0 / 0.75])


def test_mask_is_the_same_however_the_array_is_sharded():
  mesh = parallel.make_data_mesh()
  x = jnp.ones((16, 4, 4, 8))
  apply = jax.jit(lambda x: dropout.Dropout(0.5).apply({}, x, deterministic=False,
                                                       rngs={"dropout": jax.random.key(7)}))
  np.testing.assert_array_equal(apply(jax.device_put(x, parallel.batch_sharding(mesh))), apply(x))
