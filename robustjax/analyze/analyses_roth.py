"""Roth, Kilcher, Hofmann 2019 in ``robustjax analyze``: alignment (Fig. 1, Fig. 3 right), local
linearity and σ_max along a path (Fig. 2).

Perturbations: ℓ2 PGD at ``eps_l2`` (``settings.pgd_steps`` steps of ``step_factor·ε``, random
start, true labels), Roth's proxy for the least linear direction; random directions: Gaussian,
the same for every model. All on the first ``settings.examples`` test examples (Roth: 200).
"""

from __future__ import annotations

import jax
import numpy as np

from robustjax.analysis import (
    local_linearity,
    perturbation_alignment,
    plot_alignment_vs_eps,
    plot_local_linearity,
    plot_perturbation_alignment,
    plot_sigma_along_path,
    sigma_along_path,
)
from robustjax.analysis.plotting import MAX_INSIDE_LEGEND, run_colors
from robustjax.analyze.context import chunked
from robustjax.analyze.spec import Analysis

#: radii of the path diagnostics, in multiples of ``eps_l2`` (Roth Fig. 2 goes to ≈ 2–3 ε)
LINEARITY_RADII = np.linspace(0.0, 3.0, 13)
SIGMA_RADII = np.linspace(0.0, 3.0, 5)
#: strengths of Fig. 3 right, in multiples of ``eps_l2``
ALIGNMENT_EPS = (0.25, 0.5, 1.0, 1.5, 2.0)
DIRECTIONS = ("adversarial", "random")


def _l2_training_eps(ctx):
    return ctx.settings.eps_l2 if ctx.settings.eps_source.get("eps_l2", "").startswith("training") else None


def _alignment_of(ctx, model, delta, *, k=None, purpose="alignment"):
    key = ctx.key_for(purpose)
    return chunked(lambda a, b: perturbation_alignment(
        model.logits_fn, ctx.x[a:b], delta[a:b], k=k, key=jax.random.fold_in(key, a)),
        len(ctx.y), ctx.settings.batch_size)


def _alignment(ctx, model):
    return _alignment_of(ctx, model, ctx.perturbation(model, "2"))


def _alignment_headline(ctx, r):
    return {
        "mean σ₁ of J": float(r.singular_values[:, 0].mean()),
        "|cos(δ, v₁)|": float(r.cosines[:, 0].mean()),
        "|cos(random, v₁)|": float(r.random_cosines[:, 0].mean()),
        f"share of ‖δ‖² in span(v₁…v_{r.k})": float(r.share.mean()),
        "same, random direction": float(r.random_share.mean()),
    }


def _alignment_eps(ctx, model):
    out = {}
    for factor in ALIGNMENT_EPS:
        eps = factor * ctx.settings.eps_l2
        out[float(eps)] = _alignment_of(ctx, model, ctx.perturbation(model, "2", eps), k=1,
                                        purpose="alignment-eps")
    return out


def _alignment_eps_headline(ctx, by_eps):
    return {f"|cos(δ, v₁)| at ε={eps:.3g}": float(r.cosines[:, 0].mean()) for eps, r in by_eps.items()}


def _paths(fn, ctx, model, radii):
    directions = {"adversarial": ctx.perturbation(model, "2"), "random": ctx.random_directions()}
    return {name: fn(d, radii) for name, d in directions.items()}


def _linearity(ctx, model):
    radii = LINEARITY_RADII * ctx.settings.eps_l2
    return _paths(lambda d, r: chunked(lambda a, b: local_linearity(model.features_fn, ctx.x[a:b], d[a:b], r),
                                       len(ctx.y), ctx.settings.batch_size), ctx, model, radii)


def _at_eps(radii, values, eps):
    j = int(np.argmin(np.abs(radii - eps)))
    return float(np.nanmedian(np.where(np.isfinite(values[:, j]), values[:, j], np.nan)))


def _linearity_headline(ctx, rs):
    eps = ctx.settings.eps_l2
    out = {}
    for name, r in rs.items():
        out[f"{name}: deviation at ‖z‖=ε"] = _at_eps(r.radii, r.deviation, eps)
        out[f"{name}: relative deviation at ‖z‖=ε"] = _at_eps(r.radii, r.relative_deviation, eps)
    return out


def _by_direction(results):
    return {f"{label}, {name}": r for label, rs in results.items() for name, r in rs.items()}


def _styled(fig, results):
    """One color per model, solid for the adversarial and dashed for the random direction (as
    Roth Fig. 2), for a figure drawn from ``_by_direction(results)`` by ``median_band``."""
    ax = fig.axes[0]
    colors = run_colors(len(results))
    labels = list(_by_direction(results))
    lines = [ln for ln in ax.get_lines() if ln.get_label() in labels]
    bands = list(ax.collections)
    per_line = len(bands) == len(lines)
    for i, line in enumerate(lines):
        run, direction = divmod(labels.index(line.get_label()), len(DIRECTIONS))
        line.set_color(colors[run])
        line.set_linestyle("-" if DIRECTIONS[direction] == "adversarial" else "--")
        if per_line:
            bands[i].set_facecolor(colors[run])
    if len(lines) > MAX_INSIDE_LEGEND:  # where plotting.finish put it: outside, on the right
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    else:
        ax.legend(fontsize=8, loc="best")
    return fig


def _linearity_figures(ctx, results):
    runs = _by_direction(results)
    eps = _l2_training_eps(ctx)
    return {
        "linearity": _styled(plot_local_linearity(runs, train_eps=eps, title="Roth et al. 2019, Fig. 2 left: φ = φ^(L−1)"),
                             results),
        "linearity_relative": _styled(plot_local_linearity(
            runs, relative=True, train_eps=eps, title="Roth et al. 2019, Fig. 2 left, relative: φ = φ^(L−1)"), results),
    }


def _sigma_path(ctx, model):
    radii = SIGMA_RADII * ctx.settings.eps_l2
    key = ctx.key_for("sigma-path")
    return _paths(lambda d, r: chunked(lambda a, b: sigma_along_path(
        model.logits_fn, ctx.x[a:b], d[a:b], r, iters=ctx.settings.sigma_iters, key=jax.random.fold_in(key, a)),
        len(ctx.y), ctx.settings.batch_size), ctx, model, radii)


def _sigma_headline(ctx, rs):
    out = {}
    for name, r in rs.items():
        out[f"{name}: median σ_max at x"] = float(np.median(r.sigma[:, 0]))
        out[f"{name}: at ‖z‖={r.radii[-1]:.3g}"] = float(np.median(r.sigma[:, -1]))
    return out


ANALYSES = (
    Analysis(
        "alignment", "Alignment of adversarial perturbations with the Jacobian's singular vectors",
        "Roth et al. 2019, §5.2, Fig. 1",
        _alignment,
        lambda ctx, results: {"alignment": plot_perturbation_alignment(
            results, title="Roth et al. 2019, Fig. 1: Jacobian spectrum and alignment of ℓ2 PGD perturbations δ")},
        _alignment_headline,
        "Full SVD of the input Jacobian J_f(x) at each example; |cos| of the ℓ2 PGD perturbation δ "
        "(and of a Gaussian direction) with each right singular vector v_r.",
    ),
    Analysis(
        "alignment_eps", "Alignment with the dominant singular vector vs ε",
        "Roth et al. 2019, Fig. 3 right",
        _alignment_eps,
        lambda ctx, results: {"alignment_eps": plot_alignment_vs_eps(
            results, train_eps=_l2_training_eps(ctx),
            title="Roth et al. 2019, Fig. 3 right: ℓ2 PGD perturbations")},
        _alignment_eps_headline,
        f"ℓ2 PGD at ε = {', '.join(f'{f:g}' for f in ALIGNMENT_EPS)} × eps_l2; mean |cos(δ_ε, v₁)|.",
    ),
    Analysis(
        "linearity", "Deviation from local linearity of the penultimate layer",
        "Roth et al. 2019, §5.3, Fig. 2 left",
        _linearity, _linearity_figures, _linearity_headline,
        "‖φ(x+z) − φ(x) − J_φ z‖₂ of φ = φ^(L−1) (input of the last layer) along the adversarial (ℓ2 PGD) "
        "and a random direction, for ‖z‖₂ up to 3·eps_l2; median over examples.",
    ),
    Analysis(
        "sigma_path", "Largest singular value of the Jacobian along a path",
        "Roth et al. 2019, §5.3, Fig. 2 right",
        _sigma_path,
        lambda ctx, results: {"sigma_path": _styled(plot_sigma_along_path(
            _by_direction(results), train_eps=_l2_training_eps(ctx), title="Roth et al. 2019, Fig. 2 right"), results)},
        _sigma_headline,
        "σ_max of J_f(x + z) by warm-started power iteration (Roth eq. 11), adversarial and random directions.",
    ),
)
