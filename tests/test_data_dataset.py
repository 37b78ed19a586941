"""The Dataset container, channel statistics and the `load` catalog's argument checking."""

import numpy as np
import pytest

from robustjax import data
from robustjax.data import dataset as dataset_module


def test_dataset_converts_and_freezes_without_touching_caller_arrays():
    images = np.zeros((4, 3, 3, 1), np.float64)
    labels = np.array([0, 1, 2, 1], np.int64)
    ds = data.Dataset(images, labels, name="x", split="train", num_classes=3)
    assert ds.images.dtype == np.float32 and ds.labels.dtype == np.int32
    assert len(ds) == 4 and ds.input_shape == (3, 3, 1)
    with pytest.raises(ValueError):
        ds.labels[0] = 2
    images[0] = 1.0  # the caller's own array stays writable
    sub = ds.subset(np.array([3, 1]))
    np.testing.assert_array_equal(sub.labels, [1, 1])
    assert sub.name == "x" and sub.num_classes == 3
    with pytest.raises(ValueError):
        sub.images[0] = 1.0
    assert "n=4" in repr(ds)
    first3 = data.subset(ds, 3)
    assert len(first3) == 3 and len(ds.subset(10)) == 4 and len(data.subset(ds, 0)) == 0
    np.testing.assert_array_equal(first3.labels, labels[:3])
    np.testing.assert_array_equal(ds.subset(labels == 1).labels, [1, 1])
    with pytest.raises(ValueError, match="index"):
        data.subset(ds, -1)


@pytest.mark.parametrize("images,labels,k,match", [
    (np.zeros(3, np.float32), np.zeros(3, int), 2, "rank"),
    (np.zeros((3, 2), np.uint8), np.zeros(3, int), 2, "floating"),
    (np.zeros((3, 2), np.float32), np.zeros(4, int), 2, "labels"),
    (np.zeros((3, 2), np.float32), np.zeros(3, np.float32), 2, "integers"),
    (np.zeros((3, 2), np.float32), np.array([0, 1, 2]), 2, r"\[0, 2\)"),
    (np.zeros((3, 2), np.float32), np.array([0, 1, 1]), 0, "num_classes"),
])
def test_dataset_rejects_bad_arrays(images, labels, k, match):
    with pytest.raises(ValueError, match=match):
        data.Dataset(images, labels, name="x", split="train", num_classes=k)


def test_mnist5k_stats_match_its_train_split():
    train = data.load("mnist-5k", "train")
    flat = train.images.astype(np.float64).ravel()
    mean, std = data.dataset_stats("mnist-5k")
    assert mean == pytest.approx((flat.mean(),), abs=5e-5)
    assert std == pytest.approx((flat.std(),), abs=5e-5)
    cmean, cstd = data.channel_stats(train.images)
    assert cmean == pytest.approx(mean, abs=5e-5) and cstd == pytest.approx(std, abs=5e-5)


def test_channel_stats_per_channel():
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(0.2, 0.1, (50, 4, 4)), rng.normal(0.7, 0.3, (50, 4, 4))], axis=-1)
    mean, std = data.channel_stats(x)
    np.testing.assert_allclose(mean, [x[..., 0].mean(), x[..., 1].mean()])
    np.testing.assert_allclose(std, [x[..., 0].std(), x[..., 1].std()])
    assert data.channel_stats(np.array([[0.0, 1.0], [1.0, 0.0]])) == ((0.5,), (0.5,))


def test_published_stats_shapes_and_values():
    assert data.dataset_stats("mnist") == ((0.1307,), (0.3081,))
    mean, std = data.dataset_stats("cifar10")
    assert mean == pytest.approx((0.4914, 0.4822, 0.4465)) and len(std) == 3
    for name in ("fashion_mnist", "cifar100", "svhn_cropped"):
        mean, std = data.dataset_stats(name)
        channels = data.TFDS_DATASETS[name][2][-1]
        assert len(mean) == len(std) == channels
        assert all(0 < m < 1 for m in mean) and all(0 < s < 0.5 for s in std)
    # Every loadable dataset has statistics.
    for name in data.known_datasets():
        data.dataset_stats(name)
    with pytest.raises(ValueError, match="name must be one of"):
        data.dataset_stats("imagenet")


@pytest.mark.parametrize("name", ["imagenet", "MNIST", "mnist5k", None, 3])
def test_unknown_name_lists_known(name):
    with pytest.raises(ValueError, match="name must be one of") as info:
        data.load(name, "train")
    for known in ("mnist-5k", "cifar10", "svhn_cropped", "synthetic-mnist"):
        assert known in str(info.value)


def test_unknown_split_lists_known():
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'test'\]"):
        data.load("synthetic-mnist", "val")
    with pytest.raises(ValueError, match=r"\['train', 'test', 'extra'\]"):
        data.load("svhn_cropped", "valid")


def test_known_datasets():
    names = data.known_datasets()
    assert names[0] == "mnist-5k"
    assert {"mnist", "fashion_mnist", "cifar10", "cifar100", "svhn_cropped"} <= set(names)
    assert set(data.SYNTHETIC) <= set(names)
    assert set(dataset_module.known_stats_names()) <= set(names)
