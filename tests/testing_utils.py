"""Helpers shared by the tests."""

import jax


def perturbed(variables, key: jax.Array, scale: float):
  """`variables` plus independent N(0, scale^2) noise on every entry.

  Moves every block away from its identity / zero initialisation, so that
  properties are tested on non-trivial parameters.
  """
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(
      tree, [leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype) for leaf, k in zip(leaves, keys)]
  )


def cast(tree, dtype):
  return jax.tree.map(lambda leaf: leaf.astype(dtype), tree)
