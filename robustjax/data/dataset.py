"""The one in-memory dataset format of robustjax, and per-dataset channel statistics.

Every loader (embedded ``mnist-5k``, tfds, synthetic) returns a :class:`Dataset`:

- ``images``: float32, values in [0, 1], batch first; images are NHWC (MNIST ``[N, 28, 28, 1]``,
  CIFAR ``[N, 32, 32, 3]``), synthetic data may be flat ``[N, D]``;
- ``labels``: int32 ``[N]`` in ``[0, num_classes)``.

Both arrays are read-only NumPy arrays: loaders cache datasets, and a caller writing into a
cached array would silently corrupt every later ``load``. Copy (``np.array(ds.images)``) to
modify.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Mapping

import numpy as np


def _read_only(a: Any, dtype) -> np.ndarray:
    """A read-only view of ``a`` as ``dtype`` (the caller's own array keeps its flags)."""
    a = np.asarray(a)
    if a.dtype != dtype:
        a = a.astype(dtype)
    view = a.view()
    view.flags.writeable = False
    return view


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled dataset held in memory: ``images`` float32 in [0, 1] (NHWC), ``labels`` int32.

    ``name`` and ``split`` say where it came from (e.g. ``"mnist-5k"``, ``"train"``);
    ``num_classes`` is the number of classes K (labels lie in ``[0, K)``); ``info`` holds
    loader-specific read-only extras (e.g. the class means of a synthetic Gaussian mixture).
    """

    images: np.ndarray
    labels: np.ndarray
    name: str
    split: str
    num_classes: int
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        images = np.asarray(self.images)
        labels = np.asarray(self.labels)
        if images.ndim < 2:
            raise ValueError(f"images must have shape [N, ...] with rank >= 2; got {images.shape}")
        if not np.issubdtype(images.dtype, np.floating):
            raise ValueError(
                f"images must be floating point in [0, 1]; got dtype {images.dtype} "
                "(convert uint8 images with x.astype('float32') / 255)"
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"labels must have shape [N] with N = {images.shape[0]} (one per image); got "
                f"{labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers; got dtype {labels.dtype}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, (int, np.integer)) \
                or self.num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1; got {self.num_classes!r}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"labels must lie in [0, {self.num_classes}); got [{labels.min()}, {labels.max()}]"
            )
        object.__setattr__(self, "images", _read_only(images, np.float32))
        object.__setattr__(self, "labels", _read_only(labels, np.int32))
        object.__setattr__(self, "num_classes", int(self.num_classes))
        object.__setattr__(self, "info", types.MappingProxyType(dict(self.info)))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(28, 28, 1)``."""
        return tuple(self.images.shape[1:])

    def subset(self, index) -> "Dataset":
        """The examples at ``index``, same metadata: an int ``n`` means the first ``n`` examples;
        otherwise an index array, slice or boolean mask."""
        return subset(self, index)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


def subset(dataset: Dataset, index) -> Dataset:
    """The examples of ``dataset`` at ``index``: an int ``n`` takes the first ``n`` (all if
    ``n >= len``); an index array, slice or boolean mask selects as in NumPy."""
    if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
        if index < 0:
            raise ValueError(f"index must be a count >= 0 or an index array; got {index!r}")
        index = slice(0, int(index))
    return dataclasses.replace(dataset, images=dataset.images[index], labels=dataset.labels[index])


# Per-channel mean and standard deviation of the *train* split, for images scaled to [0, 1]
# (the model's first ``Standardize`` layer computes (x - mean) / std, so attacks still act in
# [0, 1] pixel space). The std is the pixel-level std over all train pixels of the channel.
#   mnist-5k: computed from its 4,000-image train split (checked by tests/test_data_dataset.py);
#   mnist, fashion_mnist, cifar10, cifar100, svhn_cropped: the usual published values of the
#   full train splits.
_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist-5k": ((0.1311,), (0.3083,)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn_cropped": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel ``(mean, std)`` of ``images`` ``[N, ..., C]`` (flat ``[N, D]``: one channel)."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 2:
        images = images.reshape(-1, 1)
    flat = images.reshape(-1, images.shape[-1])
    return tuple(map(float, flat.mean(axis=0))), tuple(map(float, flat.std(axis=0)))


def known_stats_names() -> tuple[str, ...]:
    return tuple(_STATS)


def dataset_stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return ``(mean, std)``: per-channel tuples of the train split of dataset ``name``.

    Meant for the model's first ``Standardize`` layer. Real datasets use hardcoded constants;
    synthetic datasets (see ``robustjax.data.known_datasets()``) compute them from their
    deterministic train split.
    """
    if name in _STATS:
        return _STATS[name]
    from robustjax.data import catalog  # local import: catalog imports this module

    if name in catalog.SYNTHETIC:
        return channel_stats(catalog.load(name, "train").images)
    raise ValueError(
        f"name must be one of {sorted(list(_STATS) + list(catalog.SYNTHETIC))}; got {name!r}"
    )
