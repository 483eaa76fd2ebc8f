r"""Evaluating a trained digit model on an external image set.

Accepted inputs (anything else is rejected with a ValueError saying so):

* images: (N, 28, 28) digits or (N, 32, 32, 3) model-sized images (the digit
  canvas in channel 0, channels 1 and 2 blank: pixel 0, as in training), N >= 1,
  either integers in [0, 255] (raw pixels v) or floating point without
  NaN/inf, with values in [0, 1] (read as v = 255 u) or in [0, 255]: when only
  a few values exceed 1 the range is ambiguous and must be given (`pixel_range`);
* labels: (N,) integers in [0, num_classes).

They are converted to the model's input format exactly as the training data
(`invjax.data.preprocess`): a 28x28 digit is zero-padded to a 32x32 canvas in
channel 0 with two blank channels, and pixels become x = v / 127.5 - 1 in
[-1, 1]. Note the [0, 1] rule: a float image set whose values all lie in
[0, 1] is read as [0, 1] unless pixel_range="0-255" says it is (very dark) [0, 255].

The model's predictions are then summarised by the confusion matrix
M[i, j] = #{examples of true class i predicted as j} and the accuracy
trace(M) / sum(M).
"""

from typing import NamedTuple

import numpy as np

from invjax.data import preprocess

ACCEPTED_IMAGES = (
    "images of shape (N, 28, 28) or (N, 32, 32, 3), dtype uint8 or float, with values in [0, 255] or [0, 1]"
)
_DIGIT_SHAPE = (preprocess.DIGIT_SIZE, preprocess.DIGIT_SIZE)


class ExternalImages(NamedTuple):
  """External images in the model's format.

  Attributes:
    images: float32 (N, 32, 32, 3) in [-1, 1].
    labels: int32 (N,).
    detected_format: what the input was read as, e.g. "(N, 28, 28) digits, uint8 in [0, 255]".
  """

  images: np.ndarray
  labels: np.ndarray
  detected_format: str


PIXEL_RANGES = ("auto", "0-1", "0-255")


def _raw_pixels(images: np.ndarray, pixel_range: str) -> tuple[np.ndarray, str]:
  """Images as raw pixel values v in [0, 255] and a description of the detected range.

  Integer pixels must lie in [0, 255] (a cast to uint8 would wrap the others). Float
  pixels are read as [0, 1] or [0, 255] as `pixel_range` says; "auto" reads [0, 1] when
  no value exceeds 1, [0, 255] when clearly more do, and refuses to guess when only a
  few values (under 0.1%, or none above 2) exceed 1, as in [0, 1] data with overshoot.
  """
  if pixel_range not in PIXEL_RANGES:
    raise ValueError(f"pixel_range={pixel_range!r} must be one of {PIXEL_RANGES}.")
  if np.issubdtype(images.dtype, np.integer):
    low, high = int(images.min()), int(images.max())
    if low < 0 or high > 255 or (pixel_range == "0-1" and high > 1):
      limit = 1 if pixel_range == "0-1" else 255
      raise ValueError(
          f"Integer pixels span [{low}, {high}], outside [0, {limit}]; accepted are {ACCEPTED_IMAGES}. Rescale "
          "them into [0, 255] yourself (e.g. np.round(255.0 * images / images.max())): a cast wraps such values.")
    if pixel_range == "0-1":
      return images.astype(np.float32) * 255.0, f"{images.dtype} in [0, 1] (as told)"
    return images.astype(np.float32), f"{images.dtype} in [0, 255]"
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"Images have dtype {images.dtype}; accepted are {ACCEPTED_IMAGES}.")
  if not np.all(np.isfinite(images)):
    raise ValueError(f"Images contain NaN or infinite values; accepted are {ACCEPTED_IMAGES}.")
  low, high = float(images.min()), float(images.max())
  limit = {"auto": 255.0, "0-255": 255.0, "0-1": 1.0}[pixel_range]
  if low < 0.0 or high > limit:
    raise ValueError(
        f"Image values span [{low:g}, {high:g}], outside [0, {limit:g}]; accepted are {ACCEPTED_IMAGES}. "
        "Images already in [-1, 1] must be mapped back with (x + 1) * 127.5; clip overshoot with np.clip.")
  if pixel_range == "auto" and high > 1.0:
    above = int(np.sum(images > 1.0))
    if high <= 2.0 or above < 0.001 * images.size:
      raise ValueError(
          f"Image values span [{low:g}, {high:g}]: {above} of {images.size} values exceed 1, so they could be "
          "[0, 1] pixels with overshoot or dark [0, 255] pixels. Say which with pixel_range "
          "(experiments.evaluate: --pixel_range=0-1 after np.clip(images, 0, 1), or --pixel_range=0-255).")
  if pixel_range == "0-1" or (pixel_range == "auto" and high <= 1.0):
    return images.astype(np.float32) * 255.0, f"{images.dtype} in [0, 1]"
  return images.astype(np.float32), f"{images.dtype} in [0, 255]"


def _check_labels(labels: np.ndarray, num_images: int, num_classes: int) -> None:
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(
        f"Labels must be a 1-D integer array of shape (N,); got dtype {labels.dtype}, shape {labels.shape}."
    )
  if len(labels) != num_images:
    raise ValueError(f"Got {len(labels)} labels for {num_images} images; need one label per image.")
  if labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError(
        f"Labels span [{labels.min()}, {labels.max()}]; the model has {num_classes} classes, "
        f"so labels must lie in [0, {num_classes - 1}]."
    )


def prepare_external_images(images: np.ndarray, labels: np.ndarray, *, num_classes: int,
                            pixel_range: str = "auto") -> ExternalImages:
  """Checks an external image set and converts it to the model's input format (see module doc);
  `pixel_range` ("auto", "0-1" or "0-255") says how float pixels are read (`_raw_pixels`).

  Raises:
    ValueError: the images or labels are not in an accepted format; the message
      names what is accepted.
  """
  images, labels = np.asarray(images), np.asarray(labels)
  if images.ndim == 3 and images.shape[1:] == _DIGIT_SHAPE:
    layout = "(N, 28, 28) digits"
  elif images.ndim == 4 and images.shape[1:] == preprocess.DIGIT_INPUT_SHAPE:
    layout = "(N, 32, 32, 3) images"
  else:
    raise ValueError(f"Images have shape {images.shape}; accepted are {ACCEPTED_IMAGES}.")
  if len(images) == 0:
    raise ValueError(f"The image set is empty; accepted are {ACCEPTED_IMAGES} with N >= 1.")
  raw, value_range = _raw_pixels(images, pixel_range)
  _check_labels(labels, len(images), num_classes)
  if images.ndim == 4 and np.any(raw[..., 1:]):
    raise ValueError(
        f"Images of shape {images.shape} have non-blank channels 1 and 2 ({np.mean(raw[..., 1:] != 0):.1%} of "
        "their pixels are not 0); digit models were trained on the digit in channel 0 alone, with channels 1 and "
        "2 blank (pixel 0). Pass the digits as (N, 28, 28), or set images[..., 1:] = 0 (e.g. a digit copied into "
        "all three channels).")
  if images.ndim == 3:
    model_inputs = preprocess.canvas_to_model_input(preprocess.pad_digits(raw))
  else:
    model_inputs = preprocess.scale_pixels(raw)
  return ExternalImages(np.asarray(model_inputs, np.float32), labels.astype(np.int32), f"{layout}, {value_range}")


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
  """(num_classes, num_classes) counts M[true, predicted]."""
  matrix = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
  return matrix


def accuracy(confusion: np.ndarray) -> float:
  """trace(M) / sum(M) of a confusion matrix."""
  return float(np.trace(confusion) / np.sum(confusion))
