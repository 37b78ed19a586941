"""``core.sharding`` in one process: mesh and batch helpers, host round trips, bad input.

Several devices and processes are exercised in subprocesses by ``test_distributed.py`` (2
processes × 2 devices training like 1 × 4 and 1 × 1) and ``test_evaluation_placement.py``
(4 devices evaluating like 1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.core import sharding


def test_mesh_and_shardings():
    mesh = sharding.data_mesh()
    assert mesh.axis_names == ("data",) and mesh.devices.size == len(jax.devices())
    assert sharding.check_mesh(mesh) is mesh
    assert sharding.batch_sharding(mesh).spec == jax.sharding.PartitionSpec("data")
    assert sharding.replicated(mesh).spec == jax.sharding.PartitionSpec()
    one = sharding.data_mesh(jax.devices()[:1])
    assert [sharding.padded_size(b, one) for b in (1, 7, 8)] == [1, 7, 8]


def test_padded_size_is_the_next_multiple_of_the_device_count():
    class FakeMesh:  # padded_size and check_batch_divisible only read the device count
        devices = np.empty(4, object)

    assert [sharding.padded_size(b, FakeMesh) for b in (1, 4, 5, 10, 12)] == [4, 4, 8, 12, 12]
    sharding.check_batch_divisible(12, FakeMesh)
    with pytest.raises(ValueError, match="batch_size must be a multiple of the number of devices"):
        sharding.check_batch_divisible(10, FakeMesh)


def test_shard_batch_and_to_host_round_trip_a_pytree():
    mesh = sharding.data_mesh()
    batch = {"x": np.arange(24, dtype=np.float32).reshape(6, 2, 2), "y": np.arange(6, dtype=np.int32)}
    placed = sharding.shard_batch(batch, sharding.batch_sharding(mesh))
    assert all(isinstance(v, jax.Array) for v in placed.values())
    assert placed["x"].sharding == sharding.batch_sharding(mesh)
    back = sharding.to_host(placed)
    for k in batch:
        np.testing.assert_array_equal(back[k], batch[k])
        assert isinstance(back[k], np.ndarray)
    assert sharding.process_rows(6, sharding.batch_sharding(mesh)) == slice(0, 6)
    # leaves that are not JAX arrays pass through, as with jax.device_get
    assert sharding.to_host({"n": 3, "s": "a"}) == {"n": 3, "s": "a"}


def test_replicate_copies_committed_arrays_to_every_device():
    mesh = sharding.data_mesh()
    tree = {"w": jax.device_put(jnp.ones((2, 3)), jax.devices()[0]), "k": np.uint32([1, 2])}
    out = sharding.replicate(tree, mesh)
    assert out["w"].sharding == sharding.replicated(mesh) and out["w"].is_fully_replicated
    np.testing.assert_array_equal(np.asarray(out["k"]), [1, 2])


def test_one_process_is_primary_and_barriers_are_no_ops():
    assert sharding.is_primary_process()
    sharding.sync_processes("test")  # returns at once with a single process


def test_bad_mesh_and_devices_fail_loudly():
    with pytest.raises(ValueError, match="mesh must be a 1-D jax.sharding.Mesh with the axis 'data'"):
        sharding.check_mesh("cpu")
    other = jax.sharding.Mesh(np.asarray(jax.devices()), ("batch",))
    with pytest.raises(ValueError, match="axes \\('batch',\\)"):
        sharding.check_mesh(other)
    with pytest.raises(ValueError, match="at least one device"):
        sharding.data_mesh([])
