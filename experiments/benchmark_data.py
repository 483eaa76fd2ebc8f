r"""Prints the input pipeline's throughput (images/s) on the train splits.

    python -m experiments.benchmark_data

Batches of 256 as `data.load` yields them by default for training (shuffled,
dequantised, numpy), timed after a warm-up that includes building the data.
"""

import time

from absl import app, flags

from invjax import data
from invjax.data import pipeline

_DATASETS = flags.DEFINE_list(
    "datasets", ["mnist", "shift_mnist/binary", "shift_mnist/textured"], "Datasets to time."
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Global batch size.")
_NUM_BATCHES = flags.DEFINE_integer("num_batches", 400, "Timed batches per dataset.")
_WARMUP_BATCHES = flags.DEFINE_integer("warmup_batches", 20, "Untimed batches first.")
_DEQUANTIZE = flags.DEFINE_bool("dequantize", True, "Add dequantisation noise in the pipeline.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory (default: TFDS's).")


def main(argv):
  del argv
  for name in _DATASETS.value:
    start = time.perf_counter()
    batches = data.load(
        name,
        "train",
        batch_size=_BATCH_SIZE.value,
        dequantize=_DEQUANTIZE.value,
        data_dir=_DATA_DIR.value,
    )
    setup = time.perf_counter() - start
    rate = pipeline.measure_throughput(
        batches, num_batches=_NUM_BATCHES.value, warmup_batches=_WARMUP_BATCHES.value
    )
    print(f"{name:24s} {rate:10,.0f} images/s  (set-up {setup:.1f} s)")


if __name__ == "__main__":
  app.run(main)
