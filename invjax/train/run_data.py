"""The data calls of a run: the options every `data` call passes, and ordered evaluation passes.

The training loop's evaluations and the selection's measurement read the same splits with the
same options (the held-out count included, so "train" never holds the held-out examples).
"""

from invjax import data


def data_options(config) -> dict:
  """The options every `data` call of a run passes: its dataset options and the held-out count."""
  return {**config.dataset_options, "holdout_examples": config.selection.holdout_examples}


def eval_batches(config, mesh, split: str):
  """One ordered pass over `split` in evaluation batches (the last one padded, see its "mask")."""
  return data.load(config.dataset, split, batch_size=config.eval_batch_size, mesh=mesh, num_epochs=1,
                   shuffle=False, dequantize=False, drop_remainder=False, **data_options(config))
