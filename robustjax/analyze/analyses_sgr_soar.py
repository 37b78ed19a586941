"""SGR 2018 (covariance of perturbations Fig. 1–2, softmax trajectory Fig. 6) and SOAR 2020
(Taylor approximation quality Fig. 1/4, confidence Table 5) in ``robustjax analyze``.

SGR's perturbations are ℓ∞ PGD at ``eps_linf`` on the first ``settings.examples`` test examples.
SOAR Fig. 1 expands the loss of a training point along a random perturbation ``η``; here test
points and a Gaussian direction, up to ``‖z‖₂ = eps_linf·√(D/3)`` (the typical ℓ2 length of a
uniform ℓ∞-ball point), with the exact Hessian and SOAR eq. 9's finite difference at
``h = eps_linf`` (SOAR draws ``h ~ U(0, α)``, ``α = ε``).
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.tree_util import Partial

from robustjax.analysis import (
    confidence_at_points,
    perturbation_covariance,
    plot_confidence,
    plot_covariance_function,
    plot_perturbation_covariance,
    plot_softmax_trajectory,
    plot_taylor_approximation,
    softmax_along_trajectory,
    taylor_approximation_quality,
)
from robustjax.analyze.context import chunked
from robustjax.analyze.spec import Analysis
from robustjax.core.losses import cross_entropy

#: SGR Fig. 6: from −5δ to 5δ
TRAJECTORY_TS = np.linspace(-5.0, 5.0, 41)
TRAJECTORY_EXAMPLES = (0, 1, 2)
TAYLOR_POINTS = 11
DATA_LABEL = "test images x (data)"


def _covariance(ctx, model):
    return perturbation_covariance(ctx.perturbation(model, "inf"), matrix=True)


def _covariance_figures(ctx, results):
    data = ctx.cached(("data-covariance",), lambda: perturbation_covariance(ctx.x, matrix=True))
    with_data = {**results, DATA_LABEL: data}
    eps = ctx.settings.eps_linf
    return {
        "covariance_matrix": plot_perturbation_covariance(
            with_data, title=f"SGR 2018, Fig. 1: covariance of ℓ∞ PGD perturbations (ε = {eps:.3g}) and of the data"),
        "covariance_function": plot_covariance_function(
            with_data, title=f"SGR 2018, Fig. 2: ℓ∞ PGD perturbations (ε = {eps:.3g})"),
    }


def _covariance_headline(ctx, r):
    return {"mean variance (pixel²)": r.summary()["mean_variance"],
            "decay length (px)": r.mean_decay_length}


def _trajectory(ctx, model):
    delta = ctx.perturbation(model, "inf")
    return chunked(lambda a, b: softmax_along_trajectory(model.logits_fn, ctx.x[a:b], delta[a:b], TRAJECTORY_TS),
                   len(ctx.y), ctx.settings.batch_size)


def _trajectory_headline(ctx, r):
    s = r.summary()
    j = int(np.argmin(np.abs(r.ts - 1.0)))
    return {"p(clean class) at x + δ": float(s["mean_probability_of_clean_prediction"][j]),
            "prediction changed at x + δ": float(s["prediction_changed_rate"][j]),
            "mean total variation on [−5, 5]": s["mean_total_variation"]}


def _per_example_loss(logits_fn, y, x):
    return cross_entropy(logits_fn(x), y)


def _taylor_radii(ctx):
    return np.linspace(0.0, ctx.settings.eps_linf * math.sqrt(ctx.input_dim / 3.0), TAYLOR_POINTS)


def _fd_step(ctx):
    return float(f"{ctx.settings.eps_linf:.3g}")  # SOAR's α = ε, rounded for the legend


def _taylor(ctx, model):
    d = ctx.random_directions()

    def part(a, b):
        loss_fn = Partial(_per_example_loss, model.logits_fn, ctx.y[a:b])  # pytree: compiled once
        return taylor_approximation_quality(loss_fn, ctx.x[a:b], d[a:b], _taylor_radii(ctx),
                                            fd_steps=(_fd_step(ctx),))

    return chunked(part, len(ctx.y), ctx.settings.batch_size)


def _taylor_headline(ctx, r):
    errors = r.errors()
    out = {"loss at x": float(np.mean(r.loss[:, 0])), f"loss at ‖z‖={r.radii[-1]:.3g}": float(np.mean(r.loss[:, -1]))}
    for name, err in errors.items():
        out[f"median |error|, {name.replace('second_order', '2nd').replace('first_order', '1st')}"] = \
            float(np.median(err[:, -1]))
    return out


def _confidence(ctx, model):
    x, y = ctx.test
    key = ctx.key_for("confidence")
    return chunked(lambda a, b: confidence_at_points(model.logits_fn, x[a:b], y[a:b], eps=ctx.settings.eps_linf,
                                                     key=jax.random.fold_in(key, a)),
                   len(y), ctx.settings.batch_size)


def _confidence_headline(ctx, r):
    s = r.summary()
    out = {f"max prob at {p} (%)": 100 * v for p, v in s["mean_max_probability"].items()}
    out.update({f"accuracy at {p} (%)": 100 * v for p, v in s["accuracy"].items()})
    return out


ANALYSES = (
    Analysis(
        "covariance", "Covariance structure of adversarial perturbations", "SGR 2018, eq. 15–16, Fig. 1–2",
        _covariance, _covariance_figures, _covariance_headline,
        "Covariance matrix (center crop, scaled to max |entry| = 1) and covariance function of the rounded "
        "pixel displacement of ℓ∞ PGD perturbations at eps_linf, with the data's for comparison; decay "
        "length = displacement where the function falls to 1/e (footnote 5).",
    ),
    Analysis(
        "trajectory", "Softmax outputs along x + tδ", "SGR 2018, Fig. 6",
        _trajectory,
        lambda ctx, results: {"trajectory": plot_softmax_trajectory(
            results, examples=[e for e in TRAJECTORY_EXAMPLES if e < len(ctx.y)],
            title="SGR 2018, Fig. 6: softmax along x + tδ, δ = ℓ∞ PGD perturbation")},
        _trajectory_headline,
        "Softmax of every class on the segment x − 5δ … x + 5δ (δ: ℓ∞ PGD at eps_linf), not clipped; total "
        "variation = Σ ½‖p(t_{j+1}) − p(t_j)‖₁.",
    ),
    Analysis(
        "taylor", "Taylor approximation of the loss along a random direction", "SOAR 2020, eq. 4, 9, Fig. 1, 4",
        _taylor,
        lambda ctx, results: {"taylor": plot_taylor_approximation(
            results, title="SOAR 2020, Fig. 1/4: loss along a random direction and its Taylor approximations")},
        _taylor_headline,
        "Exact cross-entropy ℓ(x + t d̂) vs 1st order and 2nd order (exact Hessian; SOAR eq. 9 finite "
        "difference with h = eps_linf to 3 digits) along a Gaussian direction, t up to eps_linf·√(D/3).",
    ),
    Analysis(
        "confidence", "Confidence at SOAR's evaluation points", "SOAR 2020, App. B, Table 5",
        _confidence,
        lambda ctx, results: {"confidence": plot_confidence(
            results, title="SOAR 2020, Table 5: mean highest softmax probability")},
        _confidence_headline,
        "Mean highest softmax probability at the clean point, a uniform point of the ℓ∞ ball (eps_linf) and "
        "one PGD step from it (PGD1); ≈ 100 % everywhere hints at gradient masking.",
    ),
)
