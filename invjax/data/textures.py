"""Texture banks from the Describable Textures Dataset (DTD) for textured shiftMNIST.

Class k of textured shiftMNIST uses DTD category `CATEGORIES[k]`, DTD's first
ten categories in alphabetical order:

    0 banded   1 blotchy    2 braided   3 bubbly        4 bumpy
    5 chequered 6 cobwebbed 7 cracked   8 crosshatched  9 crystalline

A texture bank holds each category's images as grayscale squares of `size`
pixels (decoded as grayscale, shorter side resized to `size` with
antialiasing, centre-cropped). At the default `TEXTURE_SIZE` = 64 a 32x32 crop
shows a recognisable quarter of the texture; at size 32 the crop is the whole
image, so a bank holds a few fixed backgrounds per category. The images of a
category, in file-name order, are split into disjoint train and test sets:
every third image (positions 2, 5, 8, ...) is a test texture, the others train
textures (34 images per category give 23 train and 11 test textures).

Images come, in this order of preference, from a directory passed as `dtd_dir`
(layout `images/<category>/*.jpg`), from TFDS `dtd` when it is already prepared
in `data_dir`, from the directory named by the environment variable
`INVJAX_DTD_DIR`, or else from TFDS's own download of `dtd` into `data_dir`
(announced in one line; it needs the internet).
"""

import functools
import os
import pathlib
from collections.abc import Iterable

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from invjax.data import preprocess, sources

CATEGORIES = (
    "banded", "blotchy", "braided", "bubbly", "bumpy",
    "chequered", "cobwebbed", "cracked", "crosshatched", "crystalline",
)
TEXTURE_SIZE = 64
DTD_DIR_ENV = "INVJAX_DTD_DIR"
TEXTURE_SPLITS = ("train", "test")


def is_test_texture(position: int) -> bool:
  """Whether the image at `position` (file-name order within its category) is a test texture."""
  return position % 3 == 2


def decode_texture(jpeg: bytes, size: int = TEXTURE_SIZE) -> np.ndarray:
  """A JPEG image -> uint8 grayscale square (size, size)."""
  image = tf.io.decode_jpeg(jpeg, channels=1)
  height, width = image.shape[0], image.shape[1]
  scale = size / min(height, width)
  new_size = (max(size, round(height * scale)), max(size, round(width * scale)))
  resized = tf.image.resize(image, new_size, method="area", antialias=True)
  square = tf.image.resize_with_crop_or_pad(resized, size, size)
  return np.asarray(tf.cast(tf.round(square[..., 0]), tf.uint8))


def _folder_jpegs(dtd_dir: pathlib.Path) -> dict[str, list[tuple[str, bytes]]]:
  """{category: [(file name, JPEG bytes)]} from a folder `images/<category>/*.jpg`."""
  jpegs = {}
  for category in CATEGORIES:
    folder = dtd_dir / "images" / category
    if not folder.is_dir():
      raise FileNotFoundError(
          f"DTD folder {folder} does not exist: {dtd_dir} must be laid out as "
          f"images/<category>/*.jpg for the categories {', '.join(CATEGORIES)}."
      )
    files = sorted(folder.glob("*.jpg"))
    jpegs[category] = [(file.name, file.read_bytes()) for file in files]
  return jpegs


def _tfds_jpegs(builder: tfds.core.DatasetBuilder) -> dict[str, list[tuple[str, bytes]]]:
  """{category: [(file name, JPEG bytes)]} from a prepared TFDS `dtd` (all its splits)."""
  jpegs = {category: [] for category in CATEGORIES}
  for split in builder.info.splits:
    dataset = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
    dataset = dataset.filter(lambda example: example["label"] < len(CATEGORIES))
    for example in tfds.as_numpy(dataset):
      category = CATEGORIES[example["label"]]
      jpegs[category].append((os.path.basename(example["file_name"].decode()), example["image"]))
  return {category: sorted(files) for category, files in jpegs.items()}


def _find_jpegs(dtd_dir: str | None, data_dir: str | None) -> dict[str, list[tuple[str, bytes]]]:
  if dtd_dir:
    return _folder_jpegs(pathlib.Path(dtd_dir).expanduser())
  builder = tfds.builder("dtd", data_dir=data_dir)
  if builder.is_prepared():
    return _tfds_jpegs(builder)
  if os.environ.get(DTD_DIR_ENV):
    return _folder_jpegs(pathlib.Path(os.environ[DTD_DIR_ENV]).expanduser())
  return _tfds_jpegs(sources.download_with_tfds(
      builder,
      DTD_DIR_ENV,
      f"Set {DTD_DIR_ENV} (or pass dtd_dir=) to a directory laid out as images/<category>/*.jpg "
      f"for the categories {', '.join(CATEGORIES)}, or prepare TFDS 'dtd' in data_dir.",
  ))


def _split_bank(images: Iterable[tuple[str, bytes]], split: str) -> list[tuple[str, bytes]]:
  """The (file name, JPEG) pairs of one category (in file-name order) that belong to `split`."""
  want_test = split == "test"
  return [image for position, image in enumerate(images) if is_test_texture(position) == want_test]


def _decode_named(category: str, name: str, jpeg: bytes, size: int) -> np.ndarray:
  """`decode_texture`, with a ValueError that names the file if it is not a JPEG image."""
  try:
    return decode_texture(jpeg, size)
  except tf.errors.InvalidArgumentError as error:
    raise ValueError(f"DTD texture images/{category}/{name} cannot be decoded as a JPEG image "
                     f"({error.message.splitlines()[0]}): replace it with the original file or remove it.") from None


@functools.cache
def _load_bank_cached(split: str, size: int, dtd_dir: str | None, data_dir: str | None) -> np.ndarray:
  jpegs = _find_jpegs(dtd_dir, data_dir)
  per_category = {category: _split_bank(jpegs[category], split) for category in CATEGORIES}
  empty = [category for category, files in per_category.items() if not files]
  if empty:
    raise FileNotFoundError(
        f"DTD categories without {split} textures: {', '.join(empty)}. Every category "
        "needs at least 3 images (every third one is a test texture)."
    )
  count = min(len(files) for files in per_category.values())
  bank = np.stack([
      np.stack([_decode_named(category, name, jpeg, size) for name, jpeg in per_category[category][:count]])
      for category in CATEGORIES
  ])
  bank.flags.writeable = False
  return bank


def load_texture_bank(
    split: str,
    dtd_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    size: int = TEXTURE_SIZE,
) -> np.ndarray:
  """The texture bank of `split` ("train" or "test"): uint8 (10, n, size, size), read-only.

  `bank[k]` holds the n textures of category `CATEGORIES[k]`; n is the smallest
  per-category count of the split (categories are truncated to it). Cached
  per process.
  """
  if split not in TEXTURE_SPLITS:
    raise ValueError(f"Texture splits are {TEXTURE_SPLITS}, not {split!r}.")
  if size < preprocess.CANVAS_SIZE:
    raise ValueError(
        f"Textures are cropped to the {preprocess.CANVAS_SIZE}x{preprocess.CANVAS_SIZE} canvas, "
        f"so their size must be at least {preprocess.CANVAS_SIZE}, not {size}."
    )
  return _load_bank_cached(
      split,
      size,
      None if dtd_dir is None else os.fspath(dtd_dir),
      None if data_dir is None else os.fspath(data_dir),
  )
