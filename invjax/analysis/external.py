r"""Evaluating a trained digit model on an external image set.

Accepted inputs (anything else is rejected with a ValueError saying so):

* images: (N, 28, 28) digits or (N, 32, 32, 3) model-sized images, N >= 1,
  either uint8 (raw pixels v in {0, ..., 255}) or floating point without
  NaN/inf, with values in [0, 1] (read as v = 255 u) or, when some value
  exceeds 1, in [0, 255];
* labels: (N,) integers in [0, num_classes).

They are converted to the model's input format exactly as the training data
(`invjax.data.preprocess`): a 28x28 digit is zero-padded to a 32x32 canvas in
channel 0 with two blank channels, and pixels become x = v / 127.5 - 1 in
[-1, 1]. Note the [0, 1] rule: a float image set whose values all lie in
[0, 1] is read as [0, 1] even if it was meant as (very dark) [0, 255].

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


def _raw_pixels(images: np.ndarray) -> tuple[np.ndarray, str]:
  """Images as raw pixel values v in [0, 255] and a description of the detected range."""
  if images.dtype == np.uint8:
    return images, "uint8 in [0, 255]"
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(
        f"Images have dtype {images.dtype}; accepted are {ACCEPTED_IMAGES}. "
        "Convert integer pixels with .astype(np.uint8)."
    )
  if not np.all(np.isfinite(images)):
    raise ValueError(f"Images contain NaN or infinite values; accepted are {ACCEPTED_IMAGES}.")
  low, high = float(images.min()), float(images.max())
  if low < 0.0 or high > 255.0:
    raise ValueError(
        f"Image values span [{low:g}, {high:g}]; accepted are {ACCEPTED_IMAGES}. "
        "Images already in [-1, 1] must be mapped back with (x + 1) * 127.5."
    )
  if high <= 1.0:
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


def prepare_external_images(images: np.ndarray, labels: np.ndarray, *, num_classes: int) -> ExternalImages:
  """Checks an external image set and converts it to the model's input format (see module doc).

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
  raw, value_range = _raw_pixels(images)
  _check_labels(labels, len(images), num_classes)
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
