"""Shared test set-up.

Eight virtual CPU devices let every test exercise sharded code paths; XLA reads
the flag once, when JAX first initialises its backend, so it is set before any
test module imports jax. Compilation dominates the suite's time and many tests
(and the training jobs they start as subprocesses) compile identical programs,
so they share a persistent compilation cache.
"""

import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    str(pathlib.Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
