"""The evaluated data on the host: checked ``(images, labels)`` arrays, fixed-size chunks of
example indices (the last one padded by repeating its last example), the dataset's mean ℓ2
norm, and the evaluation key.

The data stay where they are (NumPy, memmap, a dataset object); the evaluator reads one chunk of
indices at a time (see ``placement.py`` for how a chunk goes to the devices).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def as_arrays(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` as host arrays from a pair, a mapping or an object with
    ``.images``/``.labels`` (``robustjax.data.load``). Raises ``ValueError`` on empty or
    inconsistent data, non-float images and non-integer labels."""
    if hasattr(data, "images") and hasattr(data, "labels"):
        images, labels = data.images, data.labels
    elif isinstance(data, Mapping):
        keys = [("images", "labels"), ("image", "label"), ("x", "y")]
        for ki, kl in keys:
            if ki in data and kl in data:
                images, labels = data[ki], data[kl]
                break
        else:
            raise ValueError(
                f"data mapping must have keys 'images' and 'labels'; got {sorted(data)}"
            )
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = data
    else:
        raise ValueError(
            "data must be a pair (images, labels), a mapping with 'images'/'labels' or an object "
            f"with .images and .labels; got {type(data).__name__}"
        )
    if not isinstance(images, np.ndarray):
        images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim < 2:
        raise ValueError(f"data images must have shape [N, ...] with rank >= 2; got {images.shape}")
    if images.shape[0] == 0:
        raise ValueError("data is empty: the dataset has 0 examples; nothing to evaluate")
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"data images must be floating point (float32 in [0, 1]); got dtype {images.dtype}. "
            "Convert integer images with images.astype('float32') / 255."
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"data labels must be a vector of integers [N]; got shape {labels.shape}, "
            f"dtype {labels.dtype}"
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"data images and labels must have the same length; got {images.shape[0]} images "
            f"and {labels.shape[0]} labels"
        )
    return images, labels


def chunk_indices(n: int, batch_size: int):
    """Index vectors ``[0, b), [b, 2b), ...`` covering ``range(n)`` once, in order."""
    for start in range(0, n, batch_size):
        yield np.arange(start, min(start + batch_size, n))


def pad_indices(idx: np.ndarray, batch_size: int) -> np.ndarray:
    """Pad an index vector to ``batch_size`` by repeating its last entry."""
    if len(idx) == batch_size:
        return idx
    return np.concatenate([idx, np.full(batch_size - len(idx), idx[-1], idx.dtype)])


def check_finite(images: np.ndarray, batch_size: int) -> None:
    """``ValueError`` if any image holds NaN or ±inf (read chunk by chunk)."""
    for idx in chunk_indices(images.shape[0], max(batch_size, 1024)):
        block = np.asarray(images[idx[0] : idx[-1] + 1])
        if not np.all(np.isfinite(block)):
            raise ValueError("data images contain NaN or infinite values")


def mean_l2_norm(images: np.ndarray, *, batch_size: int = 1024) -> float:
    """``E‖x‖₂`` over the dataset (per-example ℓ2 norm over all non-batch axes), chunked.
    The scale of Farnia et al.'s relative ε (``ε = 0.05·E_P[‖X‖₂]``)."""
    total = 0.0
    n = images.shape[0]
    for idx in chunk_indices(n, batch_size):
        block = np.asarray(images[idx[0] : idx[-1] + 1], np.float64).reshape(len(idx), -1)
        total += float(np.sum(np.sqrt(np.sum(block * block, axis=1))))
    return total / n


def as_key(key: Any) -> jax.Array:
    """``key`` as a ``jax.random`` key (an int is a seed); ``ValueError`` otherwise.

    The key is rebuilt from its host value, so it is not committed to a device: the evaluator's
    programs run on the data mesh of every device, where a key placed on one device would be
    rejected.
    """
    if key is None:
        raise ValueError("key must be a jax.random key (or an int seed); got None")
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if not hasattr(key, "dtype"):
        raise ValueError(f"key must be a jax.random key (or an int seed); got {key!r}")
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(np.asarray(jax.random.key_data(key)),
                                        impl=jax.random.key_impl(key))
    return jnp.asarray(np.asarray(key))

