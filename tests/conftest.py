"""Shared test set-up.

Environment, set before any test module imports jax or TensorFlow:
- eight virtual CPU devices, so that every test can exercise sharded code paths
  (XLA reads the flag once, when JAX first initialises its backend);
- a persistent compilation cache: compilation dominates the suite's time, and
  many tests (and the training jobs they start as subprocesses) compile
  identical programs;
- XLA's CPU backend at optimisation level 0 (subprocesses keep it): the
  tests' programs are small and run briefly, so LLVM's optimisation passes cost
  far more than they save (the micro train step compiles in about 0.6x the time);
- the real data of ../shared/data unless INVJAX_*_DIR say otherwise, and a TFDS
  data directory of the test suite's own.
"""

import os
import pathlib

import pytest

# Fixtures shared by several test files (the tiny ImageNet folders).
pytest_plugins = ["imagenet_testing"]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
_CACHE = REPO_ROOT / ".pytest_cache"

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE / "jax-compilation"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
os.environ.setdefault("TFDS_DATA_DIR", str(_CACHE / "tensorflow_datasets"))
for _variable, _folder in [("INVJAX_MNIST_DIR", "mnist"), ("INVJAX_FASHION_MNIST_DIR", "fashion_mnist"),
                           ("INVJAX_DTD_DIR", "dtd")]:
  os.environ.setdefault(_variable, str(REPO_ROOT.parent / "shared" / "data" / _folder))


def pytest_configure(config):
  """Prepares MNIST once, before test workers start, so that they never race to prepare it."""
  if not hasattr(config, "workerinput"):
    from invjax.data import sources

    sources.prepare("mnist")


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory) -> pathlib.Path:
  """A TFDS data directory of the session's own, with MNIST prepared in it."""
  from invjax.data import sources

  directory = tmp_path_factory.getbasetemp() / "tfds"
  sources.prepare("mnist", data_dir=directory)
  return directory
