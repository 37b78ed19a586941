"""Datasets: the embedded offline ``mnist-5k`` default, tfds loaders, synthetic data, batching.

One format everywhere: a :class:`Dataset` of read-only NumPy arrays, images float32 in [0, 1]
(NHWC, e.g. MNIST ``[N, 28, 28, 1]``) and labels int32.

>>> from robustjax import data
>>> train = data.load("mnist-5k", "train")          # offline, 4,000 digits
>>> for x, y in data.batches(train, 128, key=jax.random.key(0)):  # shuffled, remainder dropped
...     ...
>>> mean, std = data.dataset_stats("mnist-5k")      # for the model's Standardize layer
"""

from robustjax.data.augmentation import (
    augment_pad_crop_flip,
    augmentation,
    pad_crop_flip,
    pad_crop_flip_offsets,
)
from robustjax.data.batching import batches, num_batches
from robustjax.data.catalog import SYNTHETIC, known_datasets, load
from robustjax.data.dataset import Dataset, channel_stats, dataset_stats, subset
from robustjax.data.synthetic import (
    LinearRegressionProblem,
    gaussian_mixture,
    overparameterized_linear_regression,
)
from robustjax.data.tfds_source import TFDS_DATASETS, examples_to_arrays

__all__ = [
    "Dataset",
    "LinearRegressionProblem",
    "SYNTHETIC",
    "TFDS_DATASETS",
    "augment_pad_crop_flip",
    "augmentation",
    "batches",
    "channel_stats",
    "dataset_stats",
    "examples_to_arrays",
    "gaussian_mixture",
    "known_datasets",
    "load",
    "num_batches",
    "overparameterized_linear_regression",
    "pad_crop_flip",
    "pad_crop_flip_offsets",
    "subset",
]
