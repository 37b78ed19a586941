"""MNIST, Fashion-MNIST, CIFAR-10/100 and SVHN through ``tfds.data_source`` (no TensorFlow).

``tfds.data_source(name, split=..., data_dir=...)`` gives random access to the examples of a
prepared tfds dataset (ArrayRecord files) as NumPy dicts ``{"image": uint8 [H, W, C],
"label": int, ...}``; it needs no TensorFlow. When the dataset is not yet in ``data_dir``, tfds
downloads and prepares it on the first call (that step is tfds's, and may need TensorFlow or
``apache_beam`` for some datasets; prepare once, then every later call is offline).

:func:`examples_to_arrays` converts any sequence of such dicts into the robustjax format
(float32 NHWC in [0, 1], int32 labels); it is the code path the tests run through
``tfds.testing.mock_data``.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

# name -> (splits, num_classes, image shape)
TFDS_DATASETS: dict[str, tuple[tuple[str, ...], int, tuple[int, int, int]]] = {
    "mnist": (("train", "test"), 10, (28, 28, 1)),
    "fashion_mnist": (("train", "test"), 10, (28, 28, 1)),
    "cifar10": (("train", "test"), 10, (32, 32, 3)),
    "cifar100": (("train", "test"), 100, (32, 32, 3)),
    "svhn_cropped": (("train", "test", "extra"), 10, (32, 32, 3)),
}

# A tfds split string: one split name, optionally sliced ("train[:10%]", "test[100:200]"),
# possibly several joined with "+" ("train+extra"). Slicing syntax itself is checked by tfds.
_SPLIT_PART = re.compile(r"^\s*([A-Za-z_]+)\s*(\[[^\]]*\])?\s*$")


def check_tfds_split(name: str, split: str) -> str:
    """Raise ``ValueError`` unless every part of the tfds split string ``split`` names a split of
    ``name`` (``"train"``, ``"test"``, ``"train[:10%]"``, ``"train+extra"``, ...)."""
    splits = TFDS_DATASETS[name][0]
    if not isinstance(split, str):
        raise ValueError(f"split must be one of {list(splits)} (a string); got {split!r}")
    for part in split.split("+"):
        match = _SPLIT_PART.match(part)
        if match is None or match.group(1) not in splits:
            raise ValueError(
                f"split must be one of {list(splits)} (tfds slicing such as 'train[:10%]' is "
                f"allowed) for {name!r}; got {split!r}"
            )
    return split


def examples_to_arrays(
    examples: Sequence[dict[str, Any]], *, image_key: str = "image", label_key: str = "label"
) -> tuple[np.ndarray, np.ndarray]:
    """Stack tfds example dicts into ``(images float32 [N, H, W, C] in [0, 1], labels int32 [N])``.

    Images must be uint8 (``[H, W, C]`` or ``[H, W]``, the latter gets a channel axis); they are
    scaled by 1/255. Reads ``examples[i]`` one index at a time, so it works on any random-access
    source (a ``tfds.data_source``, a list).
    """
    n = len(examples)
    if n == 0:
        raise ValueError("examples must not be empty")
    first = examples[0]
    image0 = np.asarray(first[image_key])
    if image0.dtype != np.uint8:
        raise ValueError(f"expected uint8 images under {image_key!r}; got dtype {image0.dtype}")
    shape = image0.shape if image0.ndim == 3 else image0.shape + (1,)
    images = np.empty((n,) + shape, dtype=np.uint8)
    labels = np.empty((n,), dtype=np.int64)
    for i in range(n):
        example = first if i == 0 else examples[i]
        images[i] = np.asarray(example[image_key]).reshape(shape)
        labels[i] = int(example[label_key])
    out = images.astype(np.float32)
    out /= np.float32(255.0)
    return out, labels.astype(np.int32)


def load_tfds_arrays(
    name: str, split: str, *, data_dir: str | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Return ``(images, labels, num_classes)`` of tfds dataset ``name``, split ``split``.

    Uses ``tfds.data_source(name, split=split, data_dir=data_dir)``; ``data_dir=None`` is tfds's
    default (``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``).
    """
    if name not in TFDS_DATASETS:
        raise ValueError(f"name must be one of {sorted(TFDS_DATASETS)}; got {name!r}")
    check_tfds_split(name, split)
    import tensorflow_datasets as tfds  # imported lazily: keeps `import robustjax` fast

    try:
        source = tfds.data_source(name, split=split, data_dir=data_dir)
    except Exception as error:  # tfds raises many types here (ImportError, DatasetNotFound, ...)
        raise RuntimeError(
            f"could not open tfds dataset {name!r} (split {split!r}, data_dir {data_dir!r}): "
            f"{type(error).__name__}: {error}. tfds.data_source reads a dataset prepared in the "
            "ArrayRecord format and, when it is missing, downloads and prepares it, which needs "
            "network access and, for most datasets, TensorFlow (pip install 'robustjax[tensorflow]'"
            "). Prepare it once with `tfds build "
            f"{name} --file_format=array_record --data_dir DIR` and pass data_dir=DIR, or use the "
            "embedded offline dataset 'mnist-5k'."
        ) from error
    images, labels = examples_to_arrays(source)
    num_classes = TFDS_DATASETS[name][1]
    try:  # trust the dataset's own metadata when it is available
        num_classes = int(source.dataset_info.features["label"].num_classes)
    except (AttributeError, KeyError, TypeError):
        pass
    return images, labels, num_classes
