"""Synthetic datasets with known structure, for tests and small experiments.

- :func:`gaussian_mixture`: a K-class isotropic Gaussian mixture with known class means (flat
  ``[N, D]`` or image-shaped inputs), returned as a :class:`~robustjax.data.dataset.Dataset`.
- :func:`overparameterized_linear_regression`: the motivating example of SOAR (Ma, Faghri &
  Farahmand 2020, §2): inputs confined to a low-dimensional subspace of a high-dimensional
  space, so zero training loss leaves the weights of the unused directions free.
"""

from __future__ import annotations

import dataclasses
import math
import zlib

import jax
import numpy as np

from robustjax.core.validation import check_clip, check_nonnegative, check_positive_int
from robustjax.data.dataset import Dataset


def key_to_rng(key: jax.Array, *extra: int) -> np.random.Generator:
    """A NumPy generator seeded by the raw data of the JAX PRNG ``key`` (and ``extra`` words).

    The samplers here run once per dataset, so they draw with NumPy from a seed that is a
    deterministic function of the key (same key, same data) instead of compiling a one-off XLA
    program (seconds of compilation on a busy CPU for milliseconds of work).
    """
    if hasattr(key, "dtype") and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    words = np.asarray(key, dtype=np.uint32).ravel().tolist()
    return np.random.Generator(np.random.PCG64([*words, *extra]))


def _mixture_means(rng, *, d, num_classes, separation, center):
    directions = rng.standard_normal((d, num_classes))
    if num_classes <= d:
        directions, _ = np.linalg.qr(directions)  # orthonormal columns
    else:
        directions = directions / np.linalg.norm(directions, axis=0, keepdims=True)
    means = center + (separation / math.sqrt(2.0)) * directions.T  # [K, D]
    return means


def gaussian_mixture(
    key: jax.Array,
    *,
    n: int,
    dim: int | None = None,
    image_shape: tuple[int, ...] | None = None,
    num_classes: int = 2,
    separation: float = 1.0,
    noise_std: float = 0.1,
    center: float = 0.5,
    clip: tuple[float, float] | None = (0.0, 1.0),
    split: str = "train",
    name: str = "gaussian-mixture",
) -> Dataset:
    """Sample ``n`` examples of a ``num_classes``-class Gaussian mixture with known means.

    Class means: ``mu_k = center + (separation / sqrt(2)) * q_k``, with ``q_k`` orthonormal
    random directions (drawn from ``key``) when ``num_classes <= D``, so every pair of means is
    exactly ``separation`` apart; when ``num_classes > D`` the ``q_k`` are random unit vectors
    (pairwise distances then vary). Examples: ``x = mu_y + noise_std * N(0, I)``, then clipped to
    ``clip`` (``None``: no clipping; the default keeps inputs in [0, 1] like images). Classes are
    balanced (counts differ by at most one) and shuffled.

    ``key`` fixes the mixture; ``split`` selects an independent sample from it (``"train"`` and
    ``"test"`` with the same key share the means but not the examples). Inputs are flat
    ``[n, dim]`` or, with ``image_shape=(H, W, C)``, ``[n, H, W, C]`` (give one of the two).
    ``info`` holds ``means`` (``[K, *input_shape]``, before clipping), ``separation`` and
    ``noise_std``.
    """
    n = check_positive_int(n, name="n")
    num_classes = check_positive_int(num_classes, name="num_classes")
    check_nonnegative(separation, name="separation")
    check_nonnegative(noise_std, name="noise_std")
    clip = check_clip(clip)
    if (dim is None) == (image_shape is None):
        raise ValueError(
            f"give exactly one of dim (flat inputs) and image_shape; got dim={dim!r}, "
            f"image_shape={image_shape!r}"
        )
    if dim is not None:
        input_shape = (check_positive_int(dim, name="dim"),)
    else:
        input_shape = tuple(check_positive_int(s, name="image_shape") for s in image_shape)
    d = math.prod(input_shape)
    if not isinstance(split, str):
        raise ValueError(f"split must be a string such as 'train' or 'test'; got {split!r}")

    # The means come from the key alone; the examples from the key and the split name (crc32:
    # stable across processes, unlike Python's salted `hash`).
    means = _mixture_means(
        key_to_rng(key), d=d, num_classes=num_classes, separation=float(separation),
        center=float(center),
    )
    rng = key_to_rng(key, zlib.crc32(split.encode()))
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int32)
    x = means[labels] + noise_std * rng.standard_normal((n, d))
    if clip is not None:
        x = np.clip(x, clip[0], clip[1])
    x = x.astype(np.float32)
    means = means.astype(np.float32)
    return Dataset(
        images=np.asarray(x).reshape((n,) + input_shape),
        labels=np.asarray(labels),
        name=name,
        split=split,
        num_classes=num_classes,
        info={
            "means": np.asarray(means).reshape((num_classes,) + input_shape),
            "separation": float(separation),
            "noise_std": float(noise_std),
        },
    )


@dataclasses.dataclass(frozen=True, eq=False)
class LinearRegressionProblem:
    """An instance of the over-parameterized linear regression of SOAR §2.

    ``x`` [n, d] inputs, ``y`` [n] targets ``<w_star, x> (+ noise)``, ``w_star`` [d] the true
    weights, ``w_min_norm`` [d] the minimum-norm interpolating solution ``pinv(x) @ y``.
    """

    x: np.ndarray
    y: np.ndarray
    w_star: np.ndarray
    w_min_norm: np.ndarray

    def gradient_descent_limit(self, w_init) -> np.ndarray:
        """Where gradient descent on the squared loss converges from ``w_init`` [d].

        GD only moves ``w`` within the row space of ``x``, so it ends at the min-norm solution
        plus the untouched component of ``w_init`` orthogonal to the row space:
        ``w_min_norm + (I - pinv(x) x) w_init`` (SOAR §2: ``w̄_1 = w*_1``, ``w̄_j = w_j(0)``).
        """
        x = self.x.astype(np.float64)
        w_init = np.asarray(w_init, dtype=np.float64)
        projected = np.linalg.pinv(x) @ (x @ w_init)
        return (self.w_min_norm + w_init - projected).astype(np.float32)


def overparameterized_linear_regression(
    key: jax.Array,
    *,
    n: int,
    d: int,
    subspace_dim: int = 1,
    mean: float = 1.0,
    noise_std: float = 0.0,
) -> LinearRegressionProblem:
    """Sample the SOAR §2 setting (Ma, Faghri & Farahmand 2020): few samples, many dimensions.

    The inputs are confined to the first ``subspace_dim`` coordinates: ``x_j ~ N(mean, 1)`` for
    ``j < subspace_dim`` and ``x_j = 0`` otherwise (the paper's case is ``subspace_dim = 1``,
    density ``p1(x1) δ(x2)…δ(xd)``, with ``E[X1] = mean != 0`` as the paper assumes). The true
    weights are ``w* = (1, 0, …, 0)``, targets ``y = <w*, x> + noise_std * N(0, 1)``.

    Gradient descent from ``w(0)`` reaches zero training loss but keeps ``w_j(0)`` for the unused
    coordinates (:meth:`LinearRegressionProblem.gradient_descent_limit`), which an FGSM-like
    ``Δx = ε sign(w)`` on those coordinates exploits (loss ≈ ε² ‖w(0)‖₁² / 2, §2); the
    minimum-norm solution ``w_min_norm`` (zero outside the row space) is not attackable there.
    """
    n = check_positive_int(n, name="n")
    d = check_positive_int(d, name="d")
    subspace_dim = check_positive_int(subspace_dim, name="subspace_dim")
    if subspace_dim > d:
        raise ValueError(f"subspace_dim must be <= d = {d}; got {subspace_dim}")
    check_nonnegative(noise_std, name="noise_std")
    rng = key_to_rng(key)
    x = np.zeros((n, d), dtype=np.float32)
    x[:, :subspace_dim] = mean + rng.standard_normal((n, subspace_dim))
    w_star = np.zeros((d,), dtype=np.float32)
    w_star[0] = 1.0
    y = x @ w_star + np.float32(noise_std) * rng.standard_normal((n,)).astype(np.float32)
    w_min_norm = np.linalg.pinv(x.astype(np.float64)) @ y.astype(np.float64)
    return LinearRegressionProblem(
        x=x, y=y.astype(np.float32), w_star=w_star, w_min_norm=w_min_norm.astype(np.float32)
    )
