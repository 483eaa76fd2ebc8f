"""Applying a jitted function to a large array chunk by chunk, with progress reports."""

from collections.abc import Callable

import jax
import numpy as np


def map_in_batches(
    function: Callable,
    *arrays: np.ndarray,
    batch_size: int,
    report: Callable[[int, int], None] | None = None,
):
  """`function(*arrays)` computed on consecutive chunks of `batch_size` examples.

  Every chunk has exactly `batch_size` examples (the last one is padded by
  repeating its last example, and the padding's outputs are dropped), so a
  jitted `function` compiles once. Outputs (arrays or pytrees of arrays with a
  leading example axis) come back as numpy, concatenated over the chunks.

  Args:
    function: maps chunks (batch_size, ...) of each of `arrays` to outputs
      with a leading axis of batch_size.
    *arrays: inputs with the same leading size N >= 1.
    batch_size: examples per call.
    report: optional `report(done, total)` after every chunk.
  """
  total = len(arrays[0])
  if total == 0 or any(len(array) != total for array in arrays):
    raise ValueError(f"Need non-empty arrays of the same length; got lengths {[len(array) for array in arrays]}.")
  outputs = []
  for start in range(0, total, batch_size):
    stop = min(start + batch_size, total)
    chunks = [np.asarray(array[start:stop]) for array in arrays]
    padding = batch_size - (stop - start)
    chunks = [np.concatenate([chunk, np.repeat(chunk[-1:], padding, axis=0)]) for chunk in chunks]
    real = stop - start
    outputs.append(jax.tree.map(lambda output, real=real: np.asarray(output)[:real], function(*chunks)))
    if report is not None:
      report(stop, total)
  return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)
