"""Shared test set-up.

Environment, set before any test module imports jax or TensorFlow:
- eight virtual CPU devices, so that every test can exercise sharded code paths
  (XLA reads the flag once, when JAX first initialises its backend);
- TensorFlow quiet on stderr (its C++ log level, and no oneDNN notice, which TensorFlow 2.21
  prints whatever the level), so that the commands' one-line errors are checked as users see them;
- a persistent compilation cache: compilation dominates the suite's time, and
  many tests (and the training jobs they start as subprocesses) compile
  identical programs;
- XLA's CPU backend at optimisation level 0 (subprocesses keep it): the
  tests' programs are small and run briefly, so LLVM's optimisation passes cost
  far more than they save (the micro train step compiles in about 0.6x the time);
- the real data of ../shared/data unless INVJAX_*_DIR say otherwise, and a TFDS
  data directory of the test suite's own. The first test that reads MNIST prepares it there (about
  20 s); a worker that needs it meanwhile waits on `sources`' file lock, and the other worker's
  tests that do not read it go on.
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
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # TensorFlow >= 2.21 announces oneDNN on stderr at any log level
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE / "jax-compilation"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
_TFDS_DIR = _CACHE / "tensorflow_datasets"
os.environ.setdefault("TFDS_DATA_DIR", str(_TFDS_DIR))
for _variable, _folder in [("INVJAX_MNIST_DIR", "mnist"), ("INVJAX_FASHION_MNIST_DIR", "fashion_mnist"),
                           ("INVJAX_DTD_DIR", "dtd")]:
  os.environ.setdefault(_variable, str(REPO_ROOT.parent / "shared" / "data" / _folder))


@pytest.fixture(scope="session")
def tfds_dir() -> pathlib.Path:
  """The test suite's own TFDS data directory (the default TFDS_DATA_DIR of the tests and their
  subprocesses): datasets are prepared in it on first use."""
  return _TFDS_DIR


@pytest.fixture(scope="session")
def micro_run(tmp_path_factory) -> tuple[pathlib.Path, dict]:
  """A finished 4-step run of `test_train.micro_config()` (checkpoints 2 and 4) and its final
  metrics, trained once per test worker for every test that reads such a run. Tests that change a
  run work on a copy (`test_reliability_train.run_copy`)."""
  from invjax import train
  from test_train import micro_config

  workdir = tmp_path_factory.mktemp("micro_run")
  return workdir, train.train_and_evaluate(micro_config(), workdir)
