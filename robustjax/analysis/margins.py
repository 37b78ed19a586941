"""Margins, estimated probabilities and losses of examples (Wen, Li, Jia 2020; Farnia et al. 2019).

* :func:`margin_distribution` — Wen Def. 3 / Fig. 4: every example's margin
  ``M(f(x), y) = f_y(x) − max_{i≠y} f_i(x)`` (``robustjax.core.margin``, in logit units) and its
  histogram as a probability density.
* :func:`probability_and_loss_histograms` — Wen Fig. 5a–b: the estimated probability of the
  true class ``p_y = softmax(f(x))_y`` and the cross-entropy ``−log p_y`` of every example, with
  count histograms (``p_y`` on [0, 1]).
* :func:`margin_loss` — Farnia eq. 1 (clean logits) / eq. 8 (logits of attacked inputs): the
  per-example indicator ``1[M(f(x), y) ≤ γ]``; its mean is the empirical margin loss.
* :func:`adversarial_margin_loss` — Farnia eq. 8 for a model and an attack over a dataset, on a
  grid of γ, with the clean margin loss of eq. 1 alongside.

Result convention (``robustjax.analysis.results``): frozen dataclasses of NumPy arrays (float64),
per-example fields with the example axis first, ``summary()`` JSON-safe aggregates,
``to_json()`` every field. The functions on logits are pure and batch-first: example ``i``'s
values depend on row ``i`` only (the histograms aggregate them). Plots: ``plots_wen`` and
``plots_farnia``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.analysis.attacked import as_key, check_logits_fn, data_arrays, logits_over_data, resolve_attack
from robustjax.analysis.results import AnalysisResult, per_example_field, quantile_summary
from robustjax.core.losses import cross_entropy, margin
from robustjax.core.validation import check_nonnegative, check_positive_int

__all__ = [
    "MarginDistribution",
    "ProbabilityLossHistograms",
    "AdversarialMarginLoss",
    "check_logits_and_labels",
    "margin_distribution",
    "probability_and_loss_histograms",
    "margin_loss",
    "adversarial_margin_loss",
]


def check_logits_and_labels(logits: Any, y: Any, *, logits_name: str = "logits") -> tuple[np.ndarray, np.ndarray]:
    """``(logits float64 [B, K], y int [B])`` or a ``ValueError`` naming the bad argument."""
    arr = np.asarray(logits)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 2:
        raise ValueError(f"{logits_name} must have shape [B, K] with B >= 1 and K >= 2 classes; got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{logits_name} must be floating point; got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{logits_name} contains NaN or infinite values")
    lab = np.asarray(y)
    if lab.ndim != 1 or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"y must be a vector of integer labels [B]; got shape {lab.shape}, dtype {lab.dtype}")
    if lab.shape[0] != arr.shape[0]:
        raise ValueError(f"y must have one label per row of {logits_name}; got {lab.shape[0]} labels for {arr.shape[0]} rows")
    if lab.min() < 0 or lab.max() >= arr.shape[1]:
        raise ValueError(f"y must be in [0, {arr.shape[1]}); got labels in [{lab.min()}, {lab.max()}]")
    return arr.astype(np.float64), lab.astype(np.int64)


def _margins(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    with jax.enable_x64(True):
        return np.asarray(margin(jnp.asarray(logits), jnp.asarray(y)), np.float64)


def _check_bins(bins: Any) -> int:
    return check_positive_int(bins, name="bins")


def _check_range(value: Any, name: str) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be None or a pair (low, high); got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"{name} must be finite with low < high; got {value!r}")
    return lo, hi


@dataclasses.dataclass(frozen=True)
class MarginDistribution(AnalysisResult):
    """Margins of examples (Wen Def. 3) and their histogram (Fig. 4).

    ``margins [B]`` in logit units (> 0 iff correctly classified; ties count as errors);
    ``bin_edges [bins + 1]``; ``counts [bins]``; ``density [bins]`` (``numpy.histogram(...,
    density=True)``: integrates to 1 over the range).
    """

    bin_edges: np.ndarray
    counts: np.ndarray
    density: np.ndarray
    margins: np.ndarray = per_example_field()

    def summary(self) -> dict[str, Any]:
        m = self.margins
        out = {"num_examples": int(m.size), "std": float(np.std(m)), "min": float(np.min(m)),
               "max": float(np.max(m)), "fraction_nonpositive": float(np.mean(m <= 0))}
        out.update({k: float(v) for k, v in quantile_summary(m).items()})
        return out


def margin_distribution(logits: Any, y: Any, *, bins: int = 50, range: Any = None) -> MarginDistribution:  # noqa: A002
    """Per-example margins ``M(f(x), y) = f_y(x) − max_{i≠y} f_i(x)`` (Wen et al. 2020, Def. 3)
    and their probability-density histogram (Fig. 4: margins concentrate around 0 as the
    adversarial-training strength grows).

    Args:
      logits: ``[B, K]`` scores of the examples (the model's output, logit units).
      y: integer labels ``[B]`` in ``[0, K)``.
      bins: number of histogram bins (≥ 1); range: ``(low, high)`` of the histogram (default:
        the margins' min and max).
    """
    logits, y = check_logits_and_labels(logits, y)
    bins = _check_bins(bins)
    range_ = _check_range(range, "range")
    m = _margins(logits, y)
    counts, edges = np.histogram(m, bins=bins, range=range_)
    density, _ = np.histogram(m, bins=edges, density=True)
    return MarginDistribution(bin_edges=edges, counts=counts, density=np.nan_to_num(density), margins=m)


@dataclasses.dataclass(frozen=True)
class ProbabilityLossHistograms(AnalysisResult):
    """Estimated probability of the true class and cross-entropy of examples (Wen Fig. 5a–b).

    ``probability [B]`` (``softmax(f(x))_y``), ``loss [B]`` (``−log p_y``, computed stably);
    count histograms ``probability_edges``/``probability_counts`` (on [0, 1]) and
    ``loss_edges``/``loss_counts``; ``middle = (low, high)``: the band of "middle-valued"
    probabilities the paper's insets zoom on.
    """

    probability_edges: np.ndarray
    probability_counts: np.ndarray
    loss_edges: np.ndarray
    loss_counts: np.ndarray
    middle: tuple
    probability: np.ndarray = per_example_field()
    loss: np.ndarray = per_example_field()

    def summary(self) -> dict[str, Any]:
        lo, hi = self.middle
        p = self.probability
        return {
            "num_examples": int(p.size),
            "mean_probability": float(np.mean(p)),
            "mean_loss": float(np.mean(self.loss)),
            "median_loss": float(np.median(self.loss)),
            "fraction_middle_probability": float(np.mean((p > lo) & (p < hi))),
            "middle": [float(lo), float(hi)],
        }


def probability_and_loss_histograms(
    logits: Any,
    y: Any,
    *,
    bins: int = 50,
    loss_range: Any = None,
    middle: tuple[float, float] = (0.1, 0.9),
) -> ProbabilityLossHistograms:
    """Histograms of the estimated probability ``p_y = softmax(f(x))_y`` and of the loss
    ``−log p_y`` of examples (Wen et al. 2020, Fig. 5a–b, §4.2.1: adversarial training moves
    predictions to middle-valued probabilities, so wrong predictions cost less loss).

    Args:
      logits: ``[B, K]``; y: labels ``[B]``.
      bins: bins of both histograms; loss_range: ``(low, high)`` of the loss histogram
        (default: ``(0, max loss)``); middle: ``(low, high)`` ⊂ [0, 1], the band of
        middle-valued probabilities counted in the summary and zoomed on by the plot.
    """
    logits, y = check_logits_and_labels(logits, y)
    bins = _check_bins(bins)
    loss_range = _check_range(loss_range, "loss_range")
    lo, hi = _check_range(middle, "middle")
    if lo < 0 or hi > 1:
        raise ValueError(f"middle must lie in [0, 1]; got {middle!r}")
    with jax.enable_x64(True):
        loss = np.asarray(cross_entropy(jnp.asarray(logits), jnp.asarray(y)), np.float64)
    loss = np.maximum(loss, 0.0)
    prob = np.exp(-loss)
    p_counts, p_edges = np.histogram(prob, bins=bins, range=(0.0, 1.0))
    if loss_range is None:
        loss_range = (0.0, max(float(loss.max()), 1e-6))
    l_counts, l_edges = np.histogram(loss, bins=bins, range=loss_range)
    return ProbabilityLossHistograms(
        probability_edges=p_edges, probability_counts=p_counts, loss_edges=l_edges, loss_counts=l_counts,
        middle=(lo, hi), probability=prob, loss=loss,
    )


def margin_loss(logits: Any, y: Any, *, gamma: float) -> np.ndarray:
    """Per-example margin loss ``1[f(x)_y ≤ γ + max_{j≠y} f(x)_j] = 1[M(f(x), y) ≤ γ]``.

    Farnia et al. 2019, eq. 1 on clean logits; on the logits of attacked inputs
    ``f(x + δ_adv(x))`` it is the adversarial margin loss of eq. 8. The mean over a sample is
    the empirical (adversarial) margin loss; ``γ = 0`` gives the 0-1 error (ties are errors).
    Returns float64 ``[B]`` of zeros and ones.
    """
    logits, y = check_logits_and_labels(logits, y)
    check_nonnegative(gamma, name="gamma")
    return (_margins(logits, y) <= float(gamma)).astype(np.float64)


@dataclasses.dataclass(frozen=True)
class AdversarialMarginLoss(AnalysisResult):
    """Farnia et al. 2019, eq. 1 and eq. 8 on a grid of margins γ.

    ``gamma [G]`` (in units of ``margin / margin_scale``); ``labels``: the attack runs (one per
    strength); ``eps [E]`` (NaN where the attack has no scalar strength); ``margin_scale``;
    ``clean_loss [G]`` (eq. 1) and ``adversarial_loss [E, G]`` (eq. 8) as fractions of examples;
    per example ``clean_margins [N]`` and ``adversarial_margins [N, E]`` (already divided by
    ``margin_scale``).
    """

    gamma: np.ndarray
    labels: tuple
    eps: np.ndarray
    margin_scale: float
    clean_loss: np.ndarray
    adversarial_loss: np.ndarray
    clean_margins: np.ndarray = per_example_field()
    adversarial_margins: np.ndarray = per_example_field()

    def summary(self) -> dict[str, Any]:
        g = [float(v) for v in self.gamma]
        return {
            "num_examples": int(self.clean_margins.shape[0]),
            "gamma": g,
            "margin_scale": float(self.margin_scale),
            "clean_loss": [float(v) for v in self.clean_loss],
            "adversarial_loss": {lab: [float(v) for v in row] for lab, row in zip(self.labels, self.adversarial_loss)},
        }


def adversarial_margin_loss(
    logits_fn: Callable,
    data: Any,
    *,
    attack: Any,
    gamma: Any,
    key: Any = 0,
    batch_size: int = 256,
    margin_scale: float = 1.0,
) -> AdversarialMarginLoss:
    """Empirical adversarial margin loss ``mean 1[M(f(x + δ_adv(x)), y) ≤ γ]`` (Farnia et al.
    2019, eq. 8) and the clean one (eq. 1) on a dataset, for every γ of a grid.

    Args:
      logits_fn: ``x[B, ...] -> logits[B, K]`` (examples independent).
      data: ``(images, labels)``, a mapping or a ``robustjax.data.load`` dataset.
      attack: an ``AttackSpec`` (every strength is a run), a mapping of its fields, or a
        callable ``attack(logits_fn, x, y, key) -> x_adv`` (see ``analysis.attacked``); Farnia's
        attacks are ℓ2 FGM/PGM and WRM (suite ``farnia-mnist``).
      gamma: margin(s) γ ≥ 0, a scalar or a 1-D grid (in units of ``margin / margin_scale``).
      key: PRNG key or int seed of random attacks; batch_size: examples per chunk.
      margin_scale: > 0; margins are divided by it before comparing with γ. Farnia Fig. 3
        normalizes margins by the capacity term (e.g. ``sqrt(Φ)`` of ``capacity_scores``).
    """
    check_logits_fn(logits_fn)
    images, labels = data_arrays(data, name="data")
    gam = np.atleast_1d(np.asarray(gamma, np.float64))
    if gam.ndim != 1 or gam.size == 0 or not np.all(np.isfinite(gam)) or np.any(gam < 0):
        raise ValueError(f"gamma must be a finite scalar or 1-D grid of values >= 0; got {gamma!r}")
    check_nonnegative(margin_scale, name="margin_scale", allow_zero=False)
    runs = resolve_attack(attack, images=images)
    clean, advs = logits_over_data(logits_fn, images, labels, runs, key=as_key(key), batch_size=batch_size)
    clean_m = _margins(*check_logits_and_labels(clean, labels)) / margin_scale
    adv_m = [_margins(*check_logits_and_labels(a, labels, logits_name="attacked logits")) / margin_scale for a in advs]
    adv_m = np.stack(adv_m, axis=1)
    return AdversarialMarginLoss(
        gamma=gam, labels=tuple(r.label for r in runs),
        eps=np.array([np.nan if r.eps is None else r.eps for r in runs], np.float64),
        margin_scale=float(margin_scale),
        clean_loss=np.mean(clean_m[:, None] <= gam[None, :], axis=0),
        adversarial_loss=np.mean(adv_m[:, :, None] <= gam[None, None, :], axis=0),
        clean_margins=clean_m, adversarial_margins=adv_m,
    )
