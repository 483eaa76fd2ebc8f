"""Device meshes for data parallelism.

The mesh comes from `jax.make_mesh`, which orders the devices by the
accelerator's topology (on a TPU slice, a ring through the interconnect, so the
gradient all-reduce runs over neighbouring chips), where `jax.devices()` lists
them by id. `jax.make_mesh` makes *explicit* mesh axes by default, under which
every reshape of a sharded array must name its output sharding. invjax shards
only the batch and lets the compiler propagate that sharding through the model,
so its meshes ask for automatic axes (`AxisType.Auto`).
"""

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_data_mesh(num_devices: int | None = None) -> Mesh:
  """A one-axis mesh named `'data'` with automatic axes over `num_devices` devices (default: all,
  across every host), in the order `jax.make_mesh` gives them."""
  available = jax.device_count()
  num_devices = num_devices or available
  if num_devices > available:
    raise ValueError(f"Asked for {num_devices} devices; only {available} are available.")
  return jax.make_mesh((num_devices,), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the mesh's data axis, the rest replicated."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array (parameters, optimizer states)."""
  return NamedSharding(mesh, PartitionSpec())
