"""tfds datasets through `tfds.data_source`, exercised offline with `tfds.testing.mock_data`.

`mock_data(policy=USE_CODE)` patches `DatasetBuilder.as_data_source` so that
`tfds.data_source(name, split=...)` returns a real `ArrayRecordDataSource` whose records are
random examples generated from the dataset's feature spec (uint8 images of the true shape,
labels in [0, num_classes)); nothing is read from disk or the network. `__getitems__` of that
mock is broken in tfds 4.9.10 (an unbound partial), which is one reason the conversion reads
`source[i]` one index at a time.
"""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from robustjax import data
from robustjax.data import catalog, tfds_source


@pytest.fixture
def mock_tfds():
    catalog._load_cached.cache_clear()  # never serve (or keep) mock data from the cache
    with tfds.testing.mock_data(num_examples=13, policy=tfds.testing.MockPolicy.USE_CODE):
        yield
    catalog._load_cached.cache_clear()


def _reference(name, split):
    """The mocked examples read directly, converted with plain float64 arithmetic."""
    source = tfds.data_source(name, split=split)
    ex = [source[i] for i in range(len(source))]
    images = np.stack([np.asarray(e["image"], np.float64) / 255.0 for e in ex])
    labels = np.array([int(e["label"]) for e in ex])
    return images, labels


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "fashion_mnist", "svhn_cropped"])
def test_load_through_mocked_data_source(mock_tfds, name):
    _, num_classes, shape = tfds_source.TFDS_DATASETS[name]
    ds = data.load(name, "test", data_dir="/nonexistent/tfds")
    assert ds.name == name and ds.split == "test" and ds.num_classes == num_classes
    assert ds.images.shape == (13,) + shape and ds.images.dtype == np.float32
    assert ds.labels.shape == (13,) and ds.labels.dtype == np.int32
    assert ds.images.min() >= 0.0 and ds.images.max() <= 1.0
    assert ds.images.max() > 0.5  # scaled by 1/255, not by something else
    assert ds.labels.min() >= 0 and ds.labels.max() < num_classes
    ref_images, ref_labels = _reference(name, "test")
    np.testing.assert_allclose(ds.images, ref_images, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(ds.labels, ref_labels)
    with pytest.raises(ValueError):
        ds.images[0, 0, 0, 0] = 1.0  # read-only like every cached dataset
    mean, std = data.dataset_stats(name)
    assert len(mean) == len(std) == shape[-1]


def test_sliced_split_passes_through(mock_tfds):
    ds = data.load("mnist", "train[:10%]")
    assert ds.split == "train[:10%]" and ds.images.shape[1:] == (28, 28, 1)
    ds = data.load("svhn_cropped", "train+extra")
    assert ds.images.shape[1:] == (32, 32, 3)


def test_examples_to_arrays_on_plain_lists():
    rng = np.random.default_rng(0)
    ex = [{"image": rng.integers(0, 256, (5, 4), dtype=np.uint8), "label": np.int64(i % 3)}
          for i in range(6)]
    images, labels = data.examples_to_arrays(ex)
    assert images.shape == (6, 5, 4, 1) and images.dtype == np.float32
    np.testing.assert_array_equal(labels, [0, 1, 2, 0, 1, 2])
    np.testing.assert_allclose(images[..., 0], np.stack([e["image"] for e in ex]) / 255.0, atol=1e-7)
    with pytest.raises(ValueError, match="uint8"):
        data.examples_to_arrays([{"image": np.zeros((2, 2), np.float32), "label": 0}])
    with pytest.raises(ValueError, match="empty"):
        data.examples_to_arrays([])


@pytest.mark.parametrize("name,split", [("mnist", "validation"), ("cifar10", "extra"),
                                        ("cifar10", "train+val"), ("mnist", "[:10]"),
                                        ("svhn_cropped", None)])
def test_unknown_split(name, split):
    with pytest.raises(ValueError, match="split must be one of"):
        data.load(name, split)


def test_missing_dataset_error_is_explained(monkeypatch):
    catalog._load_cached.cache_clear()

    def fail(*args, **kwargs):
        raise ImportError("No module named 'tensorflow'")

    monkeypatch.setattr(tfds, "data_source", fail)
    with pytest.raises(RuntimeError, match="tfds build cifar10 --file_format=array_record"):
        data.load("cifar10", "train", data_dir="/nonexistent")
