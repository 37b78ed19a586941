"""Batching with an explicit PRNG key: determinism, coverage, remainder handling, bad input."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustjax import data


def _toy(n, num_classes=5):
    # Each example's pixels encode its index, so batches can be traced back to examples.
    images = (np.arange(n, dtype=np.float32)[:, None, None, None] / max(n, 1)) * np.ones(
        (1, 2, 2, 1), np.float32
    )
    return data.Dataset(images, np.arange(n) % num_classes, name="toy", split="train",
                        num_classes=num_classes)


def _ids(ds, batch):
    x, y = batch
    ids = np.rint(x[:, 0, 0, 0] * len(ds)).astype(int)
    np.testing.assert_array_equal(y, ids % 5)  # labels travel with their images
    return ids


def test_same_key_same_batches_different_key_different_order():
    ds = _toy(103)
    run = lambda k: [_ids(ds, b) for b in data.batches(ds, 10, key=jax.random.key(k))]
    a, b, c = run(0), run(0), run(1)
    assert len(a) == 10  # remainder of 3 dropped in training mode
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))
    # A training epoch is a permutation without repeats: 100 distinct examples.
    flat = np.concatenate(a)
    assert len(np.unique(flat)) == 100
    # ... namely the first 100 of jax.random.permutation(key, n) (independent reference).
    np.testing.assert_array_equal(flat, np.asarray(jax.random.permutation(jax.random.key(0), 103))[:100])
    # Shuffled, not in order.
    assert not np.array_equal(flat, np.sort(flat))


def test_legacy_uint32_key_works():
    ds = _toy(20)
    a = [_ids(ds, b) for b in data.batches(ds, 5, key=jax.random.PRNGKey(3))]
    b = [_ids(ds, b) for b in data.batches(ds, 5, key=jax.random.PRNGKey(3))]
    assert len(a) == 4 and all(np.array_equal(u, v) for u, v in zip(a, b))


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 60), batch_size=st.integers(1, 70))
def test_eval_batching_covers_every_example_once_in_order(n, batch_size):
    ds = _toy(n)
    got = list(data.batches(ds, batch_size))
    assert len(got) == data.num_batches(n, batch_size, False) == -(-n // batch_size)
    ids = np.concatenate([_ids(ds, b) for b in got])
    np.testing.assert_array_equal(ids, np.arange(n))
    assert all(len(b[0]) == batch_size for b in got[:-1])
    np.testing.assert_array_equal(np.concatenate([b[0] for b in got]), ds.images)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 60), batch_size=st.integers(1, 60), seed=st.integers(0, 2**16))
def test_training_batches_full_and_distinct(n, batch_size, seed):
    ds = _toy(n)
    if batch_size > n:
        with pytest.raises(ValueError, match="batch_size"):
            data.batches(ds, batch_size, key=jax.random.key(seed))
        return
    got = list(data.batches(ds, batch_size, key=jax.random.key(seed)))
    assert len(got) == n // batch_size == data.num_batches(n, batch_size, True)
    assert all(b[0].shape == (batch_size, 2, 2, 1) and b[1].dtype == np.int32 for b in got)
    ids = np.concatenate([_ids(ds, b) for b in got]) if got else np.array([])
    assert len(np.unique(ids)) == len(ids) == (n // batch_size) * batch_size


def test_explicit_drop_remainder_overrides_default():
    ds = _toy(11)
    assert len(list(data.batches(ds, 4, drop_remainder=True))) == 2
    kept = list(data.batches(ds, 4, key=jax.random.key(0), drop_remainder=False))
    assert [len(b[0]) for b in kept] == [4, 4, 3]
    assert sorted(np.concatenate([_ids(ds, b) for b in kept]).tolist()) == list(range(11))


def test_tuple_input_and_mnist5k():
    x = np.random.default_rng(0).random((9, 3)).astype(np.float32)
    y = np.arange(9, dtype=np.int32)
    got = list(data.batches((x, y), 4))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in got]), x)
    train = data.load("mnist-5k", "train")
    first = next(data.batches(train, 128, key=jax.random.key(0)))
    assert first[0].shape == (128, 28, 28, 1) and first[0].dtype == np.float32


def test_num_batches():
    assert data.num_batches(10, 3, True) == 3
    assert data.num_batches(10, 3, False) == 4
    assert data.num_batches(9, 3, False) == 3
    assert data.num_batches(0, 3, False) == 0


@pytest.mark.parametrize("bad", [0, -1, 2.5, None, True])
def test_bad_batch_size(bad):
    ds = _toy(10)
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(ds, bad)
    with pytest.raises(ValueError, match="batch_size"):
        data.num_batches(10, bad, False)


def test_batch_size_larger_than_dataset():
    ds = _toy(10)
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(ds, 11, key=jax.random.key(0))
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(ds, 11, drop_remainder=True)
    # Evaluation keeps the partial batch, so it is fine.
    (x, y), = list(data.batches(ds, 11))
    assert len(x) == 10


def test_mismatched_tuple():
    with pytest.raises(ValueError, match="same length"):
        data.batches((np.zeros((3, 2), np.float32), np.zeros(4, np.int32)), 2)
