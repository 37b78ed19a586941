"""Sharded robustness evaluation: ``evaluate`` splits each chunk over the data mesh of every
device. On 4 forced host devices it gives the per-example results of 1 device (random attacks
included: their keys depend on the example, not on the device), with a chunk size that is not a
multiple of the device count covering every example exactly once; and chunk placement in one
process (no devices needed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from robustjax import evaluation as E
from robustjax.core import sharding
from robustjax.evaluation import chunks
from robustjax.evaluation.placement import ChunkPlacement
from support import subprocess_env

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp, numpy as np
    from robustjax import evaluation as E
    from robustjax.core.sharding import data_mesh
    from robustjax.evaluation import AttackSpec

    out = sys.argv[1]
    assert len(jax.devices()) == 4, jax.devices()
    rng = np.random.default_rng(0)
    w1 = jnp.asarray(rng.normal(size=(64, 16)).astype(np.float32) / 4)
    w2 = jnp.asarray(rng.normal(size=(16, 3)).astype(np.float32) / 2)

    def apply(weights, x):  # a 2-layer MLP on 8x8 images
        return jax.nn.relu(x.reshape(x.shape[0], -1) @ weights[0]) @ weights[1]

    def logits_fn(x):
        return apply((w1, w2), x)

    x = rng.random((37, 8, 8, 1)).astype(np.float32)
    y = np.array(jnp.argmax(logits_fn(jnp.asarray(x)), axis=1))
    y[::5] = (y[::5] + 1) % 3  # some clean errors
    suite = [
        AttackSpec("FGSM", "fgsm", eps=(0.05, 0.1), norm=np.inf),
        AttackSpec("PGD-3", "pgd", eps=(0.05, 0.1), norm=np.inf,
                   params={"steps": 3, "step_size_factor": 0.5, "random_start": True}),
    ]
    results = {}
    # FGSM runs on the whole batch, PGD with a random start per example (vmap over keys); the
    # later runs reuse the programs the first two compiled
    for tag, devices, batch_size, kw in (
        ("d1_all", 1, 37, {}),
        ("d4_b10", 4, 10, {}),
        ("d1_skip", 1, 37, {"skip_broken": True}),
        ("d4_skip_b10", 4, 10, {"skip_broken": True}),
        ("d1_pred", 1, 37, {"attack_labels": "predicted"}),
        ("d4_pred_b10", 4, 10, {"attack_labels": "predicted"}),
        # a key the user placed on one device is not tied to it
        ("d4_committed_key", 4, 10, {"key": jax.device_put(jax.random.key(0), jax.devices()[1])}),
        # a pytree model function passes its arrays to the programs as arguments; committed to
        # one device (a restored checkpoint), they are replicated on the mesh
        ("d4_pytree_b10", 4, 10, {"model": jax.tree_util.Partial(
            apply, jax.device_put((w1, w2), jax.devices()[2]))}),
    ):
        kw = {"key": 0, **kw}
        fn = kw.pop("model", logits_fn)
        rep = E.evaluate(fn, (x, y), suite=suite, batch_size=batch_size, progress=False,
                         checks=False, mesh=data_mesh(jax.devices()[:devices]), **kw)
        assert rep.meta["devices"] == devices, rep.meta
        for k, v in rep.per_example().items():
            results[f"{tag}|{k}"] = np.asarray(v)
    np.savez(out, **results)
    """
)


@pytest.fixture(scope="module")
def per_example(tmp_path_factory):
    out = tmp_path_factory.mktemp("placement") / "results.npz"
    env = subprocess_env(JAX_NUM_CPU_DEVICES="4", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], env=env, capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as f:
        flat = {k: f[k] for k in f.files}
    tags = sorted({k.split("|")[0] for k in flat})
    return {t: {k.split("|", 1)[1]: v for k, v in flat.items() if k.startswith(t + "|")} for t in tags}


def _assert_same(got: dict, want: dict):
    assert got.keys() == want.keys()
    for k in want:
        a, b = got[k], want[k]
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=k)
        else:
            np.testing.assert_array_equal(a, b, err_msg=k)


@pytest.mark.parametrize("sharded, reference", [("d4_b10", "d1_all"), ("d4_skip_b10", "d1_skip"),
                                                ("d4_pred_b10", "d1_pred"),
                                                ("d4_committed_key", "d1_all"),
                                                ("d4_pytree_b10", "d1_all")])
def test_four_devices_give_the_per_example_results_of_one_device(per_example, sharded, reference):
    _assert_same(per_example[sharded], per_example[reference])


def test_every_example_is_evaluated_once(per_example):
    res = per_example["d4_b10"]
    for k, v in res.items():
        if k.endswith("/evaluated"):
            assert v.shape == (37,) and v.all(), k  # the padded last chunks left no gap
        if k.endswith("/pred"):
            assert (v >= 0).all(), k  # -1 marks a never-written entry
        if k.endswith("/margin"):
            assert np.isfinite(v).all(), k
    # the attacks did something (the comparison is not between two empty results)
    assert res["robust[Linf eps=0.1]"].mean() < res["clean_correct"].mean()


def test_chunks_padded_to_the_device_count_cover_every_example_once():
    mesh = sharding.data_mesh(jax.devices()[:1])
    assert ChunkPlacement(10, mesh=mesh).rows == 10
    assert sharding.padded_size(10, mesh) == 10
    n, batch_size, devices = 37, 10, 4
    rows = -(-batch_size // devices) * devices
    seen = []
    for idx in chunks.chunk_indices(n, batch_size):
        padded = chunks.pad_indices(idx, rows)
        assert len(padded) == rows == 12 and np.all(padded[len(idx):] == idx[-1])
        seen.extend(padded[: len(idx)])
    assert sorted(seen) == list(range(n)) and len(seen) == n


def test_placement_in_one_process_round_trips():
    placement = ChunkPlacement(5)
    x = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    placed = placement.place((x, np.arange(5)))
    assert placed[0].sharding == sharding.batch_sharding(placement.mesh)
    back = placement.fetch(placed)
    np.testing.assert_array_equal(back[0], x)
    np.testing.assert_array_equal(back[1], np.arange(5))


def test_bad_mesh_fails_loudly():
    with pytest.raises(ValueError, match="mesh must be a 1-D jax.sharding.Mesh"):
        E.evaluate(lambda x: x.reshape(x.shape[0], -1), (np.zeros((2, 3), np.float32), np.zeros(2, int)),
                   suite="mnist-quick", key=0, mesh="cpu:0", progress=False)
