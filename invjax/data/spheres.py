"""Concentric spheres (Gilmer et al., "Adversarial Spheres"; SPEC 4), generated on the fly.

Class 0 is uniform on the sphere of radius `inner_radius`, class 1 on the sphere
of radius `outer_radius`, both centred at the origin of R^dimension; the two
classes are equally likely. An example is a direction drawn from a standard
normal and normalised, scaled by its class's radius: {"image": float32
(dimension,), "label": int32}.

Every example is a pure function of a stateless TensorFlow seed. The `train`
split is an endless supply of fresh examples (an "epoch" is `num_examples` of
them, each epoch new ones) drawn from the pipeline's seed; the `test` split is a
fixed set of `num_examples` examples given by `data_seed` alone.
"""

import tensorflow as tf

from invjax.data import pipeline

SPLITS = ("train", "test")
DEFAULT_DIMENSION = 100
DEFAULT_INNER_RADIUS = 1.0
DEFAULT_OUTER_RADIUS = 10.0
DEFAULT_NUM_EXAMPLES = {"train": 1_000_000, "test": 10_000}


def sample(
    seed: tf.Tensor, dimension: int, inner_radius: float, outer_radius: float
) -> dict[str, tf.Tensor]:
  """One example drawn with the stateless seed `seed` (int tensor of shape (2,))."""
  label_seed, direction_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  label = tf.random.stateless_uniform([], label_seed, minval=0, maxval=2, dtype=tf.int32)
  direction = tf.random.stateless_normal([dimension], direction_seed)
  radius = tf.where(label == 0, tf.constant(inner_radius), tf.constant(outer_radius))
  return {"image": radius * direction / tf.norm(direction), "label": label}


def source(
    split: str,
    *,
    dimension: int = DEFAULT_DIMENSION,
    inner_radius: float = DEFAULT_INNER_RADIUS,
    outer_radius: float = DEFAULT_OUTER_RADIUS,
    num_examples: int | None = None,
    data_seed: int = 0,
) -> pipeline.Source:
  """The pipeline source of a spheres split.

  Args:
    split: "train" (fresh examples, seeded by the pipeline) or "test" (fixed).
    dimension: dimension d of the ambient space.
    inner_radius, outer_radius: radii of class 0 and class 1.
    num_examples: examples per epoch (train) or in the split (test); None
      takes DEFAULT_NUM_EXAMPLES.
    data_seed: seed of the fixed test set.
  """
  if split not in SPLITS:
    raise ValueError(f"spheres has splits {SPLITS}, not {split!r}.")
  if not 0 < inner_radius < outer_radius:
    raise ValueError(f"Need 0 < inner_radius < outer_radius, got {inner_radius} and {outer_radius}.")
  num_examples = DEFAULT_NUM_EXAMPLES[split] if num_examples is None else num_examples
  start, stop = pipeline.process_bounds(num_examples)
  indices = tf.data.Dataset.range(start, stop)
  if split == "train":
    def example_fn(index, seed):
      del index  # Every draw is fresh: the pipeline's per-example seed decides.
      return sample(seed, dimension, inner_radius, outer_radius)
  else:
    test_seed = tf.constant([data_seed, SPLITS.index(split)], tf.int64)

    def example_fn(index, seed):
      del seed  # The test set is fixed: its seed is the index's.
      index_seed = tf.random.experimental.stateless_fold_in(test_seed, index)
      return sample(index_seed, dimension, inner_radius, outer_radius)
  return pipeline.Source(indices, num_examples, example_fn=example_fn, shuffle_buffer=0)
