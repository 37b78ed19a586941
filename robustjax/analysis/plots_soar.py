"""Plots of the SOAR 2020 diagnostics (Ma, Faghri, Farahmand: Fig. 1/4, Table 5).

Each takes one result or ``{label: result}`` and returns an Agg ``Figure`` (see ``plotting``).
"""

from __future__ import annotations

import numpy as np

from robustjax.analysis.confidence import ConfidenceResult
from robustjax.analysis.plotting import as_runs, finish, median_band, new_figure, run_colors
from robustjax.analysis.taylor import TaylorResult

__all__ = ["plot_taylor_approximation", "plot_confidence"]

_POINT_NAMES = {"clean": "clean (Standard)", "random": "random in ε-ball", "pgd1": "PGD1"}


def plot_taylor_approximation(results, *, example: int = 0, title: str | None = None):
    """SOAR Fig. 1/4: (left) one example's exact loss and its Taylor approximations along the
    direction (first order dotted, second order with the exact Hessian dashed, with SOAR eq. 9's
    FD curvature dash-dotted per step h); (right) the median absolute error of each
    approximation over examples vs distance (log scale, IQR band)."""
    runs = as_runs(results, TaylorResult)
    for label, r in runs.items():
        if not 0 <= int(example) < r.loss.shape[0]:
            raise ValueError(f"example must be in [0, {r.loss.shape[0]}) for results[{label!r}]; got {example}")
    fig, axes = new_figure(1, 2, width=5.5)
    curve_ax, err_ax = axes[0]
    for (label, r), color in zip(runs.items(), run_colors(len(runs))):
        e = int(example)
        prefix = "" if len(runs) == 1 else f"{label}: "
        curve_ax.plot(r.radii, r.loss[e], color=color, linewidth=2.2, label=f"{prefix}exact loss")
        curve_ax.plot(r.radii, r.first_order[e], color=color, linestyle=":", label=f"{prefix}1st order")
        curve_ax.plot(r.radii, r.second_order[e], color=color, linestyle="--", label=f"{prefix}2nd order (exact HVP)")
        errors = r.errors()
        styles = {"first_order": ":", "second_order": "--"}
        for j, h in enumerate(r.fd_steps):
            curve_ax.plot(r.radii, r.second_order_fd[e, j], color=color, linestyle="-.",
                          alpha=1.0 - 0.5 * j / max(len(r.fd_steps), 1),
                          label=f"{prefix}2nd order (FD, h = {float(h):g})")
        for name, err in errors.items():
            if name in ("first_order", "second_order"):
                pretty = {"first_order": "1st order", "second_order": "2nd order (exact HVP)"}[name]
            else:
                pretty = f"2nd order (FD, h = {name.split('=', 1)[1]})"
            median_band(err_ax, r.radii, np.maximum(err, 1e-16), color=color, label=f"{prefix}{pretty}",
                        linestyle=styles.get(name, "-."))
    curve_ax.set_xlabel("distance t along the unit direction (pixel ℓ2 units)")
    curve_ax.set_ylabel("loss ℓ(x + t d̂)")
    curve_ax.set_title(f"example {int(example)}: loss and its Taylor approximations")
    err_ax.set_yscale("log")
    err_ax.set_xlabel("distance t along the unit direction (pixel ℓ2 units)")
    err_ax.set_ylabel("|approximation − loss| (median over examples)")
    err_ax.set_title("approximation error")
    return finish(fig, axes, title)


def plot_confidence(results, *, title: str | None = None):
    """SOAR Table 5 as bars: mean highest softmax probability at each evaluation point, one bar
    per run; near-100 % everywhere hints at gradient masking (SOAR App. B)."""
    runs = as_runs(results, ConfidenceResult)
    points = list(dict.fromkeys(p for r in runs.values() for p in r.points))
    fig, axes = new_figure(1, 1, width=max(6.0, 1.2 * len(points) * max(len(runs), 1)))
    ax = axes[0, 0]
    width = 0.8 / len(runs)
    for i, ((label, r), color) in enumerate(zip(runs.items(), run_colors(len(runs)))):
        xs, ys = [], []
        for j, p in enumerate(points):
            if p in r.points:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(100.0 * r.max_probability[:, r.points.index(p)].mean())
        bars = ax.bar(xs, ys, width=width * 0.95, color=color, label=f"{label} (ε = {r.eps:g}, ℓ{'∞' if r.norm == 'inf' else '2'})")
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(points)))
    ax.set_xticklabels([_POINT_NAMES.get(p, p) for p in points])
    ax.set_xlabel("evaluation point")
    ax.set_ylabel("mean highest softmax probability (%)")
    ax.set_ylim(0, 105)
    ax.set_title("confidence at SOAR's evaluation points")
    return finish(fig, axes, title)
