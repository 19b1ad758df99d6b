"""Process start-up (jax.distributed, compilation cache), the device mesh, shardings, and
host batch -> global jax.Array for data parallelism."""

from __future__ import annotations

import glob
import importlib.util
import os
import urllib.request
from collections.abc import Mapping

import jax
import numpy as np
from jax.experimental import mesh_utils, multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxcolor.core.errors import ConfigError

DATA_AXIS = "data"
# GCE metadata: one comma-separated entry per worker (host) of this TPU slice.
_TPU_WORKERS_URL = (
    "http://metadata.google.internal/computeMetadata/v1/instance/attributes/"
    "worker-network-endpoints"
)


def initialize_distributed(
    coordinator_address: str = "", num_processes: int = 0, process_id: int = -1
) -> bool:
    """Joins this process to a multi-process run (`jax.distributed`); True if it did.

    Explicit arguments (CPU/GPU clusters: all three or none) win. Without them, a multi-host
    Cloud TPU slice is detected and JAX finds the coordinator and this host's id itself. A single
    host needs nothing. Must run before anything touches a JAX device.
    """
    explicit = (bool(coordinator_address), num_processes > 0, process_id >= 0)
    if any(explicit) and not all(explicit):
        raise ConfigError(
            f"--coordinator_address={coordinator_address!r} --num_processes={num_processes} "
            f"--process_id={process_id}: a multi-process run needs all three (or the env vars "
            "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID); give the coordinator "
            "as host:port of process 0 and each process an id in 0..num_processes-1."
        )
    if jax.distributed.is_initialized():
        return True
    if all(explicit):
        if process_id >= num_processes:
            raise ConfigError(
                f"--process_id={process_id} must be below --num_processes={num_processes}."
            )
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
        return True
    if _tpu_host_count() > 1:
        jax.distributed.initialize()  # JAX reads the slice's workers from the TPU metadata
        return True
    return False


def sync_processes(name: str) -> None:
    """Waits until every process reaches `name` (no-op with one process).

    Uses the coordination service, not a device collective: on CPU, Gloo gives processes only
    30 s to meet at their first collective, which uneven compile times on a busy host exceed.
    """
    if jax.process_count() > 1:
        from orbax.checkpoint import multihost

        multihost.sync_global_processes(name)


def start_collectives(mesh: Mesh) -> None:
    """Meets the other processes, then runs one all-reduce over `mesh` and one all-gather across
    processes (no-op with one process).

    On CPU, Gloo builds each communicator at its first collective and gives the processes only
    30 s to arrive; uneven start-up and compile times on a busy host exceed that. Built here,
    right after a barrier, the communicators exist before the first slow compile.
    """
    if jax.process_count() == 1:
        return
    sync_processes("jaxcolor:start-collectives")
    ones = np.ones((mesh.devices.size // jax.process_count(),), np.float32)
    total = jax.jit(lambda x: x.sum(), out_shardings=replicated(mesh))(
        jax.make_array_from_process_local_data(batch_sharding(mesh), ones)
    )
    jax.block_until_ready(total)
    multihost_utils.process_allgather(np.zeros((1,), np.float32))


def _tpu_host_count() -> int:
    """Hosts in this Cloud TPU slice (1 off TPU); asks the metadata server only on a TPU VM."""
    hosts = os.environ.get("TPU_WORKER_HOSTNAMES") or os.environ.get("TPU_PROCESS_ADDRESSES")
    if hosts:  # GKE and some launchers set these
        return len(hosts.split(","))
    if not (glob.glob("/dev/accel[0-9]*") or glob.glob("/dev/vfio/[0-9]*")):
        return 1  # no TPU chips here
    request = urllib.request.Request(_TPU_WORKERS_URL, headers={"Metadata-Flavor": "Google"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return max(1, len(response.read().decode().split(",")))
    except OSError:  # not on GCE, or a single-host VM without the attribute
        return 1


def configure_compilation_cache(path: str) -> str | None:
    """Turns on JAX's persistent compilation cache at `path` ('' = off); returns the directory
    in use. A cache already configured for JAX (JAX_COMPILATION_CACHE_DIR) wins over `path`."""
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    if not path:
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    return path


def create_mesh(num_data_devices: int = -1, devices: list[jax.Device] | None = None) -> Mesh:
    """1-D mesh over `devices` (default: all devices of all processes; `mesh.data`, -1 = all),
    axis `data`. Explicit devices may be compile-only ones of a TPU slice (`topology_devices`)."""
    # Ordered by process: process i's devices, hence its rows of a global batch, are contiguous
    # (rows i*b .. (i+1)*b-1 for b rows per process), whatever the number of processes.
    devices = sorted(jax.devices() if devices is None else devices,
                     key=lambda d: (*_host(d), d.id))  # fmt: skip
    n = len(devices) if num_data_devices == -1 else num_data_devices
    if n < 1 or n > len(devices):
        raise ConfigError(
            f"mesh.data={num_data_devices} but {len(devices)} devices are visible; "
            "use -1 for all devices or a number between 1 and that count."
        )
    processes = len({_host(d) for d in devices})
    if processes > 1 and n != len(devices):
        raise ConfigError(
            f"mesh.data={num_data_devices}: a run of {processes} processes uses every "
            f"device ({len(devices)}); set --config.mesh.data=-1."
        )
    auto = (jax.sharding.AxisType.Auto,)
    slices = len({_host(d)[0] for d in devices})
    if slices > 1:  # multi-slice: within each slice over ICI, across slices over the DCN
        grid = mesh_utils.create_hybrid_device_mesh((n // slices,), (slices,), devices)
        return Mesh(grid.reshape(-1), (DATA_AXIS,), axis_types=auto)
    # Auto axes: GSPMD propagates the batch sharding through the model (plain data parallelism).
    return jax.make_mesh((n,), (DATA_AXIS,), axis_types=auto, devices=devices[:n])


def _host(device: jax.Device) -> tuple[int, int]:
    """(slice, process) owning `device`: a multi-slice topology numbers processes per slice."""
    return getattr(device, "slice_index", 0) or 0, device.process_index


def process_count(mesh: Mesh) -> int:
    """Processes (hosts) owning the mesh's devices: jax.process_count() for a run's own mesh,
    the slices' host count for a compile-only one."""
    return len({_host(d) for d in mesh.devices.flat})


def platform(mesh: Mesh) -> str:
    """The platform the mesh's devices compile for ("tpu", "gpu", "cpu"), which may differ from
    jax.default_backend() (ahead-of-time compilation for a TPU slice on a CPU host)."""
    return mesh.devices.flat[0].platform


def topology_devices(accelerator_type: str, num_slices: int = 1) -> list[jax.Device]:
    """Compile-only devices of every host of `num_slices` Cloud TPU slices of `accelerator_type`
    (e.g. "v5p-64"), built by libtpu on any host: nothing runs on them, they compile."""
    from jaxcolor.core import accelerators

    target = accelerators.slice_of(accelerator_type)
    if num_slices < 1:
        raise ConfigError(f"--num_slices={num_slices}: give 1 or more slices.")
    if importlib.util.find_spec("libtpu") is None:
        raise ConfigError(
            "compiling for a TPU slice needs libtpu on this host (no TPU is needed): "
            "pip install 'jaxcolor[tpu]' (or the test extra), then rerun."
        )
    # libtpu would otherwise ask the GCE metadata server for the local TPU (seconds of timeouts
    # off GCE) and refuse to load next to another process that holds it.
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", accelerator_type)  # or it warns it has none
    from jax.experimental import topologies

    topology = topologies.get_topology_desc(
        platform="tpu",
        topology_name=target.topology_name,
        chip_config_name=target.chip.chip_config,
        chips_per_host_bounds=target.chips_per_host_bounds,
        num_slices=num_slices,
        wrap=target.wrap,
    )
    return list(topology.devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over `data`."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device (parameters, optimizer state, metrics)."""
    return NamedSharding(mesh, P())


def placed_shapes(tree, sharding: jax.sharding.Sharding | None):
    """`tree`'s arrays (or shapes) as `jax.ShapeDtypeStruct`s placed with `sharding`: abstract
    arguments for `jit(...).lower`, nothing allocated."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def check_batch_size(batch_size: int, mesh: Mesh, *, name: str = "batch_size") -> None:
    """The global batch must split evenly over the devices and the processes."""
    n = mesh.devices.size
    if batch_size < 1 or batch_size % n:
        raise ConfigError(
            f"{name}={batch_size} is not divisible by the number of devices on the mesh ({n}); "
            f"set --config.{name} to a multiple of {n} (e.g. {max(1, batch_size // n) * n})."
        )
    if batch_size % process_count(mesh):
        raise ConfigError(
            f"{name}={batch_size} is not divisible by the number of processes "
            f"({process_count(mesh)})."
        )


def per_process_batch_size(batch_size: int, mesh: Mesh | None = None) -> int:
    """Each process loads its own slice of the global batch (of `mesh`'s processes if given)."""
    return batch_size // (jax.process_count() if mesh is None else process_count(mesh))


def to_global(batch: Mapping[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """This process's rows -> one global array per key, batch-sharded over the mesh."""
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
