"""Plots of the Roth, Kilcher, Hofmann 2019 diagnostics (Fig. 1, Fig. 2, Fig. 3 right).

Each takes one result or ``{label: result}`` and returns an Agg ``Figure`` (see ``plotting``).
Curves are the mean over examples (alignment, as the paper aggregates 200 test points) or the
median with its interquartile band (path diagnostics, whose tails are heavy).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from robustjax.analysis.alignment import AlignmentResult
from robustjax.analysis.linearity import LinearityResult, SigmaPathResult
from robustjax.analysis.plotting import as_runs, finish, median_band, new_figure, run_colors

__all__ = [
    "plot_perturbation_alignment",
    "plot_alignment_vs_eps",
    "plot_local_linearity",
    "plot_sigma_along_path",
]

DISTANCE_LABEL = "distance ‖z‖₂ from x (pixel units, data in [0, 1])"


def _train_eps_line(ax, train_eps):
    if train_eps is not None:
        ax.axvline(float(train_eps), color="gray", linestyle="--", linewidth=1,
                   label=f"training ε = {float(train_eps):g}")


def plot_perturbation_alignment(results, *, title: str | None = None):
    """Roth et al. 2019, Fig. 1: (left) mean singular value spectrum of ``J_f(x)`` by rank,
    (right) mean ``|cos(δ, v_r)|`` by rank ``r``, with the random-direction baseline dashed."""
    runs = as_runs(results, AlignmentResult)
    fig, axes = new_figure(1, 2, width=5.5)
    spec_ax, cos_ax = axes[0]
    for (label, r), color in zip(runs.items(), run_colors(len(runs))):
        ranks_s = np.arange(1, r.singular_values.shape[1] + 1)
        spec_ax.plot(ranks_s, r.singular_values.mean(axis=0), marker="o", color=color, label=label)
        ranks = np.arange(1, r.k + 1)
        cos_ax.plot(ranks, r.cosines.mean(axis=0), marker="o", color=color,
                    label=f"{label} (share in top-{r.k}: {r.share.mean():.2f})")
        if r.random_cosines is not None:
            cos_ax.plot(ranks, r.random_cosines.mean(axis=0), linestyle="--", color=color,
                        label=f"{label}, random direction ({r.random_share.mean():.3f})")
    spec_ax.set_yscale("log")
    spec_ax.set_xlabel("rank r of the singular value")
    spec_ax.set_ylabel("σ_r of J_f(x) (logits per pixel-ℓ2 unit)")
    spec_ax.set_title("singular value spectrum")
    cos_ax.set_xlabel("rank r of the right singular vector v_r")
    cos_ax.set_ylabel("|cos(δ, v_r)| (mean over examples)")
    cos_ax.set_ylim(bottom=0)
    cos_ax.set_title("alignment of perturbations with singular vectors")
    return finish(fig, axes, title)


def plot_alignment_vs_eps(results: Mapping, *, rank: int = 1, train_eps=None, title: str | None = None):
    """Roth et al. 2019, Fig. 3 right: mean ``|cos(δ_ε, v_rank)|`` as a function of ε.

    ``results``: ``{label: {eps: AlignmentResult}}`` (one alignment per perturbation strength),
    or ``{eps: AlignmentResult}`` for one run. Random baseline dashed when present.
    """
    if isinstance(results, Mapping) and results and all(isinstance(v, AlignmentResult) for v in results.values()):
        results = {"model": results}
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results must be a non-empty mapping {label: {eps: AlignmentResult}}")
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be an integer >= 1; got {rank!r}")
    fig, axes = new_figure(1, 1)
    ax = axes[0, 0]
    for (label, by_eps), color in zip(results.items(), run_colors(len(results))):
        if not isinstance(by_eps, Mapping) or not by_eps:
            raise ValueError(f"results[{label!r}] must be a non-empty mapping {{eps: AlignmentResult}}")
        items = sorted(((float(e), r) for e, r in by_eps.items()), key=lambda item: item[0])
        eps, rs = [e for e, _ in items], [r for _, r in items]
        for r in rs:
            if not isinstance(r, AlignmentResult):
                raise ValueError(f"results[{label!r}] values must be AlignmentResult; got {type(r).__name__}")
            if r.k < rank:
                raise ValueError(f"rank must be <= k = {r.k} of every result; got {rank}")
        ax.plot(eps, [r.cosines[:, rank - 1].mean() for r in rs], marker="o", color=color, label=str(label))
        if all(r.random_cosines is not None for r in rs):
            ax.plot(eps, [r.random_cosines[:, rank - 1].mean() for r in rs], linestyle="--",
                    color=color, label=f"{label}, random direction")
    _train_eps_line(ax, train_eps)
    ax.set_xlabel("perturbation strength ε (pixel units)")
    ax.set_ylabel(f"|cos(δ, v_{rank})| (mean over examples)")
    ax.set_ylim(bottom=0)
    ax.set_title("alignment with the dominant singular vector" if rank == 1 else f"alignment with v_{rank}")
    return finish(fig, axes, title)


def plot_local_linearity(results, *, relative: bool = False, train_eps=None, title: str | None = None):
    """Roth et al. 2019, Fig. 2 left: deviation from linearity vs distance (median, IQR band).

    ``relative=False`` plots the paper's ``‖φ(x+z) − φ(x) − J z‖₂``; ``True`` divides by
    ``‖φ(x+z) − φ(x)‖₂``. Label runs e.g. ``"ERM, adversarial"`` / ``"ERM, random"``.
    """
    runs = as_runs(results, LinearityResult)
    fig, axes = new_figure(1, 1)
    ax = axes[0, 0]
    for (label, r), color in zip(runs.items(), run_colors(len(runs))):
        values = r.relative_deviation if relative else r.deviation
        median_band(ax, r.radii, values, color=color, label=label, marker=".")
    _train_eps_line(ax, train_eps)
    ax.set_xlabel(DISTANCE_LABEL)
    ax.set_ylabel("‖φ(x+z) − φ(x) − J z‖₂ / ‖φ(x+z) − φ(x)‖₂" if relative
                  else "‖φ(x+z) − φ(x) − J z‖₂ (units of φ)")
    ax.set_ylim(bottom=0)
    ax.set_title("deviation from local linearity (median, IQR)")
    return finish(fig, axes, title)


def plot_sigma_along_path(results, *, train_eps=None, title: str | None = None):
    """Roth et al. 2019, Fig. 2 right: σ_max of ``J_f(x + z)`` vs ``‖z‖₂`` (median, IQR band)."""
    runs = as_runs(results, SigmaPathResult)
    fig, axes = new_figure(1, 1)
    ax = axes[0, 0]
    for (label, r), color in zip(runs.items(), run_colors(len(runs))):
        median_band(ax, r.radii, r.sigma, color=color, label=label, marker=".")
    _train_eps_line(ax, train_eps)
    ax.set_xlabel(DISTANCE_LABEL)
    ax.set_ylabel("σ_max of J_f(x + z) (logits per pixel-ℓ2 unit)")
    ax.set_ylim(bottom=0)
    ax.set_title("largest singular value along the path (median, IQR)")
    return finish(fig, axes, title)
