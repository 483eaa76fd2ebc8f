"""ImageNet pipeline on TFDS mock data (the real data needs a manual download)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from invjax import data
from invjax.data import imagenet


@pytest.fixture
def manual_dir(tmp_path):
  """A manual directory with (empty) stand-ins for the two ImageNet tars."""
  for file in imagenet.MANUAL_FILES:
    (tmp_path / file).touch()
  return tmp_path


def test_train_batches(manual_dir):
  with tfds.testing.mock_data(num_examples=10):
    batches = data.load("imagenet", "train", batch_size=4, image_size=64, manual_dir=manual_dir)
    batch = next(iter(batches))
  assert batch["image"].shape == (4, 64, 64, 3) and batch["image"].dtype == np.float32
  assert batch["image"].min() >= -1.0 and batch["image"].max() <= 1.0 + 2 / 256
  assert batch["label"].dtype == np.int32 and ((0 <= batch["label"]) & (batch["label"] < 1000)).all()
  assert batch["mask"].all()
  assert data.input_shape("imagenet", image_size=64) == (64, 64, 3)


def test_eval_batches_are_padded(manual_dir):
  with tfds.testing.mock_data(num_examples=10):
    batches = list(data.load("imagenet", "test", batch_size=4, image_size=48, manual_dir=manual_dir))
  assert [int(batch["mask"].sum()) for batch in batches] == [4, 4, 2]
  assert batches[0]["image"].shape == (4, 48, 48, 3)
  raw = (batches[0]["image"] + 1) * 127.5
  np.testing.assert_allclose(raw, np.round(raw), atol=1e-3)  # On the 256-level grid, no noise.


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


def test_missing_manual_download_says_what_to_do(tmp_path, monkeypatch):
  monkeypatch.delenv(imagenet.MANUAL_DIR_ENV, raising=False)
  with pytest.raises(FileNotFoundError, match="ILSVRC2012_img_train.tar.*INVJAX_IMAGENET_DIR"):
    data.load("imagenet", "train", batch_size=4, data_dir=tmp_path)
