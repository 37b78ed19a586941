"""Plots of the SGR 2018 diagnostics (Roth, Nowozin, Lucchi, Hofmann: Fig. 1, Fig. 2, Fig. 6).

Each takes one result or ``{label: result}`` and returns an Agg ``Figure`` (see ``plotting``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from robustjax.analysis.covariance import CovarianceResult
from robustjax.analysis.plotting import as_runs, finish, new_figure, run_colors
from robustjax.analysis.trajectory import TrajectoryResult

__all__ = ["plot_perturbation_covariance", "plot_covariance_function", "plot_softmax_trajectory"]


def plot_perturbation_covariance(results, *, crop: float = 0.25, title: str | None = None):
    """SGR Fig. 1: covariance matrices, one panel per run, rescaled so the largest ``|entry|`` is
    1, centre crop trimming ``crop`` of the rows/columns on each side (the paper: 25 %)."""
    runs = as_runs(results, CovarianceResult)
    if not 0 <= crop < 0.5:
        raise ValueError(f"crop must be in [0, 0.5); got {crop!r}")
    for label, r in runs.items():
        if r.matrix is None:
            raise ValueError(f"results[{label!r}] has no matrix; compute it with matrix=True")
    fig, axes = new_figure(1, len(runs), width=4.2, height=4.0, layout="constrained")
    image = None
    for ax, (label, r) in zip(axes[0], runs.items()):
        m = r.matrix
        top = np.max(np.abs(m))
        m = m / top if top > 0 else m
        d = m.shape[0]
        lo, hi = int(math.floor(crop * d)), d - int(math.floor(crop * d))
        image = ax.imshow(m[lo:hi, lo:hi], cmap="RdBu_r", vmin=-1, vmax=1,
                          extent=(lo - 0.5, hi - 0.5, hi - 0.5, lo - 0.5), interpolation="nearest")
        ax.set_title(f"{label} (N = {r.count})", fontsize=10)
        ax.set_xlabel("feature index (row-major H, W, C)")
        ax.set_ylabel("feature index")
    fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label="covariance / max |covariance|")
    if title:
        fig.suptitle(title)
    return fig


def plot_covariance_function(results, *, normalize: bool = True, title: str | None = None):
    """SGR Fig. 2: (left) intra-channel covariance functions, (right) inter-channel ones (only
    for multi-channel images), vs rounded pixel displacement. ``normalize`` divides by the run's
    mean variance at displacement 0 (a correlation, comparable across runs); the 1/e level and
    each run's decay length (footnote 5) are marked."""
    runs = as_runs(results, CovarianceResult)
    for label, r in runs.items():
        if r.function is None:
            raise ValueError(f"results[{label!r}] has no covariance function (perturbations were vectors)")
    multi = any(r.function.shape[0] > 1 for r in runs.values())
    fig, axes = new_figure(1, 2 if multi else 1, width=5.5)
    intra_ax = axes[0, 0]
    styles = ["-", "--", ":", "-."]
    for i, ((label, r), color) in enumerate(zip(runs.items(), run_colors(len(runs)))):
        style = styles[i % len(styles)]
        intra = r.intra_channel
        f0 = float(np.mean(intra[:, 0]))
        scale = f0 if normalize and f0 > 0 else 1.0
        c = intra.shape[0]
        channel_colors = [color] if c == 1 else run_colors(c)
        for ch in range(c):
            name = label if c == 1 else f"{label}, channel {ch}"
            intra_ax.plot(r.distances, intra[ch] / scale, marker=".", color=channel_colors[ch],
                          linestyle=style,
                          label=f"{name} (decay length {r.decay_length[ch]:.2f} px)")
        if multi and c > 1:
            for (a, b), f in r.inter_channel.items():
                axes[0, 1].plot(r.distances, f / scale, marker=".", linestyle=style,
                                label=f"{label}, channels {a}–{b}")
    ylabel = "covariance / variance at 0" if normalize else "covariance (pixel units²)"
    for ax, name in zip(axes[0], ["intra-channel", "inter-channel"]):
        if normalize:
            ax.axhline(math.exp(-1.0), color="gray", linestyle=":", linewidth=1, label="1/e")
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set_xlabel("pixel displacement round(‖i − j‖₂) (pixels)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{name} covariance function")
    return finish(fig, axes, title)


def plot_softmax_trajectory(results, *, examples: Sequence[int] = (0,), classes: Sequence[int] | None = None,
                            title: str | None = None):
    """SGR Fig. 6: softmax activation of each class along ``x + t δ`` (rows: runs, columns:
    ``examples``); ``t = 0`` is the clean input, ``t = ±1`` the (mirrored) adversarial example.
    ``classes`` restricts the lines (default: all)."""
    runs = as_runs(results, TrajectoryResult)
    examples = [int(e) for e in examples]
    if not examples:
        raise ValueError("examples must name at least one example index")
    for label, r in runs.items():
        b, _, k = r.probabilities.shape
        bad = [e for e in examples if not 0 <= e < b]
        if bad:
            raise ValueError(f"examples must be in [0, {b}) for results[{label!r}]; got {bad}")
        if classes is not None and any(not 0 <= c < k for c in classes):
            raise ValueError(f"classes must be in [0, {k}); got {list(classes)}")
    fig, axes = new_figure(len(runs), len(examples), width=4.2, height=3.2, layout="constrained")
    handles = {}
    for row, (label, r) in enumerate(runs.items()):
        k = r.probabilities.shape[2]
        cls = list(range(k)) if classes is None else list(classes)
        colors = run_colors(max(cls) + 1)
        order = np.argsort(r.ts)
        for col, e in enumerate(examples):
            ax = axes[row, col]
            for c in cls:
                (line,) = ax.plot(r.ts[order], r.probabilities[e, order, c], color=colors[c])
                handles.setdefault(c, line)
            for t in (-1.0, 1.0):
                ax.axvline(t, color="gray", linestyle=":", linewidth=0.8)
            ax.axvline(0.0, color="black", linewidth=0.8)
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.set_title(f"{label}: example {e} (clean class {int(r.clean_prediction[e])})", fontsize=9)
            ax.set_xlabel("t (multiples of δ; x + t δ)")
            ax.set_ylabel("softmax probability")
    # one legend for the figure: a class has the same color in every panel
    fig.legend([handles[c] for c in sorted(handles)], [f"class {c}" for c in sorted(handles)],
               loc="outside right upper", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
