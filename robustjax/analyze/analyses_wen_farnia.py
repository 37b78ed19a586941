"""Wen, Li, Jia 2020 (margins Fig. 4, probability/loss histograms Fig. 5a–b, generalization gaps
Fig. 3 / Table 2, loss variation App. B.5 / Table 1, singular-value spread Fig. 1a) and Farnia,
Zhang, Tse 2019 (norm gain Fig. 2a, input-gradient norms Fig. 2b, capacity scores Thms. 1–4,
adversarial margin loss eq. 8 / Fig. 3) in ``robustjax analyze``.

Attacks: ℓ∞ PGD (``settings.pgd_steps`` steps of ``step_factor·ε``, random start, true labels)
at ``eps_linf`` for the gaps, at ``eps_linf·{1/4, 1/2, 1}`` for the loss variation (Wen: 1, 2,
4/255 against 8/255 training); ℓ2 PGD at ``eps_l2`` for Farnia's margin loss (his PGM is ℓ2).
All on the ``limit`` test examples (and as many training examples for the gaps).
"""

from __future__ import annotations

import math

import numpy as np

from robustjax.analysis import (
    adversarial_margin_loss,
    capacity_scores,
    generalization_gaps,
    margin_distribution,
    max_loss_variation,
    norm_gain,
    plot_adversarial_margin_loss,
    plot_capacity_scores,
    plot_generalization_gaps,
    plot_input_gradient_norms,
    plot_margin_distribution,
    plot_max_loss_variation,
    plot_norm_gain,
    plot_probability_and_loss_histograms,
    plot_singular_value_std,
    probability_and_loss_histograms,
)
from robustjax.analyze.spec import Analysis
from robustjax.evaluation.suites import AttackSpec

LOSS_VARIATION_EPS = (0.25, 0.5, 1.0)
KAPPA_QUANTILE = 0.1
MARGIN_GAMMAS = 41


def _pgd(ctx, eps, norm):
    s = ctx.settings
    name = f"PGD-{s.pgd_steps} ℓ{'∞' if norm == math.inf else '2'}"
    return AttackSpec(name, "pgd", eps=tuple(float(e) for e in eps), norm=norm,
                      params={"steps": s.pgd_steps, "step_size_factor": s.step_factor, "random_start": True})


def _batch(ctx):
    return min(ctx.settings.batch_size, len(ctx.test[1]))


def _margins(ctx, model):
    return margin_distribution(ctx.test_logits(model), ctx.test[1])


def _margins_headline(ctx, r):
    s = r.summary()
    return {"median margin (logits)": s["median"], "std": s["std"], "error (margin ≤ 0)": s["fraction_nonpositive"]}


def _histograms(ctx, model):
    return probability_and_loss_histograms(ctx.test_logits(model), ctx.test[1])


def _histograms_headline(ctx, r):
    s = r.summary()
    lo, hi = s["middle"]
    return {"mean p_y": s["mean_probability"], "mean loss (nats)": s["mean_loss"],
            f"fraction with {lo:g} < p_y < {hi:g}": s["fraction_middle_probability"]}


def _gaps(ctx, model):
    return generalization_gaps(model.logits_fn, ctx.train, ctx.test, attack=_pgd(ctx, [ctx.settings.eps_linf], math.inf),
                               key=ctx.key_for("gaps"), batch_size=_batch(ctx))


def _gaps_headline(ctx, r):
    s = r.summary()
    keys = ["train_loss", "test_loss", "loss_gap", "train_error", "test_error", "error_gap",
            "adv_train_loss", "adv_test_loss", "adv_loss_gap", "adv_train_error", "adv_test_error", "adv_error_gap"]
    return {k.replace("_", " "): s[k] for k in keys if k in s}


def _loss_variation(ctx, model):
    eps = [f * ctx.settings.eps_linf for f in LOSS_VARIATION_EPS]
    return max_loss_variation(model.logits_fn, ctx.test, attack=_pgd(ctx, eps, math.inf),
                              key=ctx.key_for("loss-variation"), batch_size=_batch(ctx))


def _loss_variation_headline(ctx, r):
    return {f"ε={e:.3g}: mean ± std": f"{m:.4g} ± {s:.3g}" for e, m, s in zip(r.eps, r.mean, r.std)}


def _layer_spectra(ctx, model):
    return ctx.spectral_report(model)


def _layer_spectra_headline(ctx, rep):
    s = rep.summary()
    stds = ", ".join("—" if v is None else f"{v:.3g}" for v in rep.sv_std)
    return {"Π‖W_i‖₂ (operator)": s["product_operator"], "sv std per layer": stds,
            "methods": ", ".join(sorted(set(s["sv_methods"])))}


def _norm_gain(ctx, model):
    return norm_gain(model.logits_fn, ctx.test[0], batch_size=_batch(ctx))


def _gradient_norms(ctx, model):
    return ctx.gradient_norms(model)


def _quantiles_headline(unit):
    def headline(ctx, r):
        s = r.summary()
        return {f"median {unit}": s["median"], "10 % quantile": s["q10"], "min": s["min"], "max": s["max"]}
    return headline


def _capacity(ctx, model):
    s = ctx.settings
    kappa = float(np.quantile(ctx.gradient_norms(model).grad_norm, KAPPA_QUANTILE))
    return capacity_scores(ctx.spectral_report(model), eps=s.eps_l2, kappa=max(kappa, 1e-12),
                           step_size=s.step_factor * s.eps_l2, steps=s.pgd_steps, lam=s.wrm_lambda)


def _capacity_headline(ctx, r):
    out = {f"log10 Φ_{k}": v for k, v in r.log10_phi.items() if v is not None or k != "wrm"}
    out["κ (10 % quantile of ‖∇ₓℓ‖)"] = r.params["kappa"]
    out["log10 lip(∇ℓ∘f)"] = r.log10_lip
    return out


def _gammas(ctx):
    def grid():
        first = ctx.models[0]
        m = margin_distribution(ctx.test_logits(first), ctx.test[1]).margins
        top = float(np.quantile(m, 0.9))
        return np.linspace(0.0, top if top > 0 else 1.0, MARGIN_GAMMAS)
    return ctx.cached(("gammas",), grid)


def _margin_loss(ctx, model):
    return adversarial_margin_loss(model.logits_fn, ctx.test, attack=_pgd(ctx, [ctx.settings.eps_l2], 2),
                                   gamma=_gammas(ctx), key=ctx.key_for("margin-loss"), batch_size=_batch(ctx))


def _margin_loss_headline(ctx, r):
    mid = len(r.gamma) // 2
    return {"clean error (γ=0)": float(r.clean_loss[0]), "adversarial error (γ=0)": float(r.adversarial_loss[-1, 0]),
            f"clean margin loss γ={r.gamma[mid]:.3g}": float(r.clean_loss[mid]),
            f"adversarial, γ={r.gamma[mid]:.3g}": float(r.adversarial_loss[-1, mid])}


def _gaps_figures(ctx, results):
    fig = plot_generalization_gaps(results)
    for ax in fig.axes:
        ax.set_xlabel("model")
    return {"gaps": fig}


def _one(name, plot, **kw):
    return lambda ctx, results: {name: plot(results, **kw)}


ANALYSES = (
    Analysis("margins", "Margin distribution", "Wen et al. 2020, Def. 3, Fig. 4",
             _margins, _one("margins", plot_margin_distribution), _margins_headline,
             "Margins f_y(x) − max_{i≠y} f_i(x) of the test examples (logit units)."),
    Analysis("histograms", "Estimated probability of the true class and loss", "Wen et al. 2020, Fig. 5a–b",
             _histograms, _one("histograms", plot_probability_and_loss_histograms), _histograms_headline,
             "Histograms of p_y = softmax(f(x))_y and of the cross-entropy −log p_y on the test examples."),
    Analysis("gaps", "Generalization gaps, clean and adversarial", "Wen et al. 2020, §4.1, Fig. 3, Table 2",
             _gaps, _gaps_figures, _gaps_headline,
             "Loss and error of the final model on the clean training examples and the test examples, and "
             "under ℓ∞ PGD at eps_linf; gap = test − train."),
    Analysis("loss_variation", "Maximal loss variation under attack", "Wen et al. 2020, App. B.5, Fig. 8, Table 1",
             _loss_variation, _one("loss_variation", plot_max_loss_variation), _loss_variation_headline,
             "max(ℓ(x_adv) − ℓ(x), 0) per test example for ℓ∞ PGD at ε = ¼, ½, 1 × eps_linf: mean ± std."),
    Analysis("layer_spectra", "Singular-value spread of every layer", "Wen et al. 2020, Fig. 1a, App. B.2",
             _layer_spectra, _one("sv_std", plot_singular_value_std), _layer_spectra_headline,
             "Standard deviation of each layer operator's singular values (exact where the operator is small, "
             "else the circular approximation; hollow markers) and the product of operator norms."),
    Analysis("norm_gain", "ℓ2 norm gain of the network", "Farnia et al. 2019, §5.1, Fig. 2a",
             _norm_gain, _one("norm_gain", plot_norm_gain), _quantiles_headline("‖f(x)‖₂/‖x‖₂"),
             "‖f(x)‖₂ / ‖x‖₂ of the test examples (logits per pixel unit)."),
    Analysis("gradient_norms", "Input-gradient norms", "Farnia et al. 2019, Fig. 2b",
             _gradient_norms, _one("gradient_norms", plot_input_gradient_norms), _quantiles_headline("‖∇ₓℓ‖₂"),
             "‖∇ₓ ℓ(f(x), y)‖₂ of the test examples; its lower quantiles are the κ of Theorems 2–3."),
    Analysis("capacity", "Capacity scores Φ", "Farnia et al. 2019, Theorems 1–4",
             _capacity, _one("capacity", plot_capacity_scores), _capacity_headline,
             "Φ_erm, Φ_fgm, Φ_pgm (ε = eps_l2, α = step_factor·ε, r = pgd_steps), Φ_wrm (λ of a WRM run) from the "
             "layer spectra; κ = 10 % quantile of the input-gradient norms."),
    Analysis("margin_loss", "Adversarial margin loss", "Farnia et al. 2019, eq. 1, eq. 8, Fig. 3",
             _margin_loss, _one("margin_loss", plot_adversarial_margin_loss), _margin_loss_headline,
             "P[M(f(x'), y) ≤ γ] at clean points (eq. 1) and ℓ2 PGD points at eps_l2 (eq. 8) on a γ grid up to "
             "the 90 % quantile of the first model's clean margins."),
)
