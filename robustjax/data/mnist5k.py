"""The embedded offline default dataset ``mnist-5k``: 5,000 real MNIST digits, 500 per class.

The digits ship inside the package as ``robustjax/data/mnist5k.npz`` (about 1 MB), so
examples, tests and the CLI run without network access. Nothing is ever downloaded for this
dataset. Provenance and license: ``robustjax/data/PROVENANCE.md``.

The npz holds

- ``images``       uint8 ``[5000, 28, 28]`` — the digits, in the row order of the source csv;
- ``labels``       uint8 ``[5000]``         — the digit classes 0–9;
- ``train_index``  int32 ``[4000]``         — rows of the train split (400 per class), in a
  shuffled order, so any prefix mixes the classes;
- ``test_index``   int32 ``[1000]``         — rows of the test split (100 per class), shuffled.

The split is computed once by ``scripts/make_mnist5k.py`` with :func:`stratified_split`
(seed :data:`SPLIT_SEED`) and *stored*, so it never depends on the NumPy version at load time;
``tests/test_data_mnist5k.py`` checks that the stored split is what ``stratified_split``
produces.
"""

from __future__ import annotations

import functools
import os

import numpy as np

NAME = "mnist-5k"
NPZ_PATH = os.path.join(os.path.dirname(__file__), "mnist5k.npz")
NUM_CLASSES = 10
TEST_PER_CLASS = 100
SPLIT_SEED = 0
SPLITS = ("train", "test")


def stratified_split(
    labels: np.ndarray, *, test_per_class: int = TEST_PER_CLASS, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(train_index, test_index)``: a deterministic stratified split of ``labels``.

    For every class, ``test_per_class`` of its rows (chosen by a NumPy ``PCG64`` generator seeded
    with ``seed``) go to the test split and the rest to the train split. Both index arrays are
    then shuffled by the same generator, so that a prefix of either split mixes all classes.
    """
    labels = np.asarray(labels)
    rng = np.random.Generator(np.random.PCG64(seed))
    train, test = [], []
    for k in np.unique(labels):
        rows = np.flatnonzero(labels == k)
        if rows.size <= test_per_class:
            raise ValueError(
                f"test_per_class must be smaller than every class size; class {k} has "
                f"{rows.size} rows, test_per_class={test_per_class}"
            )
        rows = rng.permutation(rows)
        test.append(rows[:test_per_class])
        train.append(rows[test_per_class:])
    train_index = rng.permutation(np.concatenate(train)).astype(np.int32)
    test_index = rng.permutation(np.concatenate(test)).astype(np.int32)
    return train_index, test_index


@functools.lru_cache(maxsize=1)
def _read_npz() -> dict[str, np.ndarray]:
    with np.load(NPZ_PATH) as f:
        arrays = {k: f[k] for k in ("images", "labels", "train_index", "test_index")}
    for a in arrays.values():
        a.flags.writeable = False
    return arrays


def load_mnist5k_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images float32 [N, 28, 28, 1] in [0, 1], labels int32 [N])`` of one split.

    ``split`` is ``"train"`` (4,000 digits) or ``"test"`` (1,000 digits).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)} for {NAME!r}; got {split!r}")
    arrays = _read_npz()
    index = arrays[f"{split}_index"]
    images = arrays["images"][index].astype(np.float32)[..., None]
    images /= np.float32(255.0)
    labels = arrays["labels"][index].astype(np.int32)
    return images, labels
