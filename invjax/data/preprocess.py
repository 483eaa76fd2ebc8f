"""From raw pixels to model inputs: the fi-RevNet input format and dequantisation.

Every image dataset keeps raw pixel values v in {0, ..., 255} (uint8) until the
last step, which maps them to x = v / 127.5 - 1 in [-1, 1] (SPEC 3). Digit
datasets (MNIST, Fashion-MNIST, shiftMNIST) are stored as 32x32 single-channel
"canvases": the 28x28 digit zero-padded (raw 0) by 2 pixels on every side. The
model input puts the canvas in channel 0 and two blank channels (raw 0, that is
-1 after scaling) in channels 1 and 2: shape (32, 32, 3), d = 3072.

The TensorFlow functions here run inside tf.data pipelines; `dequantize` is pure
JAX so that a training step can call it under `jax.jit` with its own keys.
"""

import jax
import numpy as np
import tensorflow as tf

DIGIT_SIZE = 28
CANVAS_SIZE = 32
DIGIT_OFFSET = (CANVAS_SIZE - DIGIT_SIZE) // 2
DIGIT_INPUT_SHAPE = (CANVAS_SIZE, CANVAS_SIZE, 3)
DEQUANTIZATION_BIN_WIDTH = 2.0 / 256.0


def pad_digits(digits: np.ndarray) -> np.ndarray:
  """Zero-pads uint8 digits (N, 28, 28) to canvases (N, 32, 32), digit centred.

  The digit occupies rows and columns 2..29; the 2-pixel border is raw 0.
  """
  margin = (DIGIT_OFFSET, DIGIT_OFFSET)
  return np.pad(digits, ((0, 0), margin, margin))


def digit_area(canvases: np.ndarray) -> np.ndarray:
  """The central 28x28 digit area of canvases (..., 32, 32) (a view)."""
  end = DIGIT_OFFSET + DIGIT_SIZE
  return canvases[..., DIGIT_OFFSET:end, DIGIT_OFFSET:end]


def scale_pixels(raw: tf.Tensor) -> tf.Tensor:
  """Maps raw pixel values v in [0, 255] to float32 x = v / 127.5 - 1 in [-1, 1]."""
  return tf.cast(raw, tf.float32) / 127.5 - 1.0


def canvas_to_model_input(canvases: tf.Tensor) -> tf.Tensor:
  """uint8 canvases (..., 32, 32) -> float32 model inputs (..., 32, 32, 3) in [-1, 1].

  Channel 0 holds the canvas; channels 1 and 2 are blank (raw 0, i.e. -1).
  """
  blank = tf.zeros_like(canvases)
  return scale_pixels(tf.stack([canvases, blank, blank], axis=-1))


def dequantize(key: jax.Array, images: jax.Array) -> jax.Array:
  """Adds uniform dequantisation noise to images scaled to [-1, 1].

  Returns `images + U(-1/256, 1/256)`: one quantisation bin of the [-1, 1]
  scale (width w = 2/256, `DEQUANTIZATION_BIN_WIDTH`), centred on the pixel
  value. Log-likelihoods of dequantised images are densities over these bins,
  so bits/dim computations use the bin width w.

  The noise is centred so that a model's input for a pixel value x is x itself
  everywhere: training sees x + U(-w/2, w/2), whose centre is x, and
  evaluation, the analyses and metamers feed x with nothing added. (Noise in
  [0, w) would make the training distribution's centre x + w/2, and every
  consumer would have to add that offset.)

  Pure JAX: call it inside a jitted training step with the step's own key; it
  works on globally sharded arrays (the noise follows the input's sharding).

  Args:
    key: a JAX PRNG key.
    images: float array in [-1, 1], any shape.

  Returns:
    An array of the same shape, dtype (and sharding under jit) as `images`.
  """
  half_bin = DEQUANTIZATION_BIN_WIDTH / 2
  return images + jax.random.uniform(key, images.shape, images.dtype, -half_bin, half_bin)
