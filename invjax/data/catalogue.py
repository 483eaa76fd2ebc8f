"""The datasets invjax knows, one record each: classes, splits and their sizes, input shape, where
the examples come from and which options they take.

`loading` (`load`, `num_examples`, `input_shape`, `splits`) and the config checks
(`train.validation`) read these records and nothing else about a dataset. Adding a
dataset is one entry in `RECORDS` plus its tests (`tests/test_structure.py`
checks that every record is complete and consistent).

A dataset read into memory whole (`arrays`: canvases and labels of a stored split,
in a fixed order) can hold out its last training examples for model selection;
one that streams (`source`: a `pipeline.Source`) cannot. Each record's options are
the keyword-only parameters of the function it reads with (`call_with_options`
rejects any other).
"""

import dataclasses
import inspect
from collections.abc import Callable

from invjax.data import imagenet, pipeline, preprocess, shift_mnist, sources, spheres


@dataclasses.dataclass(frozen=True)
class Dataset:
  """One dataset: exactly one of `arrays` (read into memory) and `source` (streamed) is given.

  num_examples(split, options): examples of a stored split (before any are held out).
  input_shape(options): the shape of one model input.
  arrays(name, split, data_dir, manual_dir, options) -> (canvases uint8 (N, 40, 40), labels).
  source(name, split, seed, data_dir, manual_dir, options) -> pipeline.Source.
  image: pixels, which training dequantises and `train.validation` accepts (not continuous vectors).
  """

  num_classes: int
  splits: tuple[str, ...]
  num_examples: Callable[[str, dict], int]
  input_shape: Callable[[dict], tuple[int, ...]]
  arrays: Callable | None = None
  source: Callable[..., pipeline.Source] | None = None
  image: bool = True

  @property
  def in_memory(self) -> bool:
    """Read into memory in a fixed order, so its last training examples can be held out."""
    return self.arrays is not None


def call_with_options(name: str, function: Callable, options: dict, *args, **general):
  """Calls `function(*args, **general, **options)`, rejecting options it does not take."""
  accepted = {
      parameter.name
      for parameter in inspect.signature(function).parameters.values()
      if parameter.kind is parameter.KEYWORD_ONLY
  } - set(general)
  unknown = set(options) - accepted
  if unknown:
    raise TypeError(
        f"{name} has no option(s) {', '.join(sorted(unknown))}; "
        f"its options are: {', '.join(sorted(accepted)) or 'none'}."
    )
  return function(*args, **general, **options)


def _digit_arrays(name, split, data_dir, manual_dir, options):
  digits, labels = call_with_options(
      name, sources.load_digits, options, name, split, data_dir=data_dir, manual_dir=manual_dir
  )
  return preprocess.pad_digits(digits), labels


def _shift_mnist_arrays(name, split, data_dir, manual_dir, options):
  variant = name.partition("/")[2]
  canvases, labels, _ = call_with_options(
      name, shift_mnist.load, options, variant, split, data_dir=data_dir, manual_dir=manual_dir
  )
  return canvases, labels


def _spheres_source(name, split, seed, data_dir, manual_dir, options):
  return call_with_options(name, spheres.source, options, split)


def _imagenet_source(name, split, seed, data_dir, manual_dir, options):
  return call_with_options(name, imagenet.source, options, split, seed=seed, data_dir=data_dir, manual_dir=manual_dir)


DIGIT_NUM_EXAMPLES = {"train": 60_000, "test": 10_000}


def _digit_num_examples(split: str, options: dict) -> int:
  """MNIST-sized splits: 60,000 training examples, 10,000 in every other split."""
  return DIGIT_NUM_EXAMPLES["train" if split == "train" else "test"]


def _digit_input_shape(options: dict) -> tuple[int, ...]:
  return preprocess.DIGIT_INPUT_SHAPE


_DIGITS = dict(num_classes=10, splits=("train", "test"), num_examples=_digit_num_examples,
               input_shape=_digit_input_shape, arrays=_digit_arrays)
_SHIFT_MNIST = dict(num_classes=shift_mnist.NUM_CLASSES, splits=shift_mnist.SPLITS, num_examples=_digit_num_examples,
                    input_shape=_digit_input_shape, arrays=_shift_mnist_arrays)

RECORDS = {
    "mnist": Dataset(**_DIGITS),
    "fashion_mnist": Dataset(**_DIGITS),
    "shift_mnist/binary": Dataset(**_SHIFT_MNIST),
    "shift_mnist/textured": Dataset(**_SHIFT_MNIST),
    "spheres": Dataset(
        num_classes=2, splits=spheres.SPLITS,
        num_examples=lambda split, options: options.get("num_examples") or spheres.DEFAULT_NUM_EXAMPLES[split],
        input_shape=lambda options: (options.get("dimension", spheres.DEFAULT_DIMENSION),),
        source=_spheres_source, image=False),
    "imagenet": Dataset(
        num_classes=imagenet.NUM_CLASSES, splits=("train", "test"),
        # as prepared: needs the data (or the manual download) in place
        num_examples=lambda split, options: imagenet.num_examples(split, options.get("data_dir"),
                                                                  options.get("manual_dir")),
        input_shape=lambda options: (options.get("image_size", imagenet.DEFAULT_IMAGE_SIZE),) * 2 + (3,),
        source=_imagenet_source),
}
"""Every dataset by name, in the order the docs list them."""


def record(name: str) -> Dataset:
  """The record of dataset `name`; a ValueError names the choices if it is unknown."""
  family, _, variant = name.partition("/")
  if family == "shift_mnist" and variant not in shift_mnist.VARIANTS:
    raise ValueError(
        f"Unknown shift_mnist variant {variant!r} in {name!r}; choose one of "
        f"{', '.join('shift_mnist/' + v for v in shift_mnist.VARIANTS)}."
    )
  if name not in RECORDS:
    raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(RECORDS)}.")
  return RECORDS[name]
