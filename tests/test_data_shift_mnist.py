"""shiftMNIST (SPEC 7): the feature agrees with the label on train only."""

import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from invjax import data
from invjax.data import figures, preprocess, shift_mnist, sources, textures

from testing_utils import DTD_DIR, ONE_DEVICE_XLA_FLAGS

NUM_TEST = 10_000


@pytest.fixture(scope="module")
def splits(tfds_dir):
  """{(variant, split): ShiftMnistSplit} for every variant and split, textures as SPEC 7 has them."""
  return {
      (variant, split): shift_mnist.load(variant, split, data_dir=tfds_dir, dtd_dir=DTD_DIR,
                                         **shift_mnist.SPEC7_TEXTURE)
      for variant in shift_mnist.VARIANTS
      for split in shift_mnist.SPLITS
  }


@pytest.fixture(scope="module")
def mnist_test(tfds_dir):
  return sources.load_digits("mnist", "test", data_dir=tfds_dir)


@pytest.mark.parametrize("variant", shift_mnist.VARIANTS)
def test_train_feature_agrees_with_every_label(splits, variant):
  train = splits[variant, "train"]
  assert train.images.shape == (60_000, 32, 32) and train.images.dtype == np.uint8
  np.testing.assert_array_equal(train.features, train.labels)


def test_binary_code_is_the_labels_and_spares_the_digit_area(splits, tfds_dir):
  for split in shift_mnist.SPLITS:
    mnist_split = "train" if split == "train" else "test"
    digits, _ = sources.load_digits("mnist", mnist_split, data_dir=tfds_dir)
    shifted = splits["binary", split]
    np.testing.assert_array_equal(preprocess.digit_area(shifted.images), digits)
    border = shifted.images.copy()
    preprocess.digit_area(border)[...] = 0
    has_code = shifted.features != shift_mnist.NO_FEATURE
    expected = np.where(has_code[:, None, None], shift_mnist.CODE_MASKS[shifted.features] * 255, 0)
    np.testing.assert_array_equal(border, expected)
  assert not preprocess.digit_area(shift_mnist.CODE_MASKS).any()
  assert (shift_mnist.CODE_MASKS.sum(axis=(1, 2)) == 4).all()
  assert (shift_mnist.CODE_MASKS.sum(axis=0) <= 1).all()  # Ten disjoint codes.


@pytest.mark.parametrize("variant", shift_mnist.VARIANTS)
def test_clean_test_split_has_the_training_distribution(splits, mnist_test, variant):
  clean = splits[variant, "test"]
  np.testing.assert_array_equal(clean.labels, mnist_test[1])
  np.testing.assert_array_equal(clean.features, clean.labels)


@pytest.mark.parametrize("variant", shift_mnist.VARIANTS)
def test_none_split_is_plain_mnist(splits, mnist_test, variant):
  plain = splits[variant, "test_none"]
  digits, labels = mnist_test
  np.testing.assert_array_equal(plain.images, preprocess.pad_digits(digits))
  np.testing.assert_array_equal(plain.labels, labels)
  assert (plain.features == shift_mnist.NO_FEATURE).all()


@pytest.mark.parametrize("variant", shift_mnist.VARIANTS)
def test_shifted_feature_is_a_uniform_other_class(splits, variant):
  shifted = splits[variant, "test_shifted"]
  assert shifted.images.shape == (NUM_TEST, 32, 32)
  assert (shifted.features != shifted.labels).all()
  offsets = np.bincount((shifted.features - shifted.labels) % 10, minlength=10)
  assert offsets[0] == 0
  expected = NUM_TEST / 9  # Standard deviation about 31.
  assert np.abs(offsets[1:] - expected).max() < 150
  assert np.abs(np.bincount(shifted.features, minlength=10) - NUM_TEST / 10).max() < 200


def test_textured_composites_the_feature_category(mnist_test):
  digits, labels = mnist_test
  digits, labels = digits[:500], labels[:500]
  levels = np.arange(10, dtype=np.uint8)[:, None, None, None] * 25
  constant_bank = np.broadcast_to(levels, (10, 2, 64, 64))  # Category k: constant 25 k.
  for split, texture_max in (("train", shift_mnist.TEXTURE_MAX), ("test", 255), ("test_shifted", 60)):
    shifted = shift_mnist.make_split("textured", split, digits, labels, constant_bank, seed=0, texture_max=texture_max)
    background = shifted.features * 25 * texture_max // 255
    np.testing.assert_array_equal(shifted.images[:, 0, :], np.repeat(background[:, None], 32, axis=1))
    canvases = preprocess.pad_digits(digits)
    np.testing.assert_array_equal(shifted.images[canvases == 255], 255)  # Digit on top.
    assert (shifted.images >= canvases).all()


def test_texture_max_must_be_a_pixel_value(mnist_test):
  with pytest.raises(ValueError, match=r"texture_max is a raw pixel value in \[0, 255\], not 300"):
    shift_mnist.make_split("textured", "train", *mnist_test, None, seed=0, texture_max=300)


def _matching_windows(ring, mask, bank, texture_max=shift_mnist.TEXTURE_MAX) -> int:
  """How many 32x32 windows of the bank's (contrast-scaled) images match `ring` on `mask`."""
  scaled = bank.astype(np.int32) * texture_max // 255
  windows = np.lib.stride_tricks.sliding_window_view(scaled, (32, 32), axis=(1, 2))
  return int((windows[..., mask] == ring[mask]).all(axis=-1).sum())


def test_textured_train_and_test_textures_are_disjoint(splits):
  train_bank = textures.load_texture_bank("train", dtd_dir=DTD_DIR)
  test_bank = textures.load_texture_bank("test", dtd_dir=DTD_DIR)
  assert train_bank.shape == (10, 23, 64, 64) and test_bank.shape == (10, 11, 64, 64)
  border = np.ones((32, 32), bool)
  preprocess.digit_area(border)[...] = False
  for split, own, other in (("train", train_bank, test_bank), ("test", test_bank, train_bank),
                            ("test_shifted", test_bank, train_bank)):
    shifted = splits["textured", split]
    for index in range(3):
      ring, category = shifted.images[index], shifted.features[index]
      assert _matching_windows(ring, border, own[category]) >= 1
      assert _matching_windows(ring, border, other[category]) == 0


def test_shared_whole_image_textures_are_train_images(tfds_dir):
  options = dict(texture_max=255, texture_size=32, texture_images="shared")
  train_bank = textures.load_texture_bank("train", dtd_dir=DTD_DIR, size=32)
  test_bank = textures.load_texture_bank("test", dtd_dir=DTD_DIR, size=32)
  assert train_bank.shape == (10, 23, 32, 32)
  border = np.ones((32, 32), bool)
  preprocess.digit_area(border)[...] = False
  for split in ("test", "test_shifted"):
    shifted = shift_mnist.load("textured", split, data_dir=tfds_dir, dtd_dir=DTD_DIR, **options)
    for index in range(3):
      ring, category = shifted.images[index], shifted.features[index]
      assert _matching_windows(ring, border, train_bank[category], 255) >= 1
      assert _matching_windows(ring, border, test_bank[category], 255) == 0


@pytest.mark.parametrize("options", [dict(texture_max=255, texture_size=32, texture_images="shared",
                                          texture_images_per_class=2), {}], ids=["two_whole_images", "default"])
def test_few_shared_texture_images_serve_train_and_test(tfds_dir, options):
  settings = {**shift_mnist.TEXTURE_DEFAULTS, **options}
  count = settings["texture_images_per_class"]
  train_bank = textures.load_texture_bank("train", dtd_dir=DTD_DIR, size=settings["texture_size"])
  border = np.ones((32, 32), bool)
  preprocess.digit_area(border)[...] = False
  for split in ("train", "test", "test_shifted"):
    shifted = shift_mnist.load("textured", split, data_dir=tfds_dir, dtd_dir=DTD_DIR, **options)
    for index in range(5):
      ring, category = shifted.images[index], shifted.features[index]
      assert _matching_windows(ring, border, train_bank[category, :count], 255) >= 1
      assert _matching_windows(ring, border, train_bank[category, count:], 255) == 0


def test_more_texture_images_than_the_bank_holds_are_refused(tfds_dir):
  load = lambda **options: shift_mnist.load("textured", "test", data_dir=tfds_dir, dtd_dir=DTD_DIR, **options)
  with pytest.raises(ValueError, match=r"the test texture bank has 11 images per category: use at most 11 "
                                       r"\(0: all\), or texture_images='shared'"):
    load(texture_images="disjoint", texture_images_per_class=12)
  with pytest.raises(ValueError, match="texture_images_per_class is a count of images >= 0"):
    load(texture_images_per_class=-1)
  assert load(texture_images="shared", texture_images_per_class=23).images.shape == (NUM_TEST, 32, 32)


def test_bad_texture_options_say_what_is_allowed(tfds_dir):
  with pytest.raises(ValueError, match=r"texture_images is one of \('disjoint', 'shared'\), not 'same'"):
    shift_mnist.load("textured", "test", data_dir=tfds_dir, dtd_dir=DTD_DIR, texture_images="same")
  with pytest.raises(ValueError, match="size must be at least 32, not 16"):
    shift_mnist.load("textured", "test", data_dir=tfds_dir, dtd_dir=DTD_DIR, texture_size=16)


def test_same_seed_same_data(mnist_test):
  digits, labels = mnist_test
  bank = textures.load_texture_bank("test", dtd_dir=DTD_DIR)
  for variant in shift_mnist.VARIANTS:
    first = shift_mnist.make_split(variant, "test_shifted", digits, labels, bank, seed=7)
    again = shift_mnist.make_split(variant, "test_shifted", digits, labels, bank, seed=7)
    other = shift_mnist.make_split(variant, "test_shifted", digits, labels, bank, seed=8)
    np.testing.assert_array_equal(first.images, again.images)
    assert not np.array_equal(first.features, other.features)


def test_load_batches_and_options(tfds_dir):
  batches = data.load(
      "shift_mnist/textured", "test_shifted", batch_size=10, data_dir=tfds_dir, dtd_dir=DTD_DIR
  )
  batch = next(iter(batches))
  assert batch["image"].shape == (10, 32, 32, 3)
  assert -1.0 <= batch["image"].min() and batch["image"].max() <= 1.0
  np.testing.assert_array_equal(batch["image"][..., 1:], -1.0)
  with pytest.raises(ValueError, match="Unknown split 'test_shifted' of fashion_mnist"):
    data.load("fashion_mnist", "test_shifted", batch_size=10)


def test_missing_dtd_folder_says_what_to_do(tmp_path, tfds_dir):
  with pytest.raises(FileNotFoundError, match="images/<category>/\\*.jpg"):
    shift_mnist.load("textured", "train", data_dir=tfds_dir, dtd_dir=tmp_path)


@pytest.mark.slow
def test_show_data_writes_a_png(tmp_path, tfds_dir):
  """As a command, in its own process: experiments modules define absl flags at import (two of
  them define --out), so importing one into a test worker that imported another fails."""
  import subprocess
  import sys

  out = tmp_path / "grid.png"
  finished = subprocess.run(
      [sys.executable, "-m", "experiments.show_data", "--dataset=shift_mnist/binary", "--split=test_shifted",
       f"--out={out}", f"--data_dir={tfds_dir}", "--num_examples=16"],
      cwd=pathlib.Path(__file__).resolve().parents[1], env={**os.environ, "XLA_FLAGS": ONE_DEVICE_XLA_FLAGS},
      capture_output=True, text=True, timeout=300)
  assert finished.returncode == 0, finished.stderr[-2000:]
  assert out.read_bytes().startswith(b"\x89PNG")
  with pytest.raises(ValueError, match="only image datasets"):
    figures.example_grid(np.zeros((2, 100)), np.zeros(2, int))


@pytest.mark.slow
def test_show_data_without_textures_ends_in_one_line(tmp_path, tfds_dir):
  """Issue 23: the message was good but came with a full traceback."""
  import subprocess
  import sys

  environment = {**os.environ, "INVJAX_DTD_DIR": str(tmp_path / "no_dtd"), "XLA_FLAGS": ONE_DEVICE_XLA_FLAGS}
  finished = subprocess.run(
      [sys.executable, "-m", "experiments.show_data", "--dataset=shift_mnist/textured", f"--out={tmp_path / 'g.png'}",
       f"--data_dir={tfds_dir}"], cwd=pathlib.Path(__file__).resolve().parents[1], env=environment,
      capture_output=True, text=True, timeout=300)
  assert finished.returncode == 1 and "Traceback" not in finished.stderr
  assert finished.stderr.splitlines()[-1].startswith("Error: DTD folder") and not (tmp_path / "g.png").exists()


def test_a_texture_file_that_is_not_an_image_is_named(tmp_path):
  """Issue 23: TensorFlow's DecodeJpeg error named no file."""
  jpeg = tf.io.encode_jpeg(np.full((40, 40, 1), 128, np.uint8)).numpy()
  for category in textures.CATEGORIES:
    folder = tmp_path / "images" / category
    folder.mkdir(parents=True)
    for index in range(3):
      (folder / f"{category}_{index}.jpg").write_bytes(jpeg)
  (tmp_path / "images" / textures.CATEGORIES[1] / f"{textures.CATEGORIES[1]}_0.jpg").write_text("not an image")
  with pytest.raises(ValueError, match=f"DTD texture images/{textures.CATEGORIES[1]}/{textures.CATEGORIES[1]}_0.jpg "
                                       "cannot be decoded as a JPEG image"):
    textures.load_texture_bank("train", dtd_dir=tmp_path)
