"""Device mesh, shardings, and host batch -> global jax.Array for data parallelism."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxcolor.errors import ConfigError

DATA_AXIS = "data"


def create_mesh(num_data_devices: int = -1) -> Mesh:
    """1-D mesh over all devices of all processes (`mesh.data`, -1 = all), axis `data`."""
    devices = jax.devices()
    n = len(devices) if num_data_devices == -1 else num_data_devices
    if n < 1 or n > len(devices):
        raise ConfigError(
            f"mesh.data={num_data_devices} but {len(devices)} devices are visible; "
            "use -1 for all devices or a number between 1 and that count."
        )
    # Auto axes: GSPMD propagates the batch sharding through the model (plain data parallelism).
    return jax.make_mesh(
        (n,), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices[:n]
    )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over `data`."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device (parameters, optimizer state, metrics)."""
    return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh, *, name: str = "batch_size") -> None:
    """The global batch must split evenly over the devices and the processes."""
    n = mesh.devices.size
    if batch_size < 1 or batch_size % n:
        raise ConfigError(
            f"{name}={batch_size} is not divisible by the number of devices on the mesh ({n}); "
            f"set --config.{name} to a multiple of {n} (e.g. {max(1, batch_size // n) * n})."
        )
    if batch_size % jax.process_count():
        raise ConfigError(
            f"{name}={batch_size} is not divisible by the number of processes "
            f"({jax.process_count()})."
        )


def per_process_batch_size(batch_size: int) -> int:
    """Each process loads its own slice of the global batch."""
    return batch_size // jax.process_count()


def to_global(batch: Mapping[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """This process's rows -> one global array per key, batch-sharded over the mesh."""
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
