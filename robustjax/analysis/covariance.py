"""Covariance structure of perturbations (Roth, Nowozin, Lucchi, Hofmann 2018, SGR, §4.2,
Fig. 1–2, eq. 15–16, footnote 5).

:func:`perturbation_covariance` estimates, from perturbations ``ξ[N, ...]`` (adversarial
perturbations ``x_adv − x``, loss gradients, or data ``x`` itself for the data-set covariance
SGR Fig. 1 compares with):

* the covariance matrix ``Σ[D, D]`` over examples of the flattened (row-major ``H, W, C``)
  pixels (eq. 15), centered by default, raw second moments with ``centered=False`` (what the
  SGR regularizer uses, footnote 4). Normalized by ``N`` (not ``N − 1``) so that it matches
  the covariance function below entry by entry;
* for images ``[N, H, W, C]`` (or ``[N, H, W]``), the covariance function of the rounded pixel
  displacement (eq. 16): ``function[c, c', r]`` is the mean of ``Σ[(p, c), (q, c')]`` over all
  ordered pixel pairs ``(p, q)`` with ``round(‖p − q‖₂) = r``; ``function[c, c]`` are the
  intra-channel functions (Fig. 2 left), ``function[c, c']`` (``c ≠ c'``) the inter-channel
  ones (Fig. 2 right). It is the SGR regularizer's estimator
  (``regularizers.covariance_update`` on a ``"function"`` state, one batch, β = 1);
* the decay length (SGR footnote 5: "the displacement over which the covariance function
  decays to 1/e of its value"): for a function ``f(r)``, the first displacement where
  ``f(r) / f(0)`` falls below ``1/e``, linearly interpolated between the two integer
  displacements that bracket the crossing; ``inf`` if it never falls below ``1/e`` within
  ``max_distance``, ``0`` if ``f(0) ≤ 0`` (no variance: nothing to decay).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax.numpy as jnp
import numpy as np

from robustjax.analysis.results import AnalysisResult
from robustjax.core.validation import check_inputs, check_positive_int
from robustjax.regularizers.covariance import covariance_init, covariance_update

__all__ = ["CovarianceResult", "perturbation_covariance", "decay_length", "displacement_pair_counts"]

MAX_MATRIX_DIM = 16384


@dataclasses.dataclass(frozen=True)
class CovarianceResult(AnalysisResult):
    """Covariance matrix and covariance function of perturbations (SGR 2018, Fig. 1–2).

    Fields:
      x_shape: one example's shape; ``count``: number of examples ``N``; ``centered``.
      mean: ``[*x_shape]`` mean perturbation.
      matrix: ``[D, D]`` covariance (or second moments), or ``None`` when not requested.
      distances: ``[R+1]`` integer displacements ``0 … max_distance`` (images only, else ``None``).
      function: ``[C, C, R+1]`` covariance function of the rounded displacement (images only).
      pair_counts: ``[R+1]`` ordered pixel pairs per displacement bin (reliability of each entry).
      decay_length: ``[C]`` decay length of each intra-channel function, pixels.
      mean_decay_length: decay length of the channel-averaged intra-channel function, pixels.
    Not per example: the examples are pooled (``concatenate_results`` does not apply; pass all
    perturbations at once).
    """

    x_shape: tuple
    count: int
    centered: bool
    mean: np.ndarray
    matrix: np.ndarray | None = None
    distances: np.ndarray | None = None
    function: np.ndarray | None = None
    pair_counts: np.ndarray | None = None
    decay_length: np.ndarray | None = None
    mean_decay_length: float | None = None

    @property
    def intra_channel(self) -> np.ndarray | None:
        """``[C, R+1]`` intra-channel functions ``function[c, c]`` (SGR Fig. 2 left)."""
        return None if self.function is None else np.stack([self.function[c, c] for c in range(self.function.shape[0])])

    @property
    def inter_channel(self) -> dict[tuple[int, int], np.ndarray]:
        """``{(c, c'): function[c, c'] for c < c'}`` inter-channel functions (SGR Fig. 2 right)."""
        if self.function is None:
            return {}
        c = self.function.shape[0]
        return {(a, b): self.function[a, b] for a in range(c) for b in range(a + 1, c)}

    def summary(self) -> dict[str, Any]:
        """Mean variance, decay lengths, and the normalized intra/inter-channel functions."""
        out: dict[str, Any] = {
            "count": int(self.count),
            "x_shape": list(self.x_shape),
            "centered": bool(self.centered),
            "mean_variance": float(np.mean(np.diagonal(self.matrix))) if self.matrix is not None
            else (float(np.mean(np.diagonal(self.function[:, :, 0]))) if self.function is not None else None),
        }
        if self.function is not None:
            intra = self.intra_channel
            f0 = np.mean(intra[:, 0])
            scale = f0 if f0 > 0 else 1.0
            out["decay_length"] = self.decay_length
            out["mean_decay_length"] = self.mean_decay_length
            out["normalized_intra_channel"] = intra.mean(axis=0) / scale
            if self.inter_channel:
                out["normalized_inter_channel"] = np.mean(list(self.inter_channel.values()), axis=0) / scale
        return out


def decay_length(function) -> np.ndarray:
    """Decay length of covariance functions ``function[..., R+1]`` (SGR 2018, footnote 5).

    For each ``f = function[..., :]``: the first displacement ``r`` where ``f(r)/f(0) < 1/e``,
    interpolated linearly between ``r − 1`` and ``r``; ``inf`` if never below within the last
    displacement; ``0`` if ``f(0) ≤ 0``. Returns an array of shape ``function.shape[:-1]``.
    """
    f = np.asarray(function, np.float64)
    if f.ndim < 1 or f.shape[-1] < 1:
        raise ValueError(f"function must have a displacement axis [..., R+1]; got shape {f.shape}")
    flat = f.reshape(-1, f.shape[-1])
    out = np.empty(flat.shape[0])
    level = math.exp(-1.0)
    for i, row in enumerate(flat):
        if not row[0] > 0:
            out[i] = 0.0
            continue
        g = row / row[0]
        below = np.flatnonzero(g[1:] < level)
        if below.size == 0:
            out[i] = math.inf
            continue
        r = int(below[0]) + 1
        out[i] = (r - 1) + (g[r - 1] - level) / (g[r - 1] - g[r])
    return out.reshape(f.shape[:-1])


def displacement_pair_counts(height: int, width: int, max_distance: int) -> np.ndarray:
    """Number of ordered pixel pairs ``(p, q)`` of an ``H × W`` image with ``round‖p − q‖₂ = r``."""
    a, b = np.meshgrid(np.arange(-(height - 1), height), np.arange(-(width - 1), width), indexing="ij")
    dist = np.rint(np.hypot(a, b)).astype(np.int64)
    count = (height - np.abs(a)) * (width - np.abs(b))
    keep = dist <= max_distance
    return np.bincount(dist[keep], weights=count[keep], minlength=max_distance + 1).astype(np.int64)


def perturbation_covariance(
    perturbations,
    *,
    centered: bool = True,
    max_distance: int | None = None,
    matrix: bool = True,
) -> CovarianceResult:
    """Covariance matrix, covariance function and decay length of perturbations (SGR 2018).

    SGR (Roth, Nowozin, Lucchi, Hofmann 2018) eq. 15 (matrix), eq. 16 (function of the rounded
    pixel displacement, intra/inter-channel), Fig. 1–2, footnote 5 (decay length); see the
    module docstring for the exact definitions.

    Args:
      perturbations: ``[N, H, W, C]`` or ``[N, H, W]`` images (matrix and function), or
        ``[N, D]`` vectors (matrix only), N ≥ 2. Pooled over examples.
      centered: subtract the mean perturbation (covariance) or not (raw second moments, the
        SGR regularizer's ``Σ``, footnote 4).
      max_distance: largest displacement of the function (default: the image diagonal).
      matrix: also return the dense ``[D, D]`` matrix (``D² `` memory; D ≤ 16384).
    """
    xi = check_inputs(perturbations, name="perturbations")
    if not isinstance(centered, (bool, np.bool_)):
        raise ValueError(f"centered must be True or False; got {centered!r}")
    if xi.ndim > 4:
        raise ValueError(
            f"perturbations must be [N, H, W, C], [N, H, W] or [N, D]; got shape {tuple(xi.shape)}"
        )
    if xi.shape[0] < 2:
        raise ValueError(f"perturbations must hold at least 2 examples; got {xi.shape[0]}")
    x_shape = tuple(int(s) for s in xi.shape[1:])
    n = int(xi.shape[0])
    d = math.prod(x_shape)
    if matrix and d > MAX_MATRIX_DIM:
        raise ValueError(f"matrix=True needs a D x D array with D = {d} > {MAX_MATRIX_DIM}; pass matrix=False")
    if xi.ndim == 2 and max_distance is not None:
        raise ValueError("max_distance applies to images [N, H, W(, C)]; perturbations are vectors [N, D]")
    host = np.asarray(xi, np.float64)
    mean = host.mean(axis=0)
    centred = host - mean if centered else host
    cov = None
    if matrix:
        flat = centred.reshape(n, d)
        cov = flat.T @ flat / n
    if xi.ndim == 2:
        return CovarianceResult(x_shape, n, bool(centered), mean, cov)
    images = xi if xi.ndim == 4 else xi[..., None]
    h, w, c = (int(s) for s in images.shape[1:])
    full = int(np.rint(math.hypot(h - 1, w - 1)))
    if max_distance is None:
        max_distance = full
    max_distance = min(check_positive_int(max_distance, name="max_distance", minimum=0), full)
    source = images - jnp.asarray(mean.reshape(h, w, c), images.dtype) if centered else images
    state = covariance_init("function", (h, w, c), max_distance=max_distance, dtype=images.dtype)
    function = np.asarray(covariance_update(state, source, beta=1.0).table, np.float64)
    intra = np.stack([function[i, i] for i in range(c)])
    return CovarianceResult(
        x_shape=x_shape,
        count=n,
        centered=bool(centered),
        mean=mean,
        matrix=cov,
        distances=np.arange(max_distance + 1),
        function=function,
        pair_counts=displacement_pair_counts(h, w, max_distance),
        decay_length=decay_length(intra),
        mean_decay_length=float(decay_length(intra.mean(axis=0))),
    )
