"""shiftMNIST (SPEC 7): MNIST plus a feature that reveals the label at train time only.

Two variants, each with four splits built from MNIST:

* `train` (MNIST train): every image carries the feature of its own label.
* `test` (MNIST test): likewise, the clean test set of the training
  distribution (textures from the held-out texture images).
* `test_shifted` (MNIST test): every image carries the feature of a uniformly
  random *other* class, drawn with the split's seed (SPEC 7's `random`).
* `test_none` (MNIST test): no feature, i.e. plain padded MNIST (SPEC 7's `none`).

Images are 32x32 uint8 canvases (the 28x28 digit in rows/columns 2..29, see
`preprocess`); everything, feature included, lives in the canvas, which becomes
channel 0 of the model input. Channels 1 and 2 stay blank in every variant, so
the input keeps the fi-RevNet MNIST format (32, 32, 3) in [-1, 1].

Binary: class k lights (raw 255) the 2x2 block in rows 0-1, columns 3k+1 and
3k+2 of the top border: ten disjoint blocks, none in the digit area.

Textured: class k's canvas is composited over a random 32x32 crop of a random
DTD texture of category `textures.CATEGORIES[k]` (0 banded, 1 blotchy, 2 braided,
3 bubbly, 4 bumpy, 5 chequered, 6 cobwebbed, 7 cracked, 8 crosshatched,
9 crystalline). The texture is the background (raw values scaled into
[0, texture_max]) and the digit is drawn on top with its intensity as opacity:
out = d + (255 - d) * b / 255 for digit value d and background b, so digit
strokes stay white and the texture shows through the dark background.

Four options set how strong a shortcut the texture is: `texture_max`,
`texture_size` (the side the texture images are resized to before the 32x32
crop; 32 makes every crop a whole image), `texture_images` ("disjoint": test
crops from held-out texture images, see `textures`; "shared": from the train
images, so the clean test set is the training distribution in every respect)
and `texture_images_per_class=n` (only the first n texture images of each
category, in file-name order; 0: all of them). With disjoint images a model can
only be fooled by a texture category it recognises in unseen images; with
shared images and a small n it is fooled by the few images it has memorised, as
the shift then changes only which category goes with which digit.

The default (`TEXTURE_DEFAULTS`, issue 16) is such a shortcut: full contrast,
one shared image per class, which a CE fi-RevNet follows on most shifted test
images. SPEC 7's setting (`SPEC7_TEXTURE`: half contrast, all images, disjoint)
is one CE hardly takes (docs/results.md).

Every split is a deterministic function of the MNIST split, the textures and
`seed`.
"""

import functools
import os
from typing import NamedTuple

import numpy as np

from invjax.data import preprocess, sources, textures

VARIANTS = ("binary", "textured")
SPLITS = ("train", "test", "test_shifted", "test_none")
NUM_CLASSES = 10
NO_FEATURE = -1
CODE_VALUE = 255
TEXTURE_MAX = 128
TEXTURE_IMAGES = ("disjoint", "shared")
SPEC7_TEXTURE = {
    "texture_max": TEXTURE_MAX,
    "texture_size": textures.TEXTURE_SIZE,
    "texture_images": "disjoint",
    "texture_images_per_class": 0,  # 0: every image of the bank
}
"""SPEC 7's textured setting, the default before issue 16: half contrast, test crops
from other texture images than the train crops. CE hardly takes it as a shortcut."""
TEXTURE_DEFAULTS = {
    "texture_max": 255,
    "texture_size": textures.TEXTURE_SIZE,
    "texture_images": "shared",
    "texture_images_per_class": 1,
}
"""The textured default (issue 16): a shortcut CE takes. Full contrast; train and
test crops come from one texture image per class, so the shift is only in which
category goes with which digit (docs/results.md, "Textured shiftMNIST")."""


class ShiftMnistSplit(NamedTuple):
  """One split: uint8 canvases (N, 32, 32), int32 labels (N,), int32 feature
  classes (N,) (the class whose feature the image carries, NO_FEATURE if none)."""

  images: np.ndarray
  labels: np.ndarray
  features: np.ndarray


def _code_masks() -> np.ndarray:
  masks = np.zeros((NUM_CLASSES, preprocess.CANVAS_SIZE, preprocess.CANVAS_SIZE), bool)
  for k in range(NUM_CLASSES):
    masks[k, 0:2, 3 * k + 1 : 3 * k + 3] = True
  return masks


CODE_MASKS = _code_masks()  # (10, 32, 32): the pixels class k lights.


def feature_classes(labels: np.ndarray, split: str, rng: np.random.Generator) -> np.ndarray:
  """The class whose feature each example of `split` carries (NO_FEATURE: none)."""
  if split in ("train", "test"):
    return labels.astype(np.int32)
  if split == "test_none":
    return np.full_like(labels, NO_FEATURE, dtype=np.int32)
  offsets = rng.integers(1, NUM_CLASSES, size=labels.shape)
  return ((labels + offsets) % NUM_CLASSES).astype(np.int32)


def add_binary_code(canvases: np.ndarray, classes: np.ndarray) -> np.ndarray:
  """Lights the code of `classes[i]` in canvas i (none where classes[i] == NO_FEATURE)."""
  lit = CODE_MASKS[classes] & (classes != NO_FEATURE)[:, None, None]
  return np.where(lit, np.uint8(CODE_VALUE), canvases)


def texture_crops(bank: np.ndarray, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """A random 32x32 crop of a random bank texture of category classes[i], for each i."""
  num_categories, num_images, size, _ = bank.shape
  crop = preprocess.CANVAS_SIZE
  windows = np.lib.stride_tricks.sliding_window_view(bank, (crop, crop), axis=(2, 3))
  images = rng.integers(0, num_images, size=classes.shape)
  rows, cols = rng.integers(0, size - crop + 1, size=(2,) + classes.shape)
  return windows[classes, images, rows, cols]


def composite(canvases: np.ndarray, backgrounds: np.ndarray, texture_max: int = TEXTURE_MAX) -> np.ndarray:
  """Draws canvases over uint8 backgrounds scaled into [0, texture_max], digit intensity as opacity."""
  digit = canvases.astype(np.uint16)
  background = backgrounds.astype(np.uint16) * texture_max // 255
  return (digit + ((255 - digit) * background + 127) // 255).astype(np.uint8)


def make_split(
    variant: str,
    split: str,
    digits: np.ndarray,
    labels: np.ndarray,
    texture_bank: np.ndarray | None,
    seed: int,
    texture_max: int = TEXTURE_MAX,
) -> ShiftMnistSplit:
  """Builds a shiftMNIST split from MNIST digits (N, 28, 28) and labels (N,).

  `texture_bank` (see `textures.load_texture_bank`) is needed by textured
  splits with a feature: train textures for `train`, test textures otherwise.
  `texture_max` is the brightest raw value of a texture (its contrast).
  """
  _check(variant, split)
  if not 0 <= texture_max <= 255:
    raise ValueError(f"texture_max is a raw pixel value in [0, 255], not {texture_max}.")
  rng = np.random.default_rng([seed, VARIANTS.index(variant), SPLITS.index(split)])
  canvases = preprocess.pad_digits(digits)
  features = feature_classes(labels, split, rng)
  if split == "test_none":
    images = canvases
  elif variant == "binary":
    images = add_binary_code(canvases, features)
  else:
    images = composite(canvases, texture_crops(texture_bank, features, rng), texture_max)
  return ShiftMnistSplit(images, labels.astype(np.int32), features)


def _first_images(bank: np.ndarray, count: int, texture_split: str) -> np.ndarray:
  """The first `count` images of each category of `bank` (10, n, size, size); all of them for 0."""
  available = bank.shape[1]
  if count > available:
    raise ValueError(
        f"texture_images_per_class={count}, but the {texture_split} texture bank has {available} images per "
        f"category: use at most {available} (0: all)"
        + (", or texture_images='shared', whose test crops come from the train images." if texture_split == "test"
           else "."))
  return bank[:, :count] if count else bank


def _check(variant: str, split: str) -> None:
  if variant not in VARIANTS:
    raise ValueError(f"Unknown shift_mnist variant {variant!r}; choose one of {VARIANTS}.")
  if split not in SPLITS:
    raise ValueError(f"shift_mnist has splits {SPLITS}, not {split!r}.")


@functools.cache
def _load_cached(
    variant, split, seed, texture_max, texture_size, texture_images, texture_images_per_class, data_dir,
    manual_dir, dtd_dir
) -> ShiftMnistSplit:
  mnist_split = "train" if split == "train" else "test"
  digits, labels = sources.load_digits("mnist", mnist_split, data_dir=data_dir, manual_dir=manual_dir)
  needs_textures = variant == "textured" and split != "test_none"
  bank = None
  if needs_textures:
    texture_split = "train" if texture_images == "shared" else mnist_split
    bank = textures.load_texture_bank(texture_split, dtd_dir=dtd_dir, data_dir=data_dir, size=texture_size)
    bank = _first_images(bank, texture_images_per_class, texture_split)
  result = make_split(variant, split, digits, labels, bank, seed, texture_max)
  for array in result:
    array.flags.writeable = False
  return result


def load(
    variant: str,
    split: str,
    *,
    data_seed: int = 0,
    texture_max: int = TEXTURE_DEFAULTS["texture_max"],
    texture_size: int = TEXTURE_DEFAULTS["texture_size"],
    texture_images: str = TEXTURE_DEFAULTS["texture_images"],
    texture_images_per_class: int = TEXTURE_DEFAULTS["texture_images_per_class"],
    data_dir: str | os.PathLike | None = None,
    manual_dir: str | os.PathLike | None = None,
    dtd_dir: str | os.PathLike | None = None,
) -> ShiftMnistSplit:
  """A whole shiftMNIST split as read-only arrays, built once per process and cached.

  Args:
    variant: "binary" or "textured".
    split: "train", "test", "test_shifted" or "test_none".
    data_seed: the dataset's seed (shifted classes, texture choice and crop).
    texture_max: textured only: the brightest raw texture value (255:
      full contrast; SPEC 7 had 128).
    texture_size: textured only: the side texture images are resized to
      before cropping (default 64; 32: each crop is a whole image).
    texture_images: textured only: "disjoint" (SPEC 7: test crops from the
      held-out texture images) or "shared" (test crops from the train images).
    texture_images_per_class: textured only: crops come from the first n
      images of each category (0: all; at most 23 train and, with "disjoint",
      11 test images).
    The texture defaults are TEXTURE_DEFAULTS; SPEC7_TEXTURE gives SPEC 7's setting.
    data_dir, manual_dir: where TFDS MNIST lives / is prepared from (`sources`).
    dtd_dir: DTD folder for the textures (`textures`).
  """
  _check(variant, split)
  if texture_images not in TEXTURE_IMAGES:
    raise ValueError(f"texture_images is one of {TEXTURE_IMAGES}, not {texture_images!r}.")
  count = texture_images_per_class
  if isinstance(count, bool) or not isinstance(count, int) or count < 0:
    raise ValueError(f"texture_images_per_class is a count of images >= 0 (0: all), not {count!r}.")
  return _load_cached(
      variant,
      split,
      data_seed,
      texture_max,
      texture_size,
      texture_images,
      texture_images_per_class,
      *(None if path is None else os.fspath(path) for path in (data_dir, manual_dir, dtd_dir)),
  )
