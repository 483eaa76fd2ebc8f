"""The tiny ImageNet of the tests: generated in the manual-download layout and
prepared by TFDS's real `imagenet2012` code (`invjax.data.tiny_imagenet`)."""

import pathlib

import pytest


def prepare_tiny_imagenet(base: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
  """(manual_dir, data_dir) of a tiny ImageNet under `base`, written and prepared if not yet."""
  # Imported here: pytest-xdist's controller loads this plugin and runs no test; it starts the
  # workers sooner without importing TensorFlow.
  from invjax.data import imagenet, tiny_imagenet

  manual, data_dir = base / "manual", base / "tfds"
  if not (data_dir / "imagenet2012").is_dir():
    tiny_imagenet.write(manual)
    imagenet.prepare(data_dir, manual)
  return manual, data_dir


@pytest.fixture(scope="session")
def tiny_imagenet_dirs(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
  return prepare_tiny_imagenet(tmp_path_factory.getbasetemp() / "tiny_imagenet")
