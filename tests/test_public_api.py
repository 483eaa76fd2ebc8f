"""The package as others install and embed it: top-level names and the optional train extra."""

import subprocess
import sys

import pytest

import invjax
from invjax import _extras

# What `pip install invjax` (without [train]) lacks; absl and orbax come with optax and flax.
_WITHOUT_TRAIN_EXTRA = ("PIL", "importlib_resources", "matplotlib", "ml_collections", "tensorboard", "tensorflow",
                        "tensorflow_datasets")


def _run_without_train_extra(code: str) -> subprocess.CompletedProcess:
  """Runs `code` in a fresh interpreter in which the train extra's modules cannot be imported."""
  block = f"import sys\nfor name in {_WITHOUT_TRAIN_EXTRA!r}:\n  sys.modules[name] = None\n"
  return subprocess.run([sys.executable, "-c", block + code], capture_output=True, text=True, timeout=600)


def test_library_imports_without_the_train_extra():
  result = _run_without_train_extra(
      "import invjax.blocks, invjax.models, invjax.losses, invjax.metamers, invjax.export, invjax.parallel\n"
      "import invjax.objective, invjax.independence\n"
      "print(invjax.fi_revnet_mnist().num_levels)")
  assert result.returncode == 0, result.stderr
  assert result.stdout.split() == ["3"]


def test_training_modules_without_the_extra_name_it_in_one_line():
  result = _run_without_train_extra(
      "import importlib\n"
      "for name in ('invjax.train', 'invjax.data', 'invjax.analysis', 'invjax.plotting'):\n"
      "  try:\n"
      "    importlib.import_module(name)\n"
      "  except ImportError as error:\n"
      "    print(error)\n")
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert [line.split()[0] for line in lines] == ["invjax.train", "invjax.data", "invjax.analysis", "invjax.plotting"]
  for line in lines:
    assert line.split(" ", 1)[1].startswith("needs the training extra (") and line.endswith(
        "is not installed): pip install 'invjax[train]'"), line


def test_other_missing_modules_are_raised_unchanged():
  with pytest.raises(ModuleNotFoundError, match="no_such_module") as raised:
    with _extras.train_extra("invjax.train"):
      import no_such_module  # noqa: F401
  assert not isinstance(raised.value, _extras.MissingExtraError)


def test_import_invjax_is_cheap():
  result = subprocess.run([sys.executable, "-c", "import sys, invjax; print('jax' in sys.modules)"],
                          capture_output=True, text=True, check=True)
  assert result.stdout.split() == ["False"]


def test_top_level_names_load_on_first_use():
  for name in invjax.__all__:
    assert getattr(invjax, name) is not None
  assert set(invjax.__all__) <= set(dir(invjax))
  assert invjax.FiRevNet is invjax.models.FiRevNet
  assert invjax.train_and_evaluate is invjax.train.train_and_evaluate
  with pytest.raises(AttributeError, match="no attribute 'FiRevnet'"):
    _ = invjax.FiRevnet
