"""Helpers shared by the tests."""

import os
import pathlib

import jax
import jax.flatten_util
import jax.numpy as jnp

from invjax import data, train
from invjax.train import checkpoints


def perturbed(variables, key: jax.Array, scale: float):
  """`variables` plus independent N(0, scale^2) noise on every entry.

  Moves every block away from its identity / zero initialisation, so that
  properties are tested on non-trivial parameters.
  """
  flat, unflatten = jax.flatten_util.ravel_pytree(variables)
  return unflatten(flat + scale * jax.random.normal(key, flat.shape, flat.dtype))


def cast(tree, dtype):
  return jax.tree.map(lambda leaf: leaf.astype(dtype), tree)


# Set by conftest.py from the environment, or ../shared/data by default.
MNIST_DIR = pathlib.Path(os.environ["INVJAX_MNIST_DIR"])
FASHION_MNIST_DIR = pathlib.Path(os.environ["INVJAX_FASHION_MNIST_DIR"])
DTD_DIR = pathlib.Path(os.environ["INVJAX_DTD_DIR"])
# conftest.py's XLA flags without the eight virtual devices: for tools run as a user runs them.
ONE_DEVICE_XLA_FLAGS = os.environ["XLA_FLAGS"].replace("--xla_force_host_platform_device_count=8", "").strip()


def untrained_run(config, workdir: pathlib.Path) -> pathlib.Path:
  """A run folder holding `config` and its freshly initialised state as checkpoint 0,
  saved the way training saves it: all that `train.load_run` needs."""
  state = train.build(config, steps_per_epoch=1).create_state(
      jnp.zeros((2, *data.input_shape(config.dataset))), jax.random.key(0)
  )
  checkpoints.save_config(config, workdir)
  manager = checkpoints.manager(workdir, keep=1)
  checkpoints.save(manager, 0, state)
  manager.wait_until_finished()
  manager.close()
  return workdir
