"""Plots of the Farnia, Zhang, Tse 2019 diagnostics (Fig. 2a–b, Fig. 3, Theorems 1–4).

Each takes one result or ``{label: result}`` (runs overlaid, e.g. ``{"β=∞": r0, "β=1": r1}``)
and returns an Agg ``Figure`` (see ``plotting``); save it with ``fig.savefig(path)``.
"""

from __future__ import annotations

import numpy as np

from robustjax.analysis.capacity import ATTACK_SCHEMES, CapacityScores
from robustjax.analysis.gradients import InputGradientNorms, NormGain
from robustjax.analysis.margins import AdversarialMarginLoss
from robustjax.analysis.plots_wen import common_edges
from robustjax.analysis.plotting import as_runs, finish, new_figure, run_colors
from robustjax.core.validation import check_positive_int

__all__ = ["plot_adversarial_margin_loss", "plot_capacity_scores", "plot_norm_gain", "plot_input_gradient_norms"]


def _spans_decades(arrays) -> bool:
    v = np.concatenate([np.ravel(a) for a in arrays])
    v = v[np.isfinite(v) & (v > 0)]
    return v.size > 0 and float(v.max()) / float(v.min()) > 100.0


def _histograms(ax, runs, values_of, bins, xlabel, fmt):
    arrays = [values_of(r) for r in runs.values()]
    log = _spans_decades(arrays)
    edges = common_edges(arrays, bins, log=log)
    for (label, r), v, color in zip(runs.items(), arrays, run_colors(len(runs))):
        zeros = int(np.sum(np.asarray(v) <= 0)) if log else 0
        extra = f", {zeros} at 0 not shown" if zeros else ""
        ax.hist(v, bins=edges, histtype="step", linewidth=1.6, color=color, label=f"{label} ({fmt(v)}{extra})")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel + (" (log scale)" if log else ""))
    ax.set_ylabel("number of examples")


def plot_norm_gain(results, *, bins: int = 40, title: str | None = None):
    """Farnia Fig. 2a: distribution of the ℓ2 norm gain ``‖f(x)‖₂ / ‖x‖₂`` over examples."""
    runs = as_runs(results, NormGain)
    bins = check_positive_int(bins, name="bins")
    fig, axes = new_figure(1, 1, width=6.5)
    _histograms(axes[0, 0], runs, lambda r: r.gain, bins, "norm gain ‖f(x)‖₂ / ‖x‖₂ (logits per pixel unit)",
                lambda v: f"median {np.median(v):.3g}")
    axes[0, 0].set_title("ℓ2 norm gain of the network (Farnia et al. 2019, Fig. 2a)")
    return finish(fig, axes, title)


def plot_input_gradient_norms(results, *, bins: int = 40, title: str | None = None):
    """Farnia Fig. 2b: distribution of ``‖∇ₓ ℓ(f(x), y)‖₂`` over examples; the minimum is the
    empirical κ of Theorems 2–3 (marked per run)."""
    runs = as_runs(results, InputGradientNorms)
    bins = check_positive_int(bins, name="bins")
    fig, axes = new_figure(1, 1, width=6.5)
    ax = axes[0, 0]
    _histograms(ax, runs, lambda r: r.grad_norm, bins, "input-gradient norm ‖∇ₓ ℓ(f(x), y)‖₂",
                lambda v: f"median {np.median(v):.3g}, min κ ≈ {np.min(v):.2g}")
    for (label, r), color in zip(runs.items(), run_colors(len(runs))):
        if np.min(r.grad_norm) > 0 or ax.get_xscale() != "log":
            ax.axvline(float(np.min(r.grad_norm)), color=color, linestyle=":", linewidth=1)
    ax.set_title("input-gradient norms (Farnia et al. 2019, Fig. 2b)")
    return finish(fig, axes, title)


def plot_adversarial_margin_loss(results, *, bins: int = 50, title: str | None = None):
    """Farnia eq. 1/8 and Fig. 3: (left) distribution of the (normalized) margins at the
    attacked points (solid) and the clean points (dashed); (right) empirical margin loss
    ``P[M ≤ γ]`` vs γ, clean (dashed) and under each attack strength (solid)."""
    runs = as_runs(results, AdversarialMarginLoss)
    bins = check_positive_int(bins, name="bins")
    fig, axes = new_figure(1, 2, width=5.8)
    d_ax, l_ax = axes[0]
    edges = common_edges([np.concatenate([r.clean_margins, r.adversarial_margins.ravel()]) for r in runs.values()], bins)
    scaled = any(r.margin_scale != 1.0 for r in runs.values())
    for (label, r), color in zip(runs.items(), run_colors(len(runs))):
        d_ax.hist(r.clean_margins, bins=edges, density=True, histtype="step", linestyle="--", color=color,
                  label=f"{label}, clean")
        d_ax.hist(r.adversarial_margins[:, -1], bins=edges, density=True, histtype="step", linewidth=1.6,
                  color=color, label=f"{label}, {r.labels[-1]}")
        l_ax.plot(r.gamma, r.clean_loss, "--", color=color, label=f"{label}, clean (eq. 1)")
        for e, lab in enumerate(r.labels):
            alpha = 1.0 if len(r.labels) == 1 else 0.4 + 0.6 * e / (len(r.labels) - 1)
            l_ax.plot(r.gamma, r.adversarial_loss[e], "-", marker=".", color=color, alpha=alpha,
                      label=f"{label}, {lab} (eq. 8)")
    unit = "margin / scale" if scaled else "margin (logit units)"
    d_ax.axvline(0.0, color="black", linestyle=":", linewidth=1)
    d_ax.set_xlabel(f"{unit}  f_y − max_{{j≠y}} f_j")
    d_ax.set_ylabel("probability density")
    d_ax.set_title("margins at clean and attacked points")
    l_ax.set_xlabel(f"γ ({unit})")
    l_ax.set_ylabel("margin loss P[M(f(x'), y) ≤ γ] (fraction)")
    l_ax.set_ylim(-0.02, 1.02)
    l_ax.set_title("(adversarial) margin loss, Farnia eq. 1 / eq. 8")
    return finish(fig, axes, title)


def plot_capacity_scores(results, *, title: str | None = None):
    """Farnia Theorems 1–4: log10 of the capacity scores Φ_erm, Φ_fgm, Φ_pgm, Φ_wrm, one bar
    per run (schemes whose parameters were not given, or WRM with lip ≥ λ, are left out)."""
    runs = as_runs(results, CapacityScores)
    schemes = [s for s in ATTACK_SCHEMES if any(r.log10_phi.get(s) is not None for r in runs.values())]
    fig, axes = new_figure(1, 1, width=max(6.0, 1.6 * len(schemes) * max(len(runs), 1) ** 0.5))
    ax = axes[0, 0]
    width = 0.8 / len(runs)
    xs = np.arange(len(schemes))
    for k, ((label, r), color) in enumerate(zip(runs.items(), run_colors(len(runs)))):
        vals = [r.log10_phi.get(s) for s in schemes]
        pos = xs - 0.4 + width * (k + 0.5)
        ok = [v is not None for v in vals]
        ax.bar(pos[ok], [v for v in vals if v is not None], width=width, color=color, label=label)
        for p, v in zip(pos[ok], [v for v in vals if v is not None]):
            ax.annotate(f"{v:.1f}", (p, v), ha="center", va="bottom", fontsize=7)
    failed = [label for label, r in runs.items() if r.wrm_condition is False]
    note = ("\nΦ_wrm undefined for " + ", ".join(failed) + " (lip(∇ℓ∘f) ≥ λ: Thm. 4 does not apply)") if failed else ""
    ax.set_xticks(xs)
    ax.set_xticklabels([f"Φ_{s}" for s in schemes])
    top = max([v for r in runs.values() for v in r.log10_phi.values() if v is not None] + [0.0])
    ax.set_ylim(top=top * 1.12 + 0.5)
    ax.set_xlabel("training / attack scheme (Farnia et al. 2019, Theorems 1–4)" + note)
    ax.set_ylabel("log10 Φ (capacity score, dimensionless)")
    ax.set_title("capacity scores from the layer spectra")
    return finish(fig, axes, title)
