"""``load(name, split)``: every dataset robustjax knows, by name, in one format.

- ``"mnist-5k"`` — embedded in the package, offline, the default (4,000 train / 1,000 test).
- ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ``"cifar100"``, ``"svhn_cropped"`` — through
  ``tfds.data_source`` (tfds split strings such as ``"train[:10%]"`` pass through).
- ``"synthetic-mnist"``, ``"gaussian-mixture"`` — deterministic Gaussian mixtures (fixed key),
  for fast tests of the training and evaluation code.
"""

from __future__ import annotations

import functools

import jax

from robustjax.data import mnist5k, synthetic, tfds_source
from robustjax.data.dataset import Dataset

# name -> keyword arguments of `synthetic.gaussian_mixture` (plus sizes per split).
SYNTHETIC: dict[str, dict] = {
    # MNIST-shaped, 10 classes: exercises the image models and CLI without any real data.
    "synthetic-mnist": dict(
        image_shape=(28, 28, 1), num_classes=10, separation=2.0, noise_std=0.3,
        sizes={"train": 1000, "test": 200}, seed=0,
    ),
    # Flat 16-dim inputs, 4 classes: MLPs and analytic checks.
    "gaussian-mixture": dict(
        dim=16, num_classes=4, separation=0.5, noise_std=0.1,
        sizes={"train": 1024, "test": 256}, seed=0,
    ),
}


def known_datasets() -> tuple[str, ...]:
    """Every name :func:`load` accepts."""
    return (mnist5k.NAME, *tfds_source.TFDS_DATASETS, *SYNTHETIC)


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, split: str, data_dir: str | None) -> Dataset:
    if name == mnist5k.NAME:
        images, labels = mnist5k.load_mnist5k_arrays(split)
        return Dataset(images, labels, name=name, split=split, num_classes=mnist5k.NUM_CLASSES)
    if name in tfds_source.TFDS_DATASETS:
        images, labels, num_classes = tfds_source.load_tfds_arrays(name, split, data_dir=data_dir)
        return Dataset(images, labels, name=name, split=split, num_classes=num_classes)
    spec = dict(SYNTHETIC[name])
    sizes, seed = spec.pop("sizes"), spec.pop("seed")
    return synthetic.gaussian_mixture(
        jax.random.key(seed), n=sizes[split], split=split, name=name, **spec
    )


def _check_split(name: str, split) -> None:
    if name in tfds_source.TFDS_DATASETS:
        tfds_source.check_tfds_split(name, split)
        return
    splits = mnist5k.SPLITS if name == mnist5k.NAME else tuple(SYNTHETIC[name]["sizes"])
    if split not in splits:
        raise ValueError(f"split must be one of {list(splits)} for {name!r}; got {split!r}")


def load(name: str = mnist5k.NAME, split: str = "train", *, data_dir: str | None = None) -> Dataset:
    """Load dataset ``name``, split ``split``, as a :class:`Dataset` (float32 NHWC in [0, 1]).

    ``name``: one of :func:`known_datasets` (default ``"mnist-5k"``, embedded and offline).
    ``split``: ``"train"`` or ``"test"`` (SVHN also ``"extra"``); tfds datasets accept tfds
    split strings (``"train[:10%]"``, ``"train+extra"``). ``data_dir``: tfds data directory
    (ignored by the embedded and synthetic datasets).

    Results are cached per ``(name, split, data_dir)``; the arrays are read-only, so the cache
    cannot be corrupted by a caller (copy before modifying).
    """
    if not isinstance(name, str) or name not in known_datasets():
        raise ValueError(f"name must be one of {list(known_datasets())}; got {name!r}")
    _check_split(name, split)
    if name not in tfds_source.TFDS_DATASETS:
        data_dir = None  # one cache entry whatever data_dir says
    return _load_cached(name, split, None if data_dir is None else str(data_dir))
