"""MNIST and Fashion-MNIST through TFDS, prepared offline from the original files.

`prepare` returns a prepared TFDS builder. Where the dataset is not yet in
`data_dir`, it is prepared

* from a *manual directory* holding the four original IDX gzip files when one is
  given (argument, or the environment variable `INVJAX_MNIST_DIR` /
  `INVJAX_FASHION_MNIST_DIR`). The files are first checked against the official
  SHA256 checksums; TFDS then finds them by file name in
  `DownloadConfig.manual_dir` (its download manager looks there before any
  download) and never touches the network (`try_download_gcs=False`);
* otherwise by the normal TFDS download, announced in one line (logged as a
  warning) since it needs the internet.

Several processes that find the dataset missing at once (runs started together on a fresh
machine, test workers) prepare it once: they take turns on a file lock in a local data directory.

Each dataset gets its own download directory `<data_dir>/downloads/<name>`: the
MNIST and Fashion-MNIST files share names and would collide in TFDS's extraction
cache.
"""

import contextlib
import functools
import hashlib
import logging
import os
import pathlib
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

DIGIT_DATASETS = ("mnist", "fashion_mnist")

_LOGGER = logging.getLogger(__name__)

MANUAL_DIR_ENV = {
    "mnist": "INVJAX_MNIST_DIR",
    "fashion_mnist": "INVJAX_FASHION_MNIST_DIR",
}

OFFICIAL_URL = {
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}

# SHA256 of the official releases (the same values TFDS registers).
OFFICIAL_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}


def _check_name(name: str) -> None:
  if name not in DIGIT_DATASETS:
    raise ValueError(f"Unknown digit dataset {name!r}; expected one of {DIGIT_DATASETS}.")


def manual_dir_for(name: str, manual_dir: str | os.PathLike | None = None) -> pathlib.Path | None:
  """The manual directory of `name`: the argument, else its environment variable, else None."""
  _check_name(name)
  chosen = manual_dir or os.environ.get(MANUAL_DIR_ENV[name])
  return pathlib.Path(chosen).expanduser() if chosen else None


def _sha256(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with path.open("rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def verify_manual_files(name: str, manual_dir: str | os.PathLike) -> None:
  """Checks that `manual_dir` holds the four official files of `name`.

  Raises:
    FileNotFoundError: a file is missing (the message lists the files expected).
    ValueError: a file's SHA256 differs from the official release's.
  """
  _check_name(name)
  manual_dir = pathlib.Path(manual_dir)
  expected = OFFICIAL_SHA256[name]
  missing = [file for file in expected if not (manual_dir / file).is_file()]
  if missing:
    raise FileNotFoundError(
        f"The manual directory {manual_dir} for {name} lacks {', '.join(missing)}. "
        f"It must hold the four original files {', '.join(expected)} "
        f"(from {OFFICIAL_URL[name]}); point {MANUAL_DIR_ENV[name]} (or manual_dir=) "
        "at a directory that holds all four."
    )
  for file, official in expected.items():
    actual = _sha256(manual_dir / file)
    if actual != official:
      raise ValueError(
          f"{manual_dir / file} is corrupt: its SHA256 is {actual}, the official "
          f"{name} file's is {official}. Replace it with the original file from "
          f"{OFFICIAL_URL[name]}{file}."
      )


@contextlib.contextmanager
def _one_preparer(builder: tfds.core.DatasetBuilder) -> Iterator[None]:
  """Holds an exclusive lock on `<data_dir>/.<name>.lock` while the body runs, where one can be held.

  Local data directories on POSIX systems only (`fcntl.flock`); in a bucket, or without `fcntl`,
  the body runs unguarded. Waiting for another process is said in one line.
  """
  root = os.fspath(builder.data_dir_root)
  try:
    import fcntl
  except ImportError:  # Windows: no flock.
    fcntl = None
  if fcntl is None or "://" in root:
    yield
    return
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, f".{builder.name}.lock"), "w") as lock:
    try:
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      _LOGGER.warning("Another process is preparing %s in %s: waiting for it.", builder.name, root)
      fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def download_and_prepare(builder: tfds.core.DatasetBuilder, **kwargs) -> tfds.core.DatasetBuilder:
  """`builder.download_and_prepare(**kwargs)` once, however many processes ask for the dataset at once.

  Two runs started together on a fresh machine, or the test suite's workers, may all find the
  dataset missing. In a local data directory they take turns on a file lock (`_one_preparer`): the
  first prepares, the others wait and then read what it wrote. Where no lock holds (a bucket), each
  prepares: TFDS writes into a temporary folder and renames it when complete, so every rename but
  the first fails with FileExistsError although the dataset is complete; such a process reads the
  dataset the first one wrote instead of failing its run.
  """
  with _one_preparer(builder):
    if builder.is_prepared():  # by the process this one waited for
      return _reopened(builder)
    try:
      builder.download_and_prepare(**kwargs)
    except FileExistsError:
      if not builder.is_prepared():
        raise
      return _reopened(builder)
  return builder


def _reopened(builder: tfds.core.DatasetBuilder) -> tfds.core.DatasetBuilder:
  """A new builder of `builder`'s dataset and version, made to read what another process prepared
  after `builder` was made (`builder` found nothing to read then)."""
  return tfds.builder(f"{builder.name}:{builder.version}", data_dir=os.fspath(builder.data_dir_root))


def download_with_tfds(builder: tfds.core.DatasetBuilder, variable: str, offline_hint: str,
                       **kwargs) -> tfds.core.DatasetBuilder:
  """TFDS's own download of `builder`'s dataset, the fallback when `variable` is unset, said in one line.

  `kwargs` go to `download_and_prepare`.

  Raises:
    FileNotFoundError: the download failed (no network); the message ends with `offline_hint`.
  """
  _LOGGER.warning("%s is unset: downloading %s with TFDS into %s.", variable, builder.name, builder.data_dir_root)
  try:
    return download_and_prepare(builder, **kwargs)
  except OSError as error:  # requests' connection errors are OSErrors too.
    raise FileNotFoundError(f"Could not download {builder.name} ({error}). {offline_hint}") from error


def prepare(
    name: str,
    data_dir: str | os.PathLike | None = None,
    manual_dir: str | os.PathLike | None = None,
) -> tfds.core.DatasetBuilder:
  """Returns the TFDS builder of `name` ("mnist" or "fashion_mnist"), prepared.

  Args:
    name: "mnist" or "fashion_mnist".
    data_dir: TFDS data directory (local path or bucket); None is TFDS's default.
    manual_dir: directory with the four original files; None falls back to the
      environment variable, and without one to the TFDS download.

  Raises:
    FileNotFoundError: a manual file is missing, or the download failed.
    ValueError: a manual file is corrupt.
  """
  _check_name(name)
  builder = tfds.builder(name, data_dir=data_dir)
  if builder.is_prepared():
    return builder
  download_dir = builder.data_dir_root / "downloads" / name
  manual = manual_dir_for(name, manual_dir)
  if manual is not None:
    verify_manual_files(name, manual)
    return download_and_prepare(
        builder,
        download_dir=download_dir,
        download_config=tfds.download.DownloadConfig(
            manual_dir=manual, try_download_gcs=False
        ),
    )
  return download_with_tfds(
      builder,
      MANUAL_DIR_ENV[name],
      f"Put the four original files {', '.join(OFFICIAL_SHA256[name])} in a directory and set "
      f"{MANUAL_DIR_ENV[name]} to it (or pass manual_dir=).",
      download_dir=download_dir,
  )


@functools.cache
def _load_digits_cached(name: str, split: str, data_dir: str | None, manual_dir: str | None):
  builder = prepare(name, data_dir=data_dir, manual_dir=manual_dir)
  arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
  images = arrays["image"][..., 0]
  labels = arrays["label"].astype(np.int32)
  images.flags.writeable = False
  labels.flags.writeable = False
  return images, labels


def load_digits(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    manual_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """A whole split as read-only arrays: uint8 digits (N, 28, 28), int32 labels (N,).

  Cached per process: the first call decodes the split (seconds), later calls
  return the same arrays.
  """
  if split not in ("train", "test"):
    raise ValueError(f"{name} has splits 'train' and 'test', not {split!r}.")
  return _load_digits_cached(
      name,
      split,
      None if data_dir is None else os.fspath(data_dir),
      None if manual_dir is None else os.fspath(manual_dir),
  )
