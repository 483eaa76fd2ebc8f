"""One place for each kind of knowledge: the dataset records, the run folder's names, fiRevNet48's layout."""

import inspect
import pathlib

import pytest

from configs import imagenet
from invjax import data, models
from invjax.data import catalogue, loading
from invjax.train import run_folder, validation

REPO = pathlib.Path(__file__).parent.parent


@pytest.mark.parametrize("name", list(catalogue.RECORDS))
def test_every_dataset_record_is_complete_and_consistent(name):
  dataset = catalogue.RECORDS[name]
  assert dataset.num_classes >= 2
  assert {"train", "test"} <= set(dataset.splits) and loading.HOLDOUT_SPLIT not in dataset.splits
  assert (dataset.arrays is None) != (dataset.source is None), "exactly one of arrays and source"
  reader = dataset.arrays or dataset.source
  assert list(inspect.signature(reader).parameters) == (
      ["name", "split", "data_dir", "manual_dir", "options"] if dataset.in_memory
      else ["name", "split", "seed", "data_dir", "manual_dir", "options"])
  shape = data.input_shape(name)
  assert shape and all(isinstance(size, int) and size > 0 for size in shape)
  assert dataset.image == (len(shape) == 3)
  assert data.NUM_CLASSES[name] == dataset.num_classes
  if name != "imagenet":  # its sizes are read from the prepared data
    assert all(data.num_examples(name, split) > 0 for split in dataset.splits)


@pytest.mark.parametrize("name", list(catalogue.RECORDS))
def test_only_datasets_read_into_memory_hold_out_examples(name):
  if catalogue.RECORDS[name].in_memory:
    assert data.num_examples(name, loading.HOLDOUT_SPLIT, holdout_examples=7) == 7
    assert data.num_examples(name, "train", holdout_examples=7) == data.num_examples(name, "train") - 7
  else:
    with pytest.raises(ValueError, match="cannot hold out training examples"):
      data.num_examples(name, "train", holdout_examples=7)


def test_the_datasets_runs_train_on_are_the_image_records():
  assert validation.IMAGE_DATASETS == tuple(name for name in data.DATASETS if catalogue.RECORDS[name].image)
  assert data.DATASETS == tuple(catalogue.RECORDS)
  with pytest.raises(ValueError, match="choose one of mnist, fashion_mnist"):
    catalogue.record("cifar10")


def test_an_option_a_dataset_does_not_take_is_refused_by_name():
  with pytest.raises(TypeError, match="spheres has no option\\(s\\) texture_max; its options are: .*dimension"):
    data.load("spheres", "test", batch_size=2, texture_max=3)


def test_the_run_folder_names_every_file_once():
  names = {key: value for key, value in vars(run_folder).items() if key.endswith(("_FILE", "_DIR"))}
  assert len(set(names.values())) == len(names)
  for name in names.values():
    assert name in run_folder.__doc__, f"{name} is not in run_folder's list of files"
  assert names["CONFIG_FILE"] == "config.json" and names["LOCK_FILE"] == ".lock"


def test_fi_revnet48_preset_and_imagenet_config_share_one_layout():
  preset = models.fi_revnet48_imagenet()
  config = imagenet.get_config(ice=False, argument=None).model
  for field, value in models.FI_REVNET48_LAYOUT.items():
    assert getattr(preset, field) == value == (tuple(config[field]) if isinstance(value, tuple) else config[field])
  assert sum(preset.steps_per_level) == 48
