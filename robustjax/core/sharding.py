"""Data parallelism on a 1-D device mesh, in one process or several.

Every data-parallel computation in robustjax (the train step, the classification eval step,
the robustness evaluator) runs on the same layout: a mesh over all devices with one axis
``"data"``; batches split along their first axis over it; parameters and train state copied
to every device. Under ``jax.distributed.initialize()`` ``jax.devices()`` lists the devices of
*every* process, so the mesh spans processes and XLA's collectives (gloo on CPU, NCCL on GPU,
ICI on TPU) do the cross-process reductions inside the compiled program.

What changes with several processes is only how host data enter and leave the mesh:

* :func:`shard_batch` — every process holds the same global batch (same data, same shuffling
  key); each transfers only the rows whose shards live on its own devices
  (``jax.make_array_from_process_local_data``). The global array is the same whatever the
  number of processes, so results do not depend on it.
* :func:`to_host` — the inverse: a batch-sharded result comes back to NumPy on every process
  (an all-gather across processes when its shards are not all local).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh(devices=None) -> Mesh:
    """A 1-D device mesh with the axis ``"data"`` over ``devices`` (default: all devices of all
    processes, ``jax.devices()``)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must name at least one device; got an empty list")
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def check_mesh(mesh: Any, *, name: str = "mesh") -> Mesh:
    """``mesh`` if it is a 1-D :class:`jax.sharding.Mesh` with the axis ``"data"``; else
    ``ValueError``."""
    if not isinstance(mesh, Mesh) or tuple(mesh.axis_names) != (DATA_AXIS,):
        axes = getattr(mesh, "axis_names", None)
        raise ValueError(
            f"{name} must be a 1-D jax.sharding.Mesh with the axis {DATA_AXIS!r} "
            f"(robustjax.core.sharding.data_mesh()); got {type(mesh).__name__} with axes {axes}"
        )
    return mesh


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of a batch: split along the first axis over the ``data`` mesh axis."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding of parameters and train state: a full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def check_batch_divisible(batch_size: int, mesh: Mesh, *, name: str = "batch_size") -> None:
    """Raise ``ValueError`` unless ``batch_size`` splits evenly over the mesh's devices."""
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(
            f"{name} must be a multiple of the number of devices ({n}) for data parallelism; "
            f"got {batch_size}"
        )


def padded_size(batch_size: int, mesh: Mesh) -> int:
    """The smallest multiple of the mesh's device count that is ``>= batch_size``."""
    n = mesh.devices.size
    return -(-int(batch_size) // n) * n


def process_rows(rows: int, sharding: NamedSharding) -> slice:
    """The rows of a ``[rows, ...]`` batch whose shards live on this process's devices.

    Contiguous for a 1-D mesh built from ``jax.devices()`` (each process's devices are listed
    together); ``ValueError`` if the layout gives this process a non-contiguous set of rows.
    """
    spans = sorted({(s[0].start or 0, rows if s[0].stop is None else s[0].stop)
                    for s in sharding.addressable_devices_indices_map((rows,)).values()})
    start, stop = spans[0][0], spans[0][0]
    for a, b in spans:
        if a > stop:
            raise ValueError(
                f"the mesh gives process {jax.process_index()} the non-contiguous rows {spans}; "
                "build it with data_mesh() (devices in jax.devices() order)"
            )
        stop = max(stop, b)
    return slice(start, stop)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """A pytree (the same in every process) → a full copy on every device of ``mesh``.

    Goes through host memory, so it also works for arrays committed to one local device (e.g.
    a restored checkpoint) in a multi-process job, where moving them device-to-device to
    another process is not possible on CPU.
    """
    return jax.device_put(to_host(tree), replicated(mesh))


def shard_batch(batch: Any, sharding: NamedSharding) -> Any:
    """A pytree of host arrays holding the *global* batch → global ``jax.Array``\\ s sharded by
    ``sharding`` (batch axis first).

    Each process transfers only its own rows (:func:`process_rows`) with
    ``jax.make_array_from_process_local_data``; every process must pass the same global batch
    (same data, same order), as the fit loop and the evaluator do. In one process this is
    ``jax.device_put(batch, sharding)``.
    """

    if jax.process_count() == 1:  # this process holds every row
        return jax.device_put(batch, sharding)

    def one(x):
        x = np.asarray(x)
        rows = process_rows(x.shape[0], sharding)
        return jax.make_array_from_process_local_data(sharding, x[rows], x.shape)

    return jax.tree_util.tree_map(one, batch)


def to_host(tree: Any) -> Any:
    """A pytree of (possibly cross-process) ``jax.Array``\\ s → NumPy arrays, the same on every
    process: local and fully replicated arrays are read directly, arrays sharded over other
    processes' devices are all-gathered (``multihost_utils.process_allgather``). Leaves that
    are not JAX arrays are returned as they are (like ``jax.device_get``)."""

    def one(x):
        if not isinstance(x, jax.Array):
            return x
        if x.is_fully_addressable or x.is_fully_replicated:
            return np.asarray(x)
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree_util.tree_map(one, tree)


def is_primary_process() -> bool:
    """True in the process that writes files and prints (process 0; the only one when JAX runs
    single-process)."""
    return jax.process_index() == 0


def sync_processes(name: str) -> None:
    """Barrier across processes (no-op in one process): every process waits here until all
    reached the point ``name`` (e.g. process 0 finished writing a file the others read)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
