"""The optional `train` extra: a one-line error where it is missing.

`pip install invjax` installs the library (blocks, models, losses, metamers)
with JAX, Flax, Optax and NumPy alone. The training jobs, the data pipeline,
the analyses and the figures also need TensorFlow, TFDS, Orbax, absl,
ml_collections and matplotlib, from `pip install 'invjax[train]'`.
"""

import contextlib
from collections.abc import Iterator

# Top-level modules of the [train] extra's distributions (pyproject.toml); PIL comes with matplotlib.
TRAIN_MODULES = frozenset({
    "PIL", "absl", "importlib_resources", "matplotlib", "ml_collections", "orbax", "tensorboard", "tensorflow",
    "tensorflow_datasets",
})


class MissingExtraError(ImportError):
  """A module of the train extra is missing; the message names the module imported and the extra."""

  def __init__(self, module: str, missing: str):
    super().__init__(f"{module} needs the training extra ({missing} is not installed): pip install 'invjax[train]'")
    self.missing = missing


@contextlib.contextmanager
def train_extra(module: str) -> Iterator[None]:
  """Runs the imports of `module`, turning a missing module of the train extra into one line.

  The line names the outermost such `module` (the one the user imported, not
  `invjax.data` that `invjax.analysis` imports). Any other missing module (a
  bug, not an installation choice) is raised as it is.
  """
  try:
    yield
  except MissingExtraError as error:
    raise MissingExtraError(module, error.missing) from None
  except ModuleNotFoundError as error:
    missing = (error.name or "").partition(".")[0]
    if missing not in TRAIN_MODULES:
      raise
    raise MissingExtraError(module, missing) from None
