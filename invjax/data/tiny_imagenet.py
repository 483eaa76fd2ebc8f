"""A tiny ImageNet in the exact layout of the manual download, for tests and CI.

The real manual download is two tar files that TFDS's `imagenet2012` builder
reads as they are:

* ILSVRC2012_img_train.tar: one member `<synset>.tar` per class (e.g.
  n01751748.tar), itself a tar of JPEGs named `<synset>_<number>.JPEG`; TFDS
  takes the label from the member's name;
* ILSVRC2012_img_val.tar: JPEGs named ILSVRC2012_val_00000001.JPEG, ...;
  TFDS labels them with the synsets of its shipped validation_labels.txt, line
  i for the i-th file name in sorted order.

`write` builds both for a handful of images: the validation tar holds the
first `num_validation` file names of the real validation set, so every file
gets its true label, and the training tar one inner tar for each of the
classes those labels name. Preparing it runs TFDS's real preparation code
offline (`imagenet.prepare`), reading the same members, labels and JPEG
headers as on the 155 GB original.

The pictures are noise over a class colour (hue spread evenly over the
classes), so that a small model can learn the classes from a few examples
and after Inception crops; image sizes vary, and one picture is greyscale as
some ImageNet JPEGs are. Real ImageNet JPEGs are about 400x350 pixels: pass
`image_sizes=(300, 500)` to measure the input pipeline on files of that size.
"""

import colorsys
import dataclasses
import io
import os
import pathlib
import tarfile

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VALIDATION_TAR = "ILSVRC2012_img_val.tar"
_VALIDATION_LABELS = "datasets/imagenet2012/validation_labels.txt"


@dataclasses.dataclass(frozen=True)
class TinyImagenet:
  """What `write` wrote: the synsets of its classes (in the order of first use)
  and the number of training and validation images."""

  directory: pathlib.Path
  synsets: tuple[str, ...]
  num_train: int
  num_validation: int


def validation_synsets(count: int) -> list[str]:
  """The synsets of the first `count` validation images, from TFDS's own label file."""
  lines = tfds.core.tfds_path(_VALIDATION_LABELS).read_text().split()
  return lines[:count]


def _picture(rng: np.random.Generator, hue: float, sizes: tuple[int, int], grey: bool) -> bytes:
  """JPEG bytes of a random-size picture: noise around the colour of `hue`."""
  height, width = rng.integers(sizes[0], sizes[1] + 1, size=2)
  colour = 255 * np.asarray(colorsys.hsv_to_rgb(hue, 0.8, 0.85))
  pixels = colour + rng.normal(0, 25, (height, width, 3))
  image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
  buffer = io.BytesIO()
  (image.convert("L") if grey else image).save(buffer, format="JPEG", quality=90)
  return buffer.getvalue()


def _add(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
  info = tarfile.TarInfo(name)
  info.size = len(payload)
  archive.addfile(info, io.BytesIO(payload))


def write(
    directory: str | os.PathLike,
    *,
    num_validation: int = 10,
    train_per_class: int = 6,
    image_sizes: tuple[int, int] = (40, 80),
    seed: int = 0,
) -> TinyImagenet:
  """Writes ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar into `directory`.

  Args:
    directory: the manual directory to create (or fill).
    num_validation: validation images ILSVRC2012_val_00000001.JPEG onward.
    train_per_class: training images per class.
    image_sizes: smallest and largest height or width of a picture.
    seed: seeds the pictures.
  """
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  labels = validation_synsets(num_validation)
  synsets = tuple(dict.fromkeys(labels))
  hues = {synset: index / len(synsets) for index, synset in enumerate(synsets)}

  with tarfile.open(directory / TRAIN_TAR, "w") as train_tar:
    for index, synset in enumerate(synsets):
      inner = io.BytesIO()
      with tarfile.open(fileobj=inner, mode="w") as class_tar:
        for number in range(1, train_per_class + 1):
          grey = index == 0 and number == 1
          _add(class_tar, f"{synset}_{number}.JPEG", _picture(rng, hues[synset], image_sizes, grey))
      _add(train_tar, f"{synset}.tar", inner.getvalue())

  with tarfile.open(directory / VALIDATION_TAR, "w") as validation_tar:
    for number, synset in enumerate(labels, start=1):
      _add(validation_tar, f"ILSVRC2012_val_{number:08d}.JPEG", _picture(rng, hues[synset], image_sizes, False))

  return TinyImagenet(directory, synsets, len(synsets) * train_per_class, num_validation)
