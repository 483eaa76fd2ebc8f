"""Shared set-up of the data tests; imported by tests/test_data_*.py, holds no tests.

The real files come from INVJAX_MNIST_DIR, INVJAX_FASHION_MNIST_DIR and
INVJAX_DTD_DIR (the Makefile sets them), else from ../shared/data next to the
repository. TFDS prepares into a directory under pytest's session base
temporary directory, once per session: later fixtures find it prepared.
"""

import os
import pathlib

import pytest

from invjax.data import sources

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_data_dir(environment_variable: str, folder: str) -> pathlib.Path:
  """The directory named by `environment_variable`, else ../shared/data/<folder>."""
  default = REPO_ROOT.parent / "shared" / "data" / folder
  return pathlib.Path(os.environ.get(environment_variable) or default)


MNIST_DIR = shared_data_dir("INVJAX_MNIST_DIR", "mnist")
FASHION_MNIST_DIR = shared_data_dir("INVJAX_FASHION_MNIST_DIR", "fashion_mnist")
DTD_DIR = shared_data_dir("INVJAX_DTD_DIR", "dtd")


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory) -> pathlib.Path:
  """The session's TFDS data directory (MNIST prepared in it)."""
  directory = tmp_path_factory.getbasetemp() / "tfds"
  sources.prepare("mnist", data_dir=directory, manual_dir=MNIST_DIR)
  return directory
