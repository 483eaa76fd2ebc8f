r"""Writes a PNG grid of examples of a dataset split, labels as titles.

    python -m experiments.show_data --dataset=shift_mnist/textured --split=train --out=grid.png

Shows what the model sees (without dequantisation noise): the digit datasets'
inputs have blank channels 1 and 2 and are drawn in grey from channel 0.
Bad input (a missing dataset or texture folder, an unreadable texture file) ends
with a one-line error (`experiments.commands`).
"""

from absl import flags

from experiments import commands
from invjax import data
from invjax.data import figures

_DATASET = flags.DEFINE_enum(
    "dataset", "mnist", [name for name in data.DATASETS if name != "spheres"], "Dataset to show."
)
_SPLIT = flags.DEFINE_string("split", "train", "Split to show.")
_OUT = flags.DEFINE_string("out", None, "Where to write the PNG.", required=True)
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 64, "How many examples to show.")
_COLUMNS = flags.DEFINE_integer("columns", 8, "Columns of the grid.")
_SEED = flags.DEFINE_integer("seed", 0, "Shuffling seed (train split).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory (default: TFDS's).")


def main(argv):
  commands.check_no_arguments(argv)
  with commands.one_line_errors():
    batches = data.load(
        _DATASET.value,
        _SPLIT.value,
        batch_size=_NUM_EXAMPLES.value,
        seed=_SEED.value,
        dequantize=False,
        data_dir=_DATA_DIR.value,
    )
    batch = next(iter(batches))
  figure = figures.example_grid(
      batch["image"][batch["mask"]],
      batch["label"][batch["mask"]],
      columns=_COLUMNS.value,
      title=f"{_DATASET.value} / {_SPLIT.value}",
  )
  figure.savefig(_OUT.value, dpi=100)
  print(f"Wrote {_OUT.value}")


if __name__ == "__main__":
  commands.run(main)
