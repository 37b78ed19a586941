"""The embedded mnist-5k dataset: content, format, stratified split, speed, cache safety."""

import os
import time

import numpy as np
import pytest

from robustjax import data
from robustjax.data import catalog, mnist5k

CSV = "/tmp/mnist_5k.csv.gz"


def _raw():
    with np.load(mnist5k.NPZ_PATH) as f:
        return {k: f[k] for k in f.files}


def test_npz_is_shipped_and_small():
    assert os.path.exists(mnist5k.NPZ_PATH)
    assert 0.3e6 < os.path.getsize(mnist5k.NPZ_PATH) < 1.5e6
    raw = _raw()
    assert raw["images"].shape == (5000, 28, 28) and raw["images"].dtype == np.uint8
    assert raw["labels"].shape == (5000,) and raw["labels"].dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(raw["labels"]), [500] * 10)


@pytest.mark.skipif(not os.path.exists(CSV), reason=f"{CSV} not available")
def test_npz_equals_csv():
    # Independent parse of the csv (pandas-free, via the csv module): 784 pixels then the label.
    import csv
    import gzip

    with gzip.open(CSV, "rt") as f:
        rows = np.array([[int(v) for v in row] for row in csv.reader(f)])
    raw = _raw()
    np.testing.assert_array_equal(raw["images"].reshape(5000, 784), rows[:, :784])
    np.testing.assert_array_equal(raw["labels"], rows[:, 784])
    # And what `load` returns is exactly those pixels / 255, at the stored split indices.
    for split in ("train", "test"):
        ds = data.load("mnist-5k", split)
        idx = raw[f"{split}_index"]
        np.testing.assert_array_equal(ds.labels, rows[idx, 784])
        np.testing.assert_allclose(
            ds.images.reshape(len(ds), 784), rows[idx, :784] / 255.0, rtol=0, atol=1e-7
        )


def test_format_and_range():
    for split, n in (("train", 4000), ("test", 1000)):
        ds = data.load("mnist-5k", split)
        assert len(ds) == n and ds.name == "mnist-5k" and ds.split == split
        assert ds.images.shape == (n, 28, 28, 1) and ds.images.dtype == np.float32
        assert ds.labels.shape == (n,) and ds.labels.dtype == np.int32
        assert ds.num_classes == 10
        assert ds.images.min() == 0.0 and ds.images.max() == 1.0
        # Real digits, not noise: the central region is bright on average, the border dark.
        center = ds.images[:, 10:18, 10:18].mean()
        border = ds.images[:, :2].mean()
        assert center > 0.3 and border < 0.01
        # Pixels are multiples of 1/255.
        np.testing.assert_allclose(ds.images * 255, np.round(ds.images * 255), atol=1e-4)


def test_default_load_is_mnist5k_train():
    assert data.load() is data.load("mnist-5k", "train")


def test_stratified_split_counts_disjoint_deterministic():
    raw = _raw()
    train, test = raw["train_index"], raw["test_index"]
    assert len(train) == 4000 and len(test) == 1000
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(5000))
    np.testing.assert_array_equal(np.bincount(raw["labels"][train]), [400] * 10)
    np.testing.assert_array_equal(np.bincount(raw["labels"][test]), [100] * 10)
    # The stored split is what the documented function produces, and is shuffled (prefix mixes
    # classes even though the csv is sorted by class).
    tr2, te2 = mnist5k.stratified_split(raw["labels"])
    np.testing.assert_array_equal(tr2, train)
    np.testing.assert_array_equal(te2, test)
    assert len(np.unique(raw["labels"][train[:100]])) == 10
    # Deterministic across calls (also after clearing the caches).
    a = data.load("mnist-5k", "test")
    catalog._load_cached.cache_clear()
    mnist5k._read_npz.cache_clear()
    b = data.load("mnist-5k", "test")
    assert a is not b
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_stratified_split_other_sizes():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    train, test = mnist5k.stratified_split(labels, test_per_class=4, seed=3)
    np.testing.assert_array_equal(np.bincount(labels[test]), [4, 4, 4])
    np.testing.assert_array_equal(np.bincount(labels[train]), [6, 16, 26])
    with pytest.raises(ValueError, match="test_per_class"):
        mnist5k.stratified_split(labels, test_per_class=10)


def test_load_is_fast():
    catalog._load_cached.cache_clear()
    mnist5k._read_npz.cache_clear()
    t = time.perf_counter()
    data.load("mnist-5k", "train")
    data.load("mnist-5k", "test")
    assert time.perf_counter() - t < 1.0


def test_cached_arrays_are_read_only():
    ds = data.load("mnist-5k", "train")
    assert data.load("mnist-5k", "train") is ds
    with pytest.raises(ValueError):
        ds.images[0, 0, 0, 0] = 0.5
    with pytest.raises(ValueError):
        ds.labels[0] = 3
    with pytest.raises(Exception):
        ds.images = None  # frozen dataclass
    assert not np.isin(0.5, data.load("mnist-5k", "train").images[0, 0, 0])


def test_bad_split():
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'test'\]"):
        data.load("mnist-5k", "validation")
    with pytest.raises(ValueError, match="split"):
        data.load("mnist-5k", "train[:10%]")
