"""ImageNet (TFDS `imagenet2012`) with the standard augmentation, for fiRevNet48.

TFDS prepares `imagenet2012` only from a manual download: a directory holding
ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (from
https://image-net.org/download-images), passed as `manual_dir` or named by the
environment variable `INVJAX_IMAGENET_DIR`. Our `test` split is TFDS's
`validation` split (the 50,000 labelled validation images).

Training examples get an Inception-style random resized crop (a window of
8%-100% of the image area with aspect ratio 3/4-4/3, decoded straight from the
JPEG), resized to `image_size` and flipped left-right with probability 1/2,
all with stateless per-example seeds. Evaluation
examples get the centre crop of side image_size / (image_size + 32) times the
shorter side, resized to `image_size` (224 -> crop 87.5%). Resized pixels are
rounded back to uint8 so that, as for MNIST, the model sees x = v / 127.5 - 1 on
the 256-level grid that dequantisation assumes.
"""

import os
import pathlib

import tensorflow as tf
import tensorflow_datasets as tfds

from invjax.data import pipeline, preprocess

MANUAL_DIR_ENV = "INVJAX_IMAGENET_DIR"
MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
TFDS_SPLITS = {"train": "train", "test": "validation"}
NUM_EXAMPLES = {"train": 1_281_167, "test": 50_000}
NUM_CLASSES = 1000
DEFAULT_IMAGE_SIZE = 224
DEFAULT_SHUFFLE_BUFFER = 10_000
CROP_PADDING = 32


def prepare(data_dir=None, manual_dir=None) -> tfds.core.DatasetBuilder:
  """The TFDS `imagenet2012` builder, prepared from the manual directory if needed.

  Raises:
    FileNotFoundError: not prepared in `data_dir` and no manual directory with
      both tar files.
  """
  builder = tfds.builder("imagenet2012", data_dir=data_dir)
  if builder.is_prepared():
    return builder
  manual = manual_dir or os.environ.get(MANUAL_DIR_ENV)
  missing = [file for file in MANUAL_FILES if not manual or not (pathlib.Path(manual) / file).is_file()]
  if missing:
    raise FileNotFoundError(
        f"imagenet2012 is not prepared in {builder.data_dir_root} and the manual directory "
        f"{manual or '(none given)'} lacks {', '.join(missing)}. Download {' and '.join(MANUAL_FILES)} "
        f"from https://image-net.org/download-images into a directory and set {MANUAL_DIR_ENV} "
        "to it (or pass manual_dir=)."
    )
  builder.download_and_prepare(
      download_dir=builder.data_dir_root / "downloads" / "imagenet2012",
      download_config=tfds.download.DownloadConfig(manual_dir=manual, try_download_gcs=False),
  )
  return builder


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
  if split not in TFDS_SPLITS:
    raise ValueError(f"imagenet has splits {tuple(TFDS_SPLITS)}, not {split!r}.")
  builder = prepare(data_dir, manual_dir)
  tfds_split = TFDS_SPLITS[split]
  decoders = {"image": tfds.decode.SkipDecoding()}
  num_examples = int(builder.as_dataset(split=tfds_split, decoders=decoders).cardinality())
  start, stop = pipeline.process_bounds(num_examples)
  examples = builder.as_dataset(
      split=f"{tfds_split}[{start}:{stop}]",
      decoders=decoders,
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

  return pipeline.Source(examples, num_examples, example_fn, batch_fn, shuffle_buffer)
