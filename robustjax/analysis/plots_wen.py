"""Plots of the Wen, Li, Jia 2020 diagnostics (Fig. 1a/5c–d, 3, 4, 5a–b, 8).

Each takes one result or ``{label: result}`` (runs overlaid, e.g. ``{"ε=0": r0, "ε=8/255":
r1}``) and returns an Agg ``Figure`` (see ``plotting``); save it with ``fig.savefig(path)``.
"""

from __future__ import annotations

import numpy as np

from robustjax.analysis.generalization import GeneralizationGaps, LossVariation
from robustjax.analysis.layer_spectra import SpectralReport
from robustjax.analysis.margins import MarginDistribution, ProbabilityLossHistograms
from robustjax.analysis.plotting import as_runs, finish, new_figure, run_colors
from robustjax.core.validation import check_positive_int

__all__ = [
    "plot_margin_distribution",
    "plot_probability_and_loss_histograms",
    "plot_generalization_gaps",
    "plot_max_loss_variation",
    "plot_singular_value_std",
    "common_edges",
]


def common_edges(arrays, bins: int, *, low=None, high=None, log: bool = False) -> np.ndarray:
    """Bin edges shared by several runs' values (so their histograms overlay bin for bin)."""
    values = np.concatenate([np.ravel(np.asarray(a, np.float64)) for a in arrays])
    values = values[np.isfinite(values)]
    if log:
        values = values[values > 0]
    lo = float(np.min(values)) if low is None and values.size else (0.0 if low is None else float(low))
    hi = float(np.max(values)) if high is None and values.size else (1.0 if high is None else float(high))
    if hi <= lo:
        hi = lo + (abs(lo) if lo else 1.0) * 1e-3
    if log:
        return np.logspace(np.log10(lo), np.log10(hi), bins + 1)
    return np.linspace(lo, hi, bins + 1)


def plot_margin_distribution(results, *, bins: int = 50, title: str | None = None):
    """Wen Fig. 4: probability density of the margins ``f_y(x) − max_{i≠y} f_i(x)``, runs
    overlaid on common bins; the dashed line at 0 is the decision boundary."""
    runs = as_runs(results, MarginDistribution)
    bins = check_positive_int(bins, name="bins")
    edges = common_edges([r.margins for r in runs.values()], bins)
    fig, axes = new_figure(1, 1, width=6.5)
    ax = axes[0, 0]
    for (label, r), color in zip(runs.items(), run_colors(len(runs))):
        ax.hist(r.margins, bins=edges, density=True, histtype="stepfilled", alpha=0.25, color=color)
        ax.hist(r.margins, bins=edges, density=True, histtype="step", linewidth=1.6, color=color,
                label=f"{label} (mean {np.mean(r.margins):.2f}, std {np.std(r.margins):.2f})")
    ax.axvline(0.0, color="black", linestyle="--", linewidth=1, label="decision boundary (margin 0)")
    ax.set_xlabel("margin f_y(x) − max_{i≠y} f_i(x) (logit units)")
    ax.set_ylabel("probability density")
    ax.set_title("margin distribution (Wen et al. 2020, Fig. 4)")
    return finish(fig, axes, title)


def plot_probability_and_loss_histograms(results, *, bins: int = 50, title: str | None = None):
    """Wen Fig. 5a–b: histograms of the estimated probability of the true class (full range,
    log-scale counts, and the middle-valued band zoomed in, as the paper's inset) and of the
    cross-entropy loss, runs overlaid."""
    runs = as_runs(results, ProbabilityLossHistograms)
    bins = check_positive_int(bins, name="bins")
    fig, axes = new_figure(1, 3, width=5.0)
    p_ax, m_ax, l_ax = axes[0]
    p_edges = np.linspace(0.0, 1.0, bins + 1)
    l_edges = common_edges([r.loss for r in runs.values()], bins, low=0.0)
    lo, hi = next(iter(runs.values())).middle
    mid_edges = np.linspace(lo, hi, max(bins // 2, 2) + 1)
    for (label, r), color in zip(runs.items(), run_colors(len(runs))):
        frac = float(np.mean((r.probability > lo) & (r.probability < hi)))
        p_ax.hist(r.probability, bins=p_edges, histtype="step", linewidth=1.6, color=color, label=label)
        m_ax.hist(r.probability, bins=mid_edges, histtype="step", linewidth=1.6, color=color,
                  label=f"{label} ({100 * frac:.1f}% of examples)")
        l_ax.hist(r.loss, bins=l_edges, histtype="step", linewidth=1.6, color=color,
                  label=f"{label} (mean loss {np.mean(r.loss):.3f})")
    p_ax.set_yscale("log")
    p_ax.set_xlabel("estimated probability of the true class p_y(x)")
    p_ax.set_ylabel("number of examples (log scale)")
    p_ax.set_title("(a) estimated probability (Wen Fig. 5a)")
    m_ax.set_xlabel(f"p_y(x), middle band ({lo:g}, {hi:g})")
    m_ax.set_ylabel("number of examples")
    m_ax.set_title("(a) zoom: middle-valued probabilities")
    l_ax.set_yscale("log")
    l_ax.set_xlabel("cross-entropy loss −log p_y(x) (nats)")
    l_ax.set_ylabel("number of examples (log scale)")
    l_ax.set_title("(b) loss (Wen Fig. 5b)")
    return finish(fig, axes, title)


def plot_generalization_gaps(results, *, title: str | None = None):
    """Wen Fig. 3: (top) loss gap and error gap (test − train) per run, clean (solid) and
    under attack (dashed); (bottom) train and test loss and error. Runs on the x axis in the
    given order (e.g. increasing adversarial-training strength)."""
    runs = as_runs(results, GeneralizationGaps)
    labels = list(runs)
    xs = np.arange(len(labels))
    sums = [r.summary() for r in runs.values()]
    adv = all(r.train_adv_loss is not None for r in runs.values())
    attack = next(iter(runs.values())).attack
    fig, axes = new_figure(2, 2, width=5.2, height=3.8)
    kinds = [("", "clean", "-", "o")] + ([("adv_", f"under {attack}", "--", "s")] if adv else [])
    for prefix, name, ls, mk in kinds:
        axes[0, 0].plot(xs, [s[f"{prefix}loss_gap"] for s in sums], ls, marker=mk, color="C0", label=name)
        axes[0, 1].plot(xs, [100 * s[f"{prefix}error_gap"] for s in sums], ls, marker=mk, color="C3", label=name)
        for split, color in (("train", "C2"), ("test", "C1")):
            axes[1, 0].plot(xs, [s[f"{prefix}{split}_loss"] for s in sums], ls, marker=mk, color=color,
                            label=f"{split}, {name}")
            axes[1, 1].plot(xs, [100 * s[f"{prefix}{split}_error"] for s in sums], ls, marker=mk, color=color,
                            label=f"{split}, {name}")
    names = [("loss gap: test − train (nats)", "(a) loss gap"), ("error gap: test − train (%)", "(a) error-rate gap"),
             ("cross-entropy loss (nats)", "(b) losses"), ("error rate (%)", "(b) error rates")]
    for ax, (ylabel, ttl) in zip(axes.ravel(), names):
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, rotation=20 if len(labels) > 3 else 0)
        ax.set_xlabel("model (adversarial-training strength)")
        ax.set_ylabel(ylabel)
        ax.set_title(ttl)
    return finish(fig, axes, title or "generalization gaps (Wen et al. 2020, Fig. 3)")


def plot_max_loss_variation(results, *, title: str | None = None):
    """Wen Fig. 8: mean ± std (error bars) over examples of the maximal loss increase an
    attack finds in the ball, vs the attack strength, one line per run."""
    runs = as_runs(results, LossVariation)
    fig, axes = new_figure(1, 1, width=6.5)
    ax = axes[0, 0]
    numeric = all(np.all(np.isfinite(r.eps)) for r in runs.values())
    for k, ((label, r), color) in enumerate(zip(runs.items(), run_colors(len(runs)))):
        x = r.eps if numeric else np.arange(len(r.labels))
        offset = 0.0 if numeric else 0.05 * (k - (len(runs) - 1) / 2)
        ax.errorbar(np.asarray(x, np.float64) + offset, r.mean, yerr=r.std, marker="o", capsize=4, color=color,
                    label=label)
    if numeric:
        ax.set_xlabel("attack strength ε (pixel units, data in [0, 1])")
    else:
        first = next(iter(runs.values()))
        ax.set_xticks(np.arange(len(first.labels)))
        ax.set_xticklabels(first.labels, rotation=15)
        ax.set_xlabel("attack")
    ax.set_ylabel("max loss increase ℓ(x_adv) − ℓ(x) (nats, mean ± std)")
    ax.set_title("loss variation under attack (Wen et al. 2020, App. B.5, Fig. 8)")
    return finish(fig, axes, title)


def plot_singular_value_std(results, *, title: str | None = None):
    """Wen Fig. 1a / 5c–d: standard deviation of each layer's singular values vs the layer
    index, runs overlaid. Filled markers: exact singular values; hollow: the circular
    (FFT/polyphase) approximation of a zero-padded convolution."""
    runs = as_runs(results, SpectralReport, name="results")
    fig, axes = new_figure(1, 1, width=7.0)
    ax = axes[0, 0]
    any_approx = False
    for (label, rep), color in zip(runs.items(), run_colors(len(runs))):
        idx = np.arange(1, len(rep.rows) + 1)
        std = np.array([np.nan if r["sv_std"] is None else r["sv_std"] for r in rep.rows], np.float64)
        exact = np.array([bool(r.get("sv_exact", False)) for r in rep.rows])
        ax.plot(idx, std, "-", color=color, label=label)
        ax.plot(idx[exact], std[exact], "o", color=color)
        if np.any(~exact):
            any_approx = True
            ax.plot(idx[~exact], std[~exact], "o", markerfacecolor="white", color=color)
    ax.plot([], [], "o", color="gray", label="exact singular values")
    if any_approx:
        ax.plot([], [], "o", markerfacecolor="white", color="gray", label="circular approximation")
    n_max = max(len(rep.rows) for rep in runs.values())
    ax.set_xticks(np.arange(1, n_max + 1, max(1, n_max // 20)))
    ax.set_xlabel("layer index (input → output)")
    ax.set_ylabel("std of the layer operator's singular values")
    ax.set_title("singular-value spread per layer (Wen et al. 2020, Fig. 1a)")
    return finish(fig, axes, title)
