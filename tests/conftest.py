"""Shared test set-up.

Eight virtual CPU devices let every test exercise sharded code paths; XLA reads
the flag once, when JAX first initialises its backend, so it is set before any
test module imports jax.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
