"""Batching shared by all datasets.

A dataset hands the pipeline a `Source`: its examples for this process as a
tf.data.Dataset, the split's global size and two functions (one per example,
one per batch). The pipeline then

1. shuffles the local examples with the seed (tf.data, a new order each epoch),
2. repeats them `num_epochs` times (forever for None),
3. applies the per-example function (with a per-example random seed),
4. batches; a finite run without `drop_remainder` pads its last batch with
   blank examples whose `mask` is False, and every process yields the same
   number of batches, so sharded evaluation can sum over masked examples,
5. applies the per-batch function (raw pixels -> model inputs) and prefetches.

`Batches` then optionally adds dequantisation noise (`preprocess.dequantize`,
with keys derived from the seed and the batch index) and, given a mesh, turns
each process's batch into a globally sharded jax.Array along `data_axis`.

`batch_size` is always the global batch size: each of the P processes reads
its own contiguous 1/P of the split (`process_bounds`) and yields
batch_size / P examples per batch.
"""

import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

import jax
import numpy as np
import tensorflow as tf

from invjax.data import preprocess

Example = dict[str, tf.Tensor]


class Source(NamedTuple):
  """What a dataset gives the pipeline.

  Attributes:
    examples: this process's examples (an epoch), unbatched, unshuffled.
    num_examples: size of the whole split (all processes together).
    example_fn: (example, seed) -> example, run after shuffling; `seed` is a
      per-example int64 tensor of shape (2,) for stateless random ops. None: identity.
    batch_fn: batch -> batch, after batching. None: identity.
    shuffle_buffer: None shuffles the whole local split; 0 means the examples
      are i.i.d. draws that need no shuffling.
  """

  examples: tf.data.Dataset
  num_examples: int
  example_fn: Callable[[Example, tf.Tensor], Example] | None = None
  batch_fn: Callable[[Example], Example] | None = None
  shuffle_buffer: int | None = None


def process_bounds(num_examples: int) -> tuple[int, int]:
  """[start, stop) of this process's contiguous share of `num_examples` examples."""
  count, index = jax.process_count(), jax.process_index()
  return index * num_examples // count, (index + 1) * num_examples // count


def process_seed(seed: int) -> int:
  """A seed for this process's own random streams, derived from `seed`."""
  return int(np.random.SeedSequence([seed, jax.process_index()]).generate_state(1)[0])


def local_batch_size(batch_size: int) -> int:
  """This process's share of the global `batch_size`."""
  count = jax.process_count()
  if batch_size <= 0 or batch_size % count:
    raise ValueError(f"batch_size={batch_size} must be a positive multiple of the {count} processes.")
  return batch_size // count


def from_arrays(arrays: dict[str, np.ndarray]) -> tuple[tf.data.Dataset, int]:
  """This process's slice of in-memory arrays as a dataset, and the global size."""
  num_examples = len(next(iter(arrays.values())))
  start, stop = process_bounds(num_examples)
  local = {key: value[start:stop] for key, value in arrays.items()}
  return tf.data.Dataset.from_tensor_slices(local), num_examples


def num_batches(
    num_examples: int, batch_size: int, num_epochs: int | None, drop_remainder: bool
) -> int | None:
  """How many batches every process yields (None: endless)."""
  if num_epochs is None:
    return None
  count = jax.process_count()
  local = local_batch_size(batch_size)
  if drop_remainder:
    return num_epochs * (num_examples // count) // local
  return math.ceil(num_epochs * math.ceil(num_examples / count) / local)


def batch(
    source: Source,
    *,
    batch_size: int,
    seed: int,
    shuffle: bool,
    num_epochs: int | None,
    drop_remainder: bool,
) -> tf.data.Dataset:
  """This process's batches of `source` (see the module docstring), with a "mask"."""
  local = local_batch_size(batch_size)
  start, stop = process_bounds(source.num_examples)
  dataset = source.examples
  if shuffle and source.shuffle_buffer != 0:
    buffer = source.shuffle_buffer or stop - start
    dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
  dataset = dataset.repeat(num_epochs)
  if source.example_fn is not None:
    seeds = tf.data.Dataset.random(seed=process_seed(seed)).batch(2)
    dataset = tf.data.Dataset.zip(dataset, seeds).map(
        source.example_fn, num_parallel_calls=tf.data.AUTOTUNE
    )
  dataset = dataset.map(lambda example: {**example, "mask": tf.constant(True)})
  total = num_batches(source.num_examples, batch_size, num_epochs, drop_remainder)
  if total is not None and not drop_remainder:
    blank = tf.nest.map_structure(lambda spec: tf.zeros(spec.shape, spec.dtype), dataset.element_spec)
    padding = total * local - num_epochs * (stop - start)
    dataset = dataset.concatenate(tf.data.Dataset.from_tensors(blank).repeat(padding))
  dataset = dataset.batch(local, drop_remainder=True)
  if total is not None:
    dataset = dataset.take(total)
  if source.batch_fn is not None:
    dataset = dataset.map(source.batch_fn, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.prefetch(tf.data.AUTOTUNE)


_dequantize = jax.jit(preprocess.dequantize)


class Batches:
  """An iterable of batches {"image", "label", "mask"}.

  Each `iter()` starts again from the first batch and yields the same
  batches (same order, same noise). Without a mesh the batches hold this
  process's numpy arrays; with one, globally sharded jax.Arrays.

  Attributes:
    num_batches: batches per iteration, None for an endless stream.
  """

  def __init__(
      self,
      make_batches: Callable[[], Iterable[dict[str, np.ndarray]]],
      *,
      num_batches: int | None,
      dequantize_seed: int | None,
      mesh: jax.sharding.Mesh | None,
      data_axis: str,
  ):
    """`make_batches` builds this process's batches afresh; `dequantize_seed`
    None adds no noise."""
    self._make_batches = make_batches
    self.num_batches = num_batches
    self._dequantize_seed = dequantize_seed
    self._mesh = mesh
    self._data_axis = data_axis

  def __iter__(self) -> Iterator[dict]:
    for index, local in enumerate(self._make_batches()):
      yield self._finish(index, local)

  def _finish(self, index: int, local: dict[str, np.ndarray]) -> dict:
    batch = local
    if self._mesh is not None:
      sharding = jax.sharding.NamedSharding(self._mesh, jax.sharding.PartitionSpec(self._data_axis))
      batch = {
          key: jax.make_array_from_process_local_data(sharding, value) for key, value in local.items()
      }
    if self._dequantize_seed is None:
      return batch
    key = jax.random.fold_in(jax.random.key(self._dequantize_seed), index)
    if self._mesh is None:
      key = jax.random.fold_in(key, jax.process_index())
      return {**batch, "image": np.asarray(_dequantize(key, batch["image"]))}
    return {**batch, "image": _dequantize(key, batch["image"])}


def measure_throughput(batches: Iterable[dict], *, num_batches: int, warmup_batches: int) -> float:
  """Examples per second over `num_batches` batches, after `warmup_batches`."""
  iterator = iter(batches)
  for _ in range(warmup_batches):
    jax.block_until_ready(next(iterator))
  start = time.perf_counter()
  count = 0
  for _ in range(num_batches):
    count += len(jax.block_until_ready(next(iterator))["label"])
  return count / (time.perf_counter() - start)
