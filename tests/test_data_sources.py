"""MNIST and Fashion-MNIST through TFDS from the original files; catalogue errors."""

import concurrent.futures
import fcntl
import shutil
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from invjax import data
from invjax.data import sources, textures

from testing_utils import FASHION_MNIST_DIR, MNIST_DIR

MNIST_TRAIN_HISTOGRAM = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_HISTOGRAM = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_counts_and_label_histograms(tfds_dir):
  train_digits, train_labels = sources.load_digits("mnist", "train", data_dir=tfds_dir)
  test_digits, test_labels = sources.load_digits("mnist", "test", data_dir=tfds_dir)
  assert train_digits.shape == (60_000, 28, 28) and train_digits.dtype == np.uint8
  assert test_digits.shape == (10_000, 28, 28)
  assert np.bincount(train_labels).tolist() == MNIST_TRAIN_HISTOGRAM
  assert np.bincount(test_labels).tolist() == MNIST_TEST_HISTOGRAM
  assert data.num_examples("mnist", "train") == 60_000
  assert data.num_examples("shift_mnist/textured", "test_shifted") == 10_000


@pytest.mark.slow  # 25 s on the 2-core CPU: TFDS prepares Fashion-MNIST from its files
def test_fashion_mnist_has_its_own_download_dir(tfds_dir):
  sources.prepare("fashion_mnist", data_dir=tfds_dir, manual_dir=FASHION_MNIST_DIR)
  digits, labels = sources.load_digits("fashion_mnist", "test", data_dir=tfds_dir)
  assert digits.shape == (10_000, 28, 28)
  assert np.bincount(labels).tolist() == [1000] * 10
  mnist_digits, _ = sources.load_digits("mnist", "test", data_dir=tfds_dir)
  assert not np.array_equal(digits, mnist_digits)
  for name in ("mnist", "fashion_mnist"):
    assert (tfds_dir / "downloads" / name / "extracted").is_dir()
  assert not (tfds_dir / "downloads" / "extracted").exists()


def test_preprocessed_mnist_values(tfds_dir):
  images, labels = data.as_numpy("mnist", "test", data_dir=tfds_dir)
  digits, raw_labels = sources.load_digits("mnist", "test", data_dir=tfds_dir)
  assert images.shape == (10_000, 32, 32, 3) and images.dtype == np.float32
  np.testing.assert_array_equal(labels, raw_labels)
  assert images.min() == -1.0 and images.max() == 1.0
  np.testing.assert_array_equal(images[..., 1:], -1.0)
  raw = (images[..., 0] + 1.0) * 127.5
  np.testing.assert_allclose(raw[:, 2:30, 2:30], digits, atol=1e-4)
  np.testing.assert_array_equal(images[:, :2, :, 0], -1.0)
  np.testing.assert_array_equal(images[:, :, 30:, 0], -1.0)


def _copy_manual_files(tmp_path, skip=()):
  manual = tmp_path / "manual"
  manual.mkdir()
  for file in sources.OFFICIAL_SHA256["mnist"]:
    if file not in skip:
      shutil.copy(MNIST_DIR / file, manual / file)
  return manual


def test_corrupt_manual_file_is_named(tmp_path, monkeypatch):
  manual = _copy_manual_files(tmp_path)
  corrupt = manual / "t10k-labels-idx1-ubyte.gz"
  content = bytearray(corrupt.read_bytes())
  content[100] ^= 0xFF
  corrupt.write_bytes(bytes(content))
  with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz is corrupt.*Replace it"):
    sources.prepare("mnist", data_dir=tmp_path / "tfds", manual_dir=manual)
  monkeypatch.setenv("INVJAX_MNIST_DIR", str(manual))  # The variable is read when no argument is given.
  with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz is corrupt"):
    sources.prepare("mnist", data_dir=tmp_path / "tfds")


def test_missing_manual_file_lists_the_expected_files(tmp_path):
  manual = _copy_manual_files(tmp_path, skip=("train-images-idx3-ubyte.gz",))
  with pytest.raises(FileNotFoundError, match="lacks train-images-idx3-ubyte.gz.*INVJAX_MNIST_DIR"):
    data.load("mnist", "train", batch_size=8, data_dir=tmp_path / "tfds", manual_dir=manual)


@pytest.mark.parametrize(
    "name, split, message",
    [
        ("cifar10", "train", "Unknown dataset 'cifar10'"),
        ("shift_mnist/colour", "train", "Unknown shift_mnist variant 'colour'"),
        ("shift_mnist", "train", "Unknown shift_mnist variant ''"),
        ("mnist", "test_shifted", "Unknown split 'test_shifted' of mnist"),
        ("spheres", "validation", "Unknown split 'validation' of spheres"),
    ],
)
def test_unknown_dataset_variant_or_split(name, split, message):
  with pytest.raises(ValueError, match=message):
    data.load(name, split, batch_size=8)


def test_unknown_option():
  with pytest.raises(TypeError, match="spheres has no option.*radius.*options are: data_seed"):
    data.load("spheres", "train", batch_size=8, radius=3.0)


def test_failed_download_names_the_files_and_the_variable(tmp_path, monkeypatch):
  def offline_download(*args, **kwargs):
    raise ConnectionError("no network")  # What requests raises offline (an OSError).

  monkeypatch.delenv("INVJAX_MNIST_DIR", raising=False)
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline_download)
  with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz.*set INVJAX_MNIST_DIR"):
    sources.prepare("mnist", data_dir=tmp_path)


def test_dataset_prepared_by_another_process_meanwhile_is_read(tfds_dir, tmp_path, monkeypatch):
  """Two runs started together on a fresh machine both prepare MNIST: TFDS's final rename fails in
  the second although the first left a complete dataset, which the second then reads."""
  def prepared_by_another_process(builder, *args, **kwargs):
    shutil.copytree(tfds_dir / "mnist", tmp_path / "mnist")
    raise FileExistsError(f"Cannot rename {tmp_path}/mnist/incomplete.X: Destination {tmp_path}/mnist exists.")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", prepared_by_another_process)
  builder = sources.prepare("mnist", data_dir=tmp_path, manual_dir=MNIST_DIR)
  labels = tfds.as_numpy(builder.as_dataset(split="test", batch_size=-1))["label"]
  assert np.bincount(labels).tolist() == MNIST_TEST_HISTOGRAM


def test_a_process_that_finds_another_preparing_waits_and_reads_its_dataset(tfds_dir, tmp_path, monkeypatch,
                                                                            caplog):
  """The test workers, or two runs started together on a fresh machine: while one process prepares
  MNIST (it holds the data directory's lock), another waits, says so, and then reads that dataset
  without preparing it again."""
  sources.prepare("mnist", data_dir=tfds_dir)

  def prepared_twice(*args, **kwargs):
    raise AssertionError("MNIST was prepared again")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", prepared_twice)
  waiting_line = f"Another process is preparing mnist in {tmp_path}: waiting for it."
  with (open(tmp_path / ".mnist.lock", "w") as lock, concurrent.futures.ThreadPoolExecutor(1) as pool,
        caplog.at_level("WARNING", logger=sources.__name__)):
    fcntl.flock(lock, fcntl.LOCK_EX)
    waiter = pool.submit(sources.prepare, "mnist", data_dir=tmp_path, manual_dir=MNIST_DIR)
    deadline = time.monotonic() + 60
    while waiting_line not in caplog.messages and time.monotonic() < deadline:
      time.sleep(0.05)
    assert waiting_line in caplog.messages and not waiter.done()
    shutil.copytree(tfds_dir / "mnist", tmp_path / "mnist")  # the other process finishes
    fcntl.flock(lock, fcntl.LOCK_UN)
    builder = waiter.result(timeout=60)
  labels = tfds.as_numpy(builder.as_dataset(split="test", batch_size=-1))["label"]
  assert np.bincount(labels).tolist() == MNIST_TEST_HISTOGRAM


def test_rename_failure_without_a_prepared_dataset_is_raised(tmp_path, monkeypatch):
  def failed_rename(builder, *args, **kwargs):
    raise FileExistsError("Cannot rename: destination exists")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", failed_rename)
  with pytest.raises(FileExistsError, match="Cannot rename"):
    sources.prepare("mnist", data_dir=tmp_path, manual_dir=MNIST_DIR)


def test_unset_variable_falls_back_to_the_tfds_download_in_one_line(tmp_path, monkeypatch, caplog):
  downloads = []

  def download(builder, **kwargs):
    downloads.append(kwargs)  # No network here: record what TFDS would be asked to do.

  monkeypatch.delenv("INVJAX_MNIST_DIR", raising=False)
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", download)
  with caplog.at_level("INFO", logger="invjax.data.sources"):
    builder = sources.prepare("mnist", data_dir=tmp_path)
  assert builder.name == "mnist"
  assert downloads == [{"download_dir": tmp_path / "downloads" / "mnist"}]  # TFDS's own download, no manual_dir
  assert [record.getMessage() for record in caplog.records if record.name == sources.__name__] == [
      f"INVJAX_MNIST_DIR is unset: downloading mnist with TFDS into {tmp_path}."]


def test_dtd_without_a_folder_falls_back_to_the_tfds_download(tmp_path, monkeypatch, caplog):
  def offline_download(*args, **kwargs):
    raise ConnectionError("no network")

  monkeypatch.delenv("INVJAX_DTD_DIR", raising=False)
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline_download)
  with pytest.raises(FileNotFoundError, match="Could not download dtd.*no network.*Set INVJAX_DTD_DIR"):
    textures.load_texture_bank("train", data_dir=tmp_path)
  assert [record.getMessage() for record in caplog.records if record.name == sources.__name__] == [
      f"INVJAX_DTD_DIR is unset: downloading dtd with TFDS into {tmp_path}."]
