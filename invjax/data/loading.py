"""The public entry points `load`, `as_numpy`, `num_examples`, `input_shape` and `splits`
of the datasets in `catalogue` (one record each).

Every entry point takes `holdout_examples` = h: the last h examples of the
training split are then held out for model selection (`invjax.train.selection`).
Split "train" is its first N - h examples, split `HOLDOUT_SPLIT` its last h, so
the two never share an example and a run that selects never trains on the
held-out ones. Only the datasets read into memory (MNIST, Fashion-MNIST,
shiftMNIST: their file order is not sorted by class; `catalogue.Dataset.in_memory`)
have a fixed last h.
"""

import os

import jax
import numpy as np

from invjax.data import catalogue, pipeline, preprocess

DATASETS = tuple(catalogue.RECORDS)
NUM_CLASSES = {name: dataset.num_classes for name, dataset in catalogue.RECORDS.items()}
HOLDOUT_SPLIT = "holdout"


def splits(name: str) -> tuple[str, ...]:
  """The splits of dataset `name`."""
  return catalogue.record(name).splits


def _check_split(name: str, split: str) -> None:
  if split not in splits(name):
    raise ValueError(f"Unknown split {split!r} of {name}; choose one of {', '.join(splits(name))}.")


def _stored_split(name: str, split: str, holdout_examples: int) -> str:
  """The split whose examples `split` reads ("train" for the held-out ones); ValueError for a bad
  split or `holdout_examples`."""
  if isinstance(holdout_examples, bool) or not isinstance(holdout_examples, int) or holdout_examples < 0:
    raise ValueError(f"holdout_examples={holdout_examples!r} must be an integer >= 0 (0: hold nothing out).")
  if split != HOLDOUT_SPLIT and not (split == "train" and holdout_examples):
    _check_split(name, split)
    return split
  if split == HOLDOUT_SPLIT and not holdout_examples:
    raise ValueError(f"Split {HOLDOUT_SPLIT!r} needs holdout_examples > 0: it is the last holdout_examples "
                     "examples of the training split.")
  dataset = catalogue.record(name)
  if not dataset.in_memory:
    raise ValueError(f"{name} cannot hold out training examples (holdout_examples={holdout_examples}): only the "
                     "MNIST-family datasets, read into memory, have a fixed set of them.")
  available = dataset.num_examples("train", {})
  if holdout_examples >= available:
    raise ValueError(f"holdout_examples={holdout_examples} must be below the {available} "
                     f"training examples of {name}.")
  return "train"


def _held_out_part(arrays: dict, split: str, holdout_examples: int) -> dict:
  """The examples of `split` among the training arrays: all but the last h, or the last h."""
  if not holdout_examples:
    return arrays
  part = slice(-holdout_examples, None) if split == HOLDOUT_SPLIT else slice(None, -holdout_examples)
  return {key: value[part] for key, value in arrays.items()}


def num_examples(name: str, split: str, holdout_examples: int = 0, **dataset_options) -> int:
  """The number of examples of a split (spheres train: examples per epoch).

  `dataset_options` are those of `load` (imagenet: also its data_dir and manual_dir).
  """
  if _stored_split(name, split, holdout_examples) != split:
    return holdout_examples
  stored = catalogue.record(name).num_examples(split, dataset_options)
  return stored - holdout_examples if split == "train" else stored


def input_shape(name: str, **dataset_options) -> tuple[int, ...]:
  """The shape of one model input of dataset `name`."""
  return catalogue.record(name).input_shape(dataset_options)


def _canvas_batch(batch):
  return {**batch, "image": preprocess.canvas_to_model_input(batch["image"])}


def _source(name, split, seed, data_dir, manual_dir, options, holdout_examples=0) -> pipeline.Source:
  dataset = catalogue.record(name)
  stored = _stored_split(name, split, holdout_examples)
  if not dataset.in_memory:
    return dataset.source(name, split, seed, data_dir, manual_dir, options)
  canvases, labels = dataset.arrays(name, stored, data_dir, manual_dir, options)
  examples, count = pipeline.from_arrays(_held_out_part({"image": canvases, "label": labels}, split, holdout_examples))
  return pipeline.Source(examples, count, batch_fn=_canvas_batch)


def load(
    name: str,
    split: str,
    *,
    batch_size: int,
    seed: int = 0,
    num_epochs: int | None = None,
    shuffle: bool | None = None,
    dequantize: bool | None = None,
    mesh: jax.sharding.Mesh | None = None,
    data_axis: str = "data",
    data_dir: str | os.PathLike | None = None,
    manual_dir: str | os.PathLike | None = None,
    drop_remainder: bool | None = None,
    holdout_examples: int = 0,
    **dataset_options,
) -> pipeline.Batches:
  """Batches of a dataset split: {"image": float32, "label": int32, "mask": bool}.

  Images are (B, 32, 32, 3) in [-1, 1] for the digit datasets,
  (B, size, size, 3) for imagenet and (B, dimension) for spheres; `mask` is
  False on padding. The data is read (and prepared, if needed) when `load`
  is called; iterating the result (any number of times) yields the batches.

  Args:
    name: one of DATASETS.
    split: one of `splits(name)`, or `HOLDOUT_SPLIT` with `holdout_examples`.
    batch_size: global batch size (a multiple of the number of processes).
    seed: seeds shuffling, augmentation, fresh spheres and dequantisation.
    num_epochs: passes over the split; None: endless for "train", 1 otherwise.
    shuffle: None shuffles "train" only.
    dequantize: add `dequantize` noise (keys from `seed` and the batch index);
      None does it for "train" of the image datasets. A training loop that
      adds noise inside its jitted step passes False.
    mesh: with a mesh, batches are jax.Arrays sharded along `data_axis`
      (`jax.make_array_from_process_local_data`); without, numpy arrays.
    data_axis: the mesh axis that splits the batch.
    data_dir: TFDS data directory (local or bucket); None: TFDS's default.
    manual_dir: manual-download directory (MNIST-family files, ImageNet tars).
    drop_remainder: None drops an incomplete final batch for "train" only;
      otherwise it is padded to `batch_size` with `mask` False.
    holdout_examples: h > 0 holds out the last h training examples: "train"
      leaves them out, `HOLDOUT_SPLIT` is them (module docstring).
    **dataset_options: shift_mnist: data_seed, dtd_dir, texture_max,
      texture_size, texture_images, texture_images_per_class; spheres: dimension,
      inner_radius, outer_radius, num_examples, data_seed; imagenet:
      image_size, shuffle_buffer.

  Raises:
    ValueError: unknown dataset, variant or split; corrupt manual file.
    FileNotFoundError: data that cannot be found or prepared.
    TypeError: an option the dataset does not take.
  """
  _stored_split(name, split, holdout_examples)
  is_train = split == "train"
  is_image_dataset = catalogue.record(name).image
  if dequantize and not is_image_dataset:
    raise ValueError(f"{name} is continuous data: dequantize must be False or None.")
  num_epochs = num_epochs if num_epochs is not None or is_train else 1
  shuffle = is_train if shuffle is None else shuffle
  drop_remainder = is_train if drop_remainder is None else drop_remainder
  dequantize = is_train and is_image_dataset if dequantize is None else dequantize
  pipeline.local_batch_size(batch_size)
  source = _source(name, split, seed, data_dir, manual_dir, dataset_options, holdout_examples)

  def make_batches():
    return pipeline.batch(
        source,
        batch_size=batch_size,
        seed=seed,
        shuffle=shuffle,
        num_epochs=num_epochs,
        drop_remainder=drop_remainder,
    ).as_numpy_iterator()

  return pipeline.Batches(
      make_batches,
      num_batches=pipeline.num_batches(source.num_examples, batch_size, num_epochs, drop_remainder),
      dequantize_seed=seed if dequantize else None,
      mesh=mesh,
      data_axis=data_axis,
  )


def as_numpy(name: str, split: str, max_examples: int = 0, **load_options) -> tuple[np.ndarray, np.ndarray]:
  """A whole split in memory, or its first `max_examples` (0: all): (images, labels), in
  order, without noise.

  Meant for small datasets or a few examples of a large one (ImageNet's 50,000
  validation images at 224x224 take 30 GB). With several processes, each gets
  its own share. `load_options` are `load`'s data_dir, manual_dir, holdout_examples and
  dataset options.
  """
  batches = load(
      name,
      split,
      batch_size=1024 * jax.process_count(),
      num_epochs=1,
      shuffle=False,
      dequantize=False,
      drop_remainder=False,
      **load_options,
  )
  images, labels, count = [], [], 0
  for batch in batches:
    images.append(batch["image"][batch["mask"]])
    labels.append(batch["label"][batch["mask"]])
    count += len(labels[-1])
    if max_examples and count >= max_examples:
      break
  end = max_examples or None
  return np.concatenate(images)[:end], np.concatenate(labels)[:end]
