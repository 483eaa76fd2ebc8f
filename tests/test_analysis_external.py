"""Checks and conversion of external image sets; confusion matrices."""

import numpy as np
import pytest

from invjax.analysis import external


def _digits(dtype=np.uint8, high=255):
  digits = np.zeros((2, 28, 28), dtype)
  digits[0, 10:18, 12:16] = high
  return digits


@pytest.mark.parametrize("dtype,high,detected", [
    (np.uint8, 255, "uint8 in [0, 255]"),
    (np.float32, 255.0, "float32 in [0, 255]"),
    (np.float64, 1.0, "float64 in [0, 1]"),
])
def test_digits_become_padded_model_inputs(dtype, high, detected):
  prepared = external.prepare_external_images(_digits(dtype, high), np.array([3, 7]), num_classes=10)
  assert prepared.detected_format == f"(N, 28, 28) digits, {detected}"
  assert prepared.images.shape == (2, 32, 32, 3) and prepared.images.dtype == np.float32
  assert prepared.labels.dtype == np.int32
  # The digit sits at rows/columns 2..29 of channel 0; the border and the other channels are blank (-1).
  np.testing.assert_allclose(prepared.images[0, 12:20, 14:18, 0], 1.0)
  assert np.sum(prepared.images[..., 0] > -1.0) == 32 and np.all(prepared.images[..., 1:] == -1.0)


def test_model_sized_images_are_only_rescaled():
  images = np.zeros((3, 32, 32, 3), np.float32)
  images[..., 0] = 0.5
  prepared = external.prepare_external_images(images, np.zeros(3, np.int64), num_classes=10)
  assert prepared.detected_format == "(N, 32, 32, 3) images, float32 in [0, 1]"
  np.testing.assert_allclose(prepared.images[..., 0], 0.0, atol=1e-6)
  np.testing.assert_array_equal(prepared.images[..., 1:], -1.0)


def test_digits_copied_into_three_channels_are_refused_not_misread():
  """Issue 23: the model reads channel 0 and was trained with 1 and 2 blank; three copies of the digit
  were accepted and scored 31% instead of 98%."""
  digits = np.random.default_rng(0).integers(0, 256, (4, 32, 32), dtype=np.uint8)
  with pytest.raises(ValueError, match=r"non-blank channels 1 and 2 .*images\[\.\.\., 1:\] = 0"):
    external.prepare_external_images(np.repeat(digits[..., None], 3, -1), np.zeros(4, np.int64), num_classes=10)


@pytest.mark.parametrize("images,labels,message", [
    (np.zeros((2, 28, 28, 1), np.uint8), np.zeros(2, int), r"shape \(2, 28, 28, 1\).*accepted are images of shape"),
    (np.zeros((2, 32, 32), np.uint8), np.zeros(2, int), r"shape \(2, 32, 32\)"),
    (np.zeros((0, 28, 28), np.uint8), np.zeros(0, int), "empty"),
    (np.full((2, 28, 28), 1020, np.int64), np.zeros(2, int), r"span \[1020, 1020\], outside \[0, 255\].*wraps"),
    (np.full((2, 28, 28), np.nan, np.float32), np.zeros(2, int), "NaN"),
    (np.full((2, 28, 28), -0.5, np.float32), np.zeros(2, int), r"span \[-0.5, -0.5\].*\(x \+ 1\) \* 127.5"),
    (np.full((2, 28, 28), 300.0, np.float32), np.zeros(2, int), r"\[0, 255\] or \[0, 1\]"),
    (np.where(np.arange(2 * 28 * 28).reshape(2, 28, 28) == 5, 1.02, 0.5).astype(np.float32), np.zeros(2, int),
     r"1 of 1568 values exceed 1.*pixel_range"),
    (np.zeros((2, 28, 28), np.uint8), np.zeros(3, int), "3 labels for 2 images"),
    (np.zeros((2, 28, 28), np.uint8), np.array([0.0, 1.0]), "1-D integer array"),
    (np.zeros((2, 28, 28), np.uint8), np.array([0, 10]), r"must lie in \[0, 9\]"),
])
def test_bad_inputs_are_rejected_saying_what_is_accepted(images, labels, message):
  with pytest.raises(ValueError, match=message):
    external.prepare_external_images(images, labels, num_classes=10)


def test_confusion_matrix_and_accuracy():
  confusion = external.confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), num_classes=3)
  np.testing.assert_array_equal(confusion, [[1, 0, 0], [0, 1, 0], [0, 1, 1]])
  assert external.accuracy(confusion) == 0.75
