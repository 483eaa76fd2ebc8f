"""ImageNet (TFDS `imagenet2012`) with the standard augmentation, for fiRevNet48.

TFDS prepares `imagenet2012` only from a manual download: a directory holding
ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (from
https://image-net.org/download-images), passed as `manual_dir` or named by the
environment variable `INVJAX_IMAGENET_DIR`. Preparation happens once, from one
machine (`experiments/prepare_imagenet.py`), into a TFDS `data_dir` that may
be a bucket (gs://...); the tars are checked first (present, complete), and a
tar that breaks during preparation stops it with a one-line error. Our `test`
split is TFDS's `validation` split (the 50,000 labelled validation images);
split sizes are read from the prepared dataset, so a small one in the same
format (`tiny_imagenet`) runs the same code.

Each process reads only its contiguous 1/P of a split (`pipeline.process_bounds`;
TFDS opens just the TFRecord files of that slice). Training examples get an
Inception-style random resized crop (a window of 8%-100% of the image area with
aspect ratio 3/4-4/3, decoded straight from the JPEG), resized to `image_size`
and flipped left-right with probability 1/2, all with stateless per-example
seeds; decoding and augmentation run in tf.data's parallel map. Evaluation
examples get the centre crop of side image_size / (image_size + 32) times the
shorter side, resized to `image_size` (224 -> crop 87.5%). Resized pixels are
rounded back to uint8 so that, as for MNIST, the model sees x = v / 127.5 - 1 on
the 256-level grid that dequantisation assumes.
"""

import os
import tarfile

import jax
import tensorflow as tf
import tensorflow_datasets as tfds

from invjax.data import pipeline, preprocess, sources

MANUAL_DIR_ENV = "INVJAX_IMAGENET_DIR"
# The sizes of the official files, in bytes (TFDS's checksums.tsv).
MANUAL_FILES = {"ILSVRC2012_img_train.tar": 147_897_477_120, "ILSVRC2012_img_val.tar": 6_744_924_160}
TFDS_SPLITS = {"train": "train", "test": "validation"}
NUM_CLASSES = 1000
DEFAULT_IMAGE_SIZE = 224
DEFAULT_SHUFFLE_BUFFER = 10_000
CROP_PADDING = 32
_TAR_BLOCK = 512
PREPARE_COMMAND = "python -m experiments.prepare_imagenet --manual_dir=DIR_WITH_THE_TARS --data_dir=DATA_DIR"


def check_manual_file(path: str) -> None:
  """Raises if `path` (local or gs://) is missing or is not a complete tar file.

  A tar file is a sequence of 512-byte blocks ending in two zero blocks, so a
  download cut short almost always has a size that is no multiple of 512 or
  a non-zero tail. Both are checked by reading the last kilobyte only.

  Raises:
    FileNotFoundError: no file at `path`.
    ValueError: the file is truncated (or not a tar file).
  """
  name = os.path.basename(path)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f"{path} is missing. Download {name} ({MANUAL_FILES[name]:,} bytes) from "
        f"https://image-net.org/download-images into {os.path.dirname(path)}.")
  size = tf.io.gfile.stat(path).length
  complete = size >= 2 * _TAR_BLOCK and size % _TAR_BLOCK == 0
  if complete:
    with tf.io.gfile.GFile(path, "rb") as file:
      file.seek(size - 2 * _TAR_BLOCK)
      complete = not any(file.read(2 * _TAR_BLOCK))
  if not complete:
    raise ValueError(
        f"{path} is truncated or not a tar file ({size:,} bytes; the official {name} has "
        f"{MANUAL_FILES[name]:,}). Download it again.")


def prepare(data_dir=None, manual_dir=None) -> tfds.core.DatasetBuilder:
  """The TFDS `imagenet2012` builder, prepared from the manual directory if needed.

  `data_dir` may be a bucket (gs://...); None or "" is TFDS's default.
  `manual_dir` (or the environment variable INVJAX_IMAGENET_DIR) holds the two
  tars; it is needed only while the dataset is not prepared. Several processes
  never prepare: one machine does, once (`experiments.prepare_imagenet`).

  Raises:
    FileNotFoundError: not prepared in `data_dir` and no manual directory, a
      tar is missing, or several processes would prepare.
    ValueError: a tar is truncated or corrupt.
  """
  builder = tfds.builder("imagenet2012", data_dir=data_dir or None)
  if builder.is_prepared():
    return builder
  manual = manual_dir or os.environ.get(MANUAL_DIR_ENV)
  where = f"imagenet2012 (version {builder.version}) is not prepared in {builder.data_dir_root}"
  if not manual or jax.process_count() > 1:
    raise FileNotFoundError(
        f"{where}. Prepare it once, from one machine: {PREPARE_COMMAND} (the tars from "
        f"https://image-net.org/download-images), then point data_dir at DATA_DIR.")
  manual = os.fspath(manual)
  for name in MANUAL_FILES:
    check_manual_file(os.path.join(manual, name))
  try:
    return sources.download_and_prepare(
        builder,
        download_dir=os.path.join(builder.data_dir_root, "downloads", "imagenet2012"),
        download_config=tfds.download.DownloadConfig(manual_dir=manual, try_download_gcs=False),
    )
  except (tarfile.TarError, EOFError, OSError) as error:
    raise ValueError(
        f"Preparing imagenet2012 from {manual} failed ({type(error).__name__}: {error}): a tar in it is "
        f"corrupt. Download {' and '.join(MANUAL_FILES)} again.") from error


def num_examples(split: str, data_dir=None, manual_dir=None) -> int:
  """The size of a split ("train" or "test") as prepared (1,281,167 and 50,000 for the real one)."""
  _check_split(split)
  return prepare(data_dir, manual_dir).info.splits[TFDS_SPLITS[split]].num_examples


def _check_split(split: str) -> None:
  if split not in TFDS_SPLITS:
    raise ValueError(f"imagenet has splits {tuple(TFDS_SPLITS)}, not {split!r}.")


def _to_uint8(image: tf.Tensor) -> tf.Tensor:
  return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def train_image(jpeg: tf.Tensor, seed: tf.Tensor, image_size: int) -> tf.Tensor:
  """Random resized crop and random flip of a JPEG -> uint8 (image_size, image_size, 3)."""
  crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.image.extract_jpeg_shape(jpeg),
      bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=(1, 1, 4)),
      seed=crop_seed,
      min_object_covered=0.1,
      aspect_ratio_range=(3 / 4, 4 / 3),
      area_range=(0.08, 1.0),
      max_attempts=10,
      use_image_if_no_bounding_boxes=True,
  )
  window = tf.stack([begin[0], begin[1], size[0], size[1]])
  image = tf.image.decode_and_crop_jpeg(jpeg, window, channels=3)
  image = tf.image.resize(image, (image_size, image_size), method="bicubic", antialias=True)
  return tf.image.stateless_random_flip_left_right(_to_uint8(image), flip_seed)


def eval_image(jpeg: tf.Tensor, image_size: int) -> tf.Tensor:
  """Centre crop of a JPEG -> uint8 (image_size, image_size, 3)."""
  shape = tf.image.extract_jpeg_shape(jpeg)
  height, width = shape[0], shape[1]
  crop = tf.cast(
      image_size / (image_size + CROP_PADDING) * tf.cast(tf.minimum(height, width), tf.float32),
      tf.int32,
  )
  window = tf.stack([(height - crop + 1) // 2, (width - crop + 1) // 2, crop, crop])
  image = tf.image.decode_and_crop_jpeg(jpeg, window, channels=3)
  image = tf.image.resize(image, (image_size, image_size), method="bicubic", antialias=True)
  return _to_uint8(image)


def source(
    split: str,
    *,
    seed: int,
    data_dir=None,
    manual_dir=None,
    image_size: int = DEFAULT_IMAGE_SIZE,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
) -> pipeline.Source:
  """The pipeline source of an ImageNet split ("train" or "test").

  Each process reads its own contiguous slice of the split; training files
  are read in a seeded random order and examples pass a shuffle buffer of
  `shuffle_buffer` examples.
  """
  _check_split(split)
  builder = prepare(data_dir, manual_dir)
  tfds_split = TFDS_SPLITS[split]
  count = builder.info.splits[tfds_split].num_examples
  start, stop = pipeline.process_bounds(count)
  examples = builder.as_dataset(
      split=f"{tfds_split}[{start}:{stop}]",
      decoders={"image": tfds.decode.SkipDecoding()},
      shuffle_files=split == "train",
      read_config=tfds.ReadConfig(shuffle_seed=seed),
  )

  def example_fn(example, example_seed):
    if split == "train":
      image = train_image(example["image"], example_seed, image_size)
    else:
      image = eval_image(example["image"], image_size)
    return {"image": image, "label": tf.cast(example["label"], tf.int32)}

  def batch_fn(batch):
    return {**batch, "image": preprocess.scale_pixels(batch["image"])}

  return pipeline.Source(examples, count, example_fn, batch_fn, shuffle_buffer)
