"""ImageNet data: the real TFDS preparation on files of the real layout, the
pipeline on its output, and clear errors for bad input."""

import os
import tarfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import imagenet_ice
from invjax import data, train
from invjax.data import imagenet, tiny_imagenet


def test_tiny_imagenet_has_the_manual_layout_and_tfds_prepares_it(tiny_imagenet_dirs):
  manual, data_dir = tiny_imagenet_dirs
  with tarfile.open(manual / tiny_imagenet.TRAIN_TAR) as train_tar:
    members = train_tar.getnames()
    with tarfile.open(fileobj=train_tar.extractfile(members[0])) as class_tar:
      inner = class_tar.getnames()
  synsets = [member.removesuffix(".tar") for member in members]
  assert all(member.endswith(".tar") for member in members) and inner[0].startswith(synsets[0] + "_")
  with tarfile.open(manual / tiny_imagenet.VALIDATION_TAR) as validation_tar:
    assert validation_tar.getnames()[0] == "ILSVRC2012_val_00000001.JPEG"

  builder = imagenet.prepare(data_dir)  # prepared: needs no manual directory
  names = builder.info.features["label"].names
  assert data.num_examples("imagenet", "train", data_dir=data_dir) == 6 * len(synsets) == 60
  validation = list(tfds.as_numpy(builder.as_dataset(split="validation")))
  assert len(validation) == 10
  truth = dict(zip(sorted(f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 11)),
                   tiny_imagenet.validation_synsets(10), strict=False))
  assert {example["file_name"].decode(): names[example["label"]] for example in validation} == truth
  train_labels = {names[example["label"]] for example in tfds.as_numpy(builder.as_dataset(split="train"))}
  assert train_labels == set(synsets) == set(truth.values())


def test_train_and_test_batches(tiny_imagenet_dirs):
  _, data_dir = tiny_imagenet_dirs
  batch = next(iter(data.load("imagenet", "train", batch_size=8, image_size=32, data_dir=data_dir)))
  assert batch["image"].shape == (8, 32, 32, 3) and batch["image"].dtype == np.float32
  assert batch["image"].min() >= -1.0 - 1 / 256 and batch["image"].max() <= 1.0 + 1 / 256  # centred noise
  assert batch["label"].dtype == np.int32 and batch["mask"].all()
  batches = list(data.load("imagenet", "test", batch_size=4, image_size=48, data_dir=data_dir))
  assert [int(b["mask"].sum()) for b in batches] == [4, 4, 2]
  raw = (batches[0]["image"] + 1) * 127.5
  np.testing.assert_allclose(raw, np.round(raw), atol=1e-3)  # on the 256-level grid, no noise
  images, labels = data.as_numpy("imagenet", "test", max_examples=3, image_size=48, data_dir=data_dir)
  assert images.shape == (3, 48, 48, 3) and np.array_equal(labels, batches[0]["label"][:3])


def test_augmentation_is_seeded_and_eval_is_a_centre_crop():
  rng = np.random.default_rng(0)
  jpeg = tf.io.encode_jpeg(rng.integers(0, 256, (120, 90, 3), dtype=np.uint8))
  seed = tf.constant([1, 2], tf.int64)
  first = imagenet.train_image(jpeg, seed, 32)
  assert first.shape == (32, 32, 3) and first.dtype == tf.uint8
  np.testing.assert_array_equal(first, imagenet.train_image(jpeg, seed, 32))
  assert not np.array_equal(first, imagenet.train_image(jpeg, tf.constant([3, 4], tf.int64), 32))
  flat = tf.io.encode_jpeg(np.full((120, 90, 3), 77, np.uint8))
  np.testing.assert_allclose(imagenet.eval_image(flat, 32), 77, atol=2)


def _copy_with(source, target, train_bytes: bytes):
  target.mkdir()
  (target / tiny_imagenet.TRAIN_TAR).write_bytes(train_bytes)
  (target / tiny_imagenet.VALIDATION_TAR).write_bytes((source / tiny_imagenet.VALIDATION_TAR).read_bytes())
  return target


def test_bad_manual_downloads_say_what_to_do(tiny_imagenet_dirs, tmp_path):
  manual, _ = tiny_imagenet_dirs
  train_bytes = (manual / tiny_imagenet.TRAIN_TAR).read_bytes()
  missing = tmp_path / "missing"
  missing.mkdir()
  with pytest.raises(FileNotFoundError, match=r"ILSVRC2012_img_train.tar is missing. Download"):
    imagenet.prepare(tmp_path / "tfds_1", missing)
  truncated = _copy_with(manual, tmp_path / "truncated", train_bytes[: len(train_bytes) // 2 + 100])
  with pytest.raises(ValueError, match=r"ILSVRC2012_img_train.tar is truncated .* Download it again"):
    imagenet.prepare(tmp_path / "tfds_2", truncated)
  # Cut at a block boundary and closed with zero blocks: only reading the members finds it.
  cut = _copy_with(manual, tmp_path / "cut", train_bytes[: 100 * 512] + bytes(1024))
  with pytest.raises(ValueError, match=r"failed \(ReadError.*corrupt"):
    imagenet.prepare(tmp_path / "tfds_3", cut)
  assert not os.path.exists(tmp_path / "tfds_3" / "imagenet2012" / "5.1.0")


def test_a_data_dir_without_the_dataset_says_how_to_prepare_it(tmp_path, monkeypatch):
  monkeypatch.delenv(imagenet.MANUAL_DIR_ENV, raising=False)
  with pytest.raises(FileNotFoundError, match=r"not prepared in .*experiments.prepare_imagenet"):
    data.load("imagenet", "train", batch_size=4, data_dir=tmp_path)


def test_an_image_size_that_the_levels_do_not_divide_is_rejected():
  config = imagenet_ice.get_config("tiny")
  config.dataset_options.image_size = 40
  with pytest.raises(ValueError, match=r"multiples of 2\*\*5 = 32 .*image_size"):
    train.validate(config, num_devices=1)
  config.dataset_options.image_size = 64
  train.validate(config, num_devices=1)
