"""A grid of labelled examples, to look at what the model sees."""

import math

import matplotlib.figure
import numpy as np


def displayable(image: np.ndarray) -> tuple[np.ndarray, str | None]:
  """A model input (H, W, C) in [-1, 1] as an image in [0, 1] and its colour map.

  Inputs whose channels 1 and 2 are blank (-1 everywhere, the digit
  datasets) show channel 0 in grey; other inputs show as RGB.
  """
  if image.ndim != 3:
    raise ValueError(
        f"Expected images of shape (H, W, C), got {image.shape}: only image datasets can be shown."
    )
  unit = np.clip((image + 1.0) / 2.0, 0.0, 1.0)
  if image.shape[-1] == 1 or np.all(image[..., 1:] == -1.0):
    return unit[..., 0], "gray"
  return unit, None


def example_grid(
    images: np.ndarray, labels: np.ndarray, *, columns: int = 8, title: str | None = None
) -> matplotlib.figure.Figure:
  """A figure showing `images` (N, H, W, C) in [-1, 1] with their labels as titles."""
  rows = math.ceil(len(images) / columns)
  figure = matplotlib.figure.Figure(figsize=(1.3 * columns, 1.45 * rows + 0.4), layout="constrained")
  if title:
    figure.suptitle(title)
  axes = figure.subplots(rows, columns, squeeze=False)
  for index, axis in enumerate(axes.flat):
    axis.set_axis_off()
    if index < len(images):
      pixels, colour_map = displayable(images[index])
      axis.imshow(pixels, cmap=colour_map, vmin=0.0, vmax=1.0, interpolation="nearest")
      axis.set_title(str(labels[index]), fontsize=9)
  return figure
