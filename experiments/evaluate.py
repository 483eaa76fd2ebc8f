r"""Accuracy and confusion matrix of a trained digit model on an external image set.

    python -m experiments.evaluate --workdir=RUN --images=IMAGES.npy --labels=LABELS.npy

IMAGES.npy: (N, 28, 28) digits or (N, 32, 32, 3) model-sized images, integers
in [0, 255] or floats in [0, 255] or [0, 1] (--pixel_range says which when the
values leave it ambiguous); LABELS.npy: (N,) integers. The files are checked and
converted like the training data (`invjax.analysis.external`); the detected
format is printed. With --out, the results are also written as JSON. Bad input
ends with a one-line error and exit status 1 (`experiments.commands`).
"""

import json
import os

import jax
import numpy as np
from absl import flags

from experiments import commands
from invjax import data, train
from invjax.analysis import batching, external, features

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder of the trained model (fi-RevNet or CNN).")
_IMAGES = flags.DEFINE_string("images", None, "A .npy file of images.")
_LABELS = flags.DEFINE_string("labels", None, "A .npy file of integer labels.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Images per forward pass.")
_OUT = flags.DEFINE_string("out", None, "Optional JSON file for accuracy and confusion matrix.")
_PIXEL_RANGE = flags.DEFINE_enum("pixel_range", "auto", external.PIXEL_RANGES,
                                 "How float pixels are read: auto (refuses ambiguous sets), 0-1 or 0-255.")
flags.mark_flags_as_required(["workdir", "images", "labels"])


def check_flags() -> None:
  """Raises a ValueError for the first bad flag, before any work."""
  if _BATCH_SIZE.value < 1:
    raise ValueError(f"--batch_size={_BATCH_SIZE.value} must be >= 1.")
  for name, path in (("images", _IMAGES.value), ("labels", _LABELS.value)):
    if not os.path.isfile(path):
      raise FileNotFoundError(f"--{name}={path} is not a file: pass a .npy file saved with numpy.save.")
  if _OUT.value:
    folder = os.path.dirname(os.path.abspath(_OUT.value))
    if os.path.isdir(_OUT.value) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
      raise ValueError(f"--out={_OUT.value} cannot be written: pass a file path in an existing, writable folder.")


def _load_array(path: str, what: str) -> np.ndarray:
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError) as error:
    raise ValueError(
        f"Cannot read {what} from {path} ({error}); save them with numpy.save as a numeric array."
    ) from error


def _format_confusion(confusion: np.ndarray) -> str:
  classes = range(len(confusion))
  width = max(5, len(str(confusion.max())) + 1)
  lines = ["true \\ predicted".ljust(17) + "".join(f"{c:>{width}}" for c in classes)]
  lines += [f"{c:>16} " + "".join(f"{n:>{width}}" for n in row) for c, row in zip(classes, confusion, strict=True)]
  return "\n".join(lines)


def main(argv):
  commands.check_no_arguments(argv)
  with commands.one_line_errors():
    check_flags()
    run = train.load_run(_WORKDIR.value)
    images = _load_array(_IMAGES.value, "images")
    labels = _load_array(_LABELS.value, "labels")
    prepared = external.prepare_external_images(images, labels, num_classes=run.config.num_classes,
                                                pixel_range=_PIXEL_RANGE.value)
    model_shape = tuple(data.input_shape(run.config.dataset, **run.config.dataset_options))
    if prepared.images.shape[1:] != model_shape:
      raise ValueError(f"{_WORKDIR.value} takes inputs of shape {model_shape}; external images are for digit models.")
  print(f"Detected {prepared.detected_format}; {len(prepared.images)} images.")

  logits = jax.jit(features.logits_function(run.model))
  predictions = batching.map_in_batches(
      lambda x: np.argmax(logits(run.variables, x), axis=-1),
      prepared.images,
      batch_size=_BATCH_SIZE.value,
      report=lambda done, total: print(f"  classified {done}/{total}"),
  )
  confusion = external.confusion_matrix(predictions, prepared.labels, run.config.num_classes)
  accuracy = external.accuracy(confusion)
  print(f"Accuracy: {accuracy:.4f} ({np.trace(confusion)}/{confusion.sum()}); error {1 - accuracy:.4f}")
  print("Confusion matrix (rows: true class, columns: predicted class):")
  print(_format_confusion(confusion))
  if _OUT.value:
    with open(_OUT.value, "w") as file:
      json.dump({"detected_format": prepared.detected_format, "accuracy": accuracy,
                 "confusion_matrix": confusion.tolist()}, file, indent=2)
    print(f"Wrote {_OUT.value}")


if __name__ == "__main__":
  commands.run(main)
