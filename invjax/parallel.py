"""Device meshes for data parallelism.

JAX's `jax.make_mesh` makes *explicit* mesh axes by default, under which every
reshape of a sharded array must name its output sharding. invjax shards only
the batch and lets the compiler propagate that sharding through the model, so
its meshes use automatic axes.
"""

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_data_mesh(num_devices: int | None = None) -> Mesh:
  """A one-axis mesh named `'data'` over the first `num_devices` devices (default: all,
  across every host)."""
  devices = jax.devices()
  num_devices = num_devices or len(devices)
  if num_devices > len(devices):
    raise ValueError(f"Asked for {num_devices} devices; only {len(devices)} are available.")
  return Mesh(np.asarray(devices[:num_devices]), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the mesh's data axis, the rest replicated."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array (parameters, optimizer states)."""
  return NamedSharding(mesh, PartitionSpec())
