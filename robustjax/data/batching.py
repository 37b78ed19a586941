"""Mini-batches of a :class:`~robustjax.data.dataset.Dataset` with an explicit PRNG key.

Training mode (``key`` given): a permutation drawn from the key orders the examples (same key,
same batches) and the incomplete last batch is dropped, so every batch has the same shape and
the jitted train step compiles once. Eval mode (``key=None``): every example exactly once, in
order, the last batch possibly smaller.
"""

from __future__ import annotations

from typing import Iterator

import jax
import numpy as np

from robustjax.data.dataset import Dataset


def num_batches(n: int, batch_size: int, drop_remainder: bool) -> int:
    """Number of batches of ``batch_size`` from ``n`` examples (floor if dropping, else ceil)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an integer >= 0; got {n!r}")
    _check_batch_size(batch_size)
    return int(n) // batch_size if drop_remainder else -(-int(n) // batch_size)


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    return int(batch_size)


def batches(
    dataset: Dataset | tuple[np.ndarray, np.ndarray],
    batch_size: int,
    *,
    key: jax.Array | None = None,
    drop_remainder: bool | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x, y)`` NumPy batches of ``dataset`` (a Dataset or a pair ``(images, labels)``).

    ``key``: a ``jax.random`` key; when given, the examples are visited in the order of
    ``jax.random.permutation(key, n)`` (deterministic: same key, same batches). ``None`` keeps the
    dataset order (evaluation). ``drop_remainder`` defaults to ``key is not None`` (training
    drops the incomplete last batch; evaluation covers every example). When dropping, a
    ``batch_size`` larger than the dataset would yield nothing and raises ``ValueError``.
    """
    if isinstance(dataset, Dataset):
        images, labels = dataset.images, dataset.labels
    else:
        try:
            images, labels = dataset
        except (TypeError, ValueError):
            raise ValueError(
                f"dataset must be a Dataset or a pair (images, labels); got {type(dataset)}"
            ) from None
        images, labels = np.asarray(images), np.asarray(labels)
        if images.shape[:1] != labels.shape[:1]:
            raise ValueError(
                f"dataset images and labels must have the same length; got {images.shape[0]} "
                f"and {labels.shape[0]}"
            )
    batch_size = _check_batch_size(batch_size)
    if drop_remainder is None:
        drop_remainder = key is not None
    n = int(images.shape[0])
    if drop_remainder and batch_size > n:
        raise ValueError(
            f"batch_size must be <= the dataset size {n} when drop_remainder=True (otherwise no "
            f"batch is produced); got {batch_size}"
        )
    order = None if key is None else np.asarray(jax.random.permutation(key, n))
    return _iterate(images, labels, order, batch_size, num_batches(n, batch_size, drop_remainder))


def _iterate(images, labels, order, batch_size, count):
    # A generator separate from `batches`, so bad arguments raise at the call, not at first next().
    for b in range(count):
        if order is None:
            sl = slice(b * batch_size, (b + 1) * batch_size)
            yield images[sl], labels[sl]
        else:
            idx = order[b * batch_size : (b + 1) * batch_size]
            yield images[idx], labels[idx]
