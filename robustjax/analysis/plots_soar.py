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


def _approximations(r: TaylorResult, e: int):
    """``[(name, curve [T], error name, color, linestyle)]`` of one example's approximations."""
    out = [("1st order", r.first_order[e], "first_order", "tab:blue", ":"),
           ("2nd order (exact HVP)", r.second_order[e], "second_order", "tab:orange", "--")]
    greens = ["tab:green", "tab:olive", "tab:cyan", "tab:purple"]
    for j, h in enumerate(r.fd_steps):
        out.append((f"2nd order (FD, h = {float(h):g})", r.second_order_fd[e, j],
                    f"second_order_fd_h={float(h):g}", greens[j % len(greens)], "-."))
    return out


def plot_taylor_approximation(results, *, example: int = 0, title: str | None = None):
    """SOAR Fig. 1/4, one column per run: (top) one example's exact loss along the direction and
    its Taylor approximations at x (first order, second order with the exact Hessian, second
    order with SOAR eq. 9's finite-difference curvature per step h); (bottom) the median
    absolute error of each approximation over all examples vs distance (log scale, IQR band,
    t > 0)."""
    runs = as_runs(results, TaylorResult)
    e = int(example)
    for label, r in runs.items():
        if not 0 <= e < r.loss.shape[0]:
            raise ValueError(f"example must be in [0, {r.loss.shape[0]}) for results[{label!r}]; got {example}")
    fig, axes = new_figure(2, len(runs), width=5.0, height=3.6)
    seen: set = set()  # label each approximation once: its color means the same in every column
    for col, (label, r) in enumerate(runs.items()):
        curve_ax, err_ax = axes[0, col], axes[1, col]
        curve_ax.plot(r.radii, r.loss[e], color="black", linewidth=2.2, label=None if col else "exact loss")
        errors = r.errors()
        positive = r.radii > 0
        for name, curve, err_name, color, style in _approximations(r, e):
            name = None if name in seen else name
            seen.add(name)
            curve_ax.plot(r.radii, curve, color=color, linestyle=style, label=name)
            if positive.any():
                median_band(err_ax, r.radii[positive], np.maximum(errors[err_name][:, positive], 1e-300),
                            color=color, label=name, linestyle=style)
        curve_ax.set_title(f"{label}: example {e}", fontsize=10)
        curve_ax.set_ylabel("loss ℓ(x + t d̂)")
        err_ax.set_yscale("log")
        err_ax.set_title(f"{label}: error over {r.loss.shape[0]} examples (median, IQR)", fontsize=10)
        err_ax.set_xlabel("distance t along the unit direction (pixel ℓ2 units)")
        err_ax.set_ylabel("|approximation − loss|")
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
    ax.set_ylim(0, 118)
    ax.set_title("confidence at SOAR's evaluation points")
    return finish(fig, axes, title, legend={"loc": "upper center", "ncol": min(len(runs), 3)})
