"""Plots of the Wen et al. diagnostics: overlaid runs, labelled axes, legends, bad input."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from robustjax.analysis import (
    GeneralizationGaps,
    LossVariation,
    SpectralReport,
    margin_distribution,
    plot_generalization_gaps,
    plot_margin_distribution,
    plot_max_loss_variation,
    plot_probability_and_loss_histograms,
    plot_singular_value_std,
    probability_and_loss_histograms,
)

RNG = np.random.default_rng(3)
Y = RNG.integers(0, 4, size=60)


def logits(scale):
    return RNG.normal(size=(60, 4)) * scale


def legend_texts(ax):
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg else []


def labelled(ax):
    return ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_margin_and_probability_plots_overlay_runs():
    runs = {"ε=0": margin_distribution(logits(4), Y), "ε=8/255": margin_distribution(logits(1), Y)}
    fig = plot_margin_distribution(runs, bins=20)
    ax = fig.axes[0]
    assert isinstance(fig, Figure) and labelled(ax) and "logit" in ax.get_xlabel()
    texts = legend_texts(ax)
    assert any(t.startswith("ε=0") for t in texts) and any(t.startswith("ε=8/255") for t in texts)
    fig.canvas.draw()
    single = plot_margin_distribution(runs["ε=0"])
    assert any(t.startswith("model") for t in legend_texts(single.axes[0]))
    hist = {k: probability_and_loss_histograms(logits(s), Y) for k, s in (("a", 4), ("b", 1))}
    fig = plot_probability_and_loss_histograms(hist, bins=10)
    p_ax, m_ax, l_ax = fig.axes
    assert labelled(p_ax) and labelled(m_ax) and labelled(l_ax) and "nats" in l_ax.get_xlabel()
    assert legend_texts(p_ax) == ["a", "b"] and "middle band (0.1, 0.9)" in m_ax.get_xlabel()
    with pytest.raises(ValueError, match="results"):
        plot_margin_distribution({"a": hist["a"]})
    with pytest.raises(ValueError, match="results"):
        plot_margin_distribution({})


def _gaps(shift):
    n = np.ones(5)
    return GeneralizationGaps(attack="PGD eps=8/255", eps=8 / 255, train_loss=0.1 * n + shift, train_correct=n > 0,
                              test_loss=0.5 * n, test_correct=np.arange(5) > 0, train_adv_loss=0.6 * n,
                              train_adv_correct=np.arange(5) > 1, test_adv_loss=0.9 * n, test_adv_correct=np.arange(5) > 2)


def test_generalization_and_loss_variation_plots():
    fig = plot_generalization_gaps({"AR 4": _gaps(0.0), "AR 8": _gaps(0.1), "AR 16": _gaps(0.2)})
    axes = fig.axes
    assert len(axes) == 4 and all(labelled(ax) for ax in axes)
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["AR 4", "AR 8", "AR 16"]
    np.testing.assert_allclose(axes[0].lines[0].get_ydata(), [0.4, 0.3, 0.2])  # clean loss gaps
    assert "under PGD eps=8/255" in legend_texts(axes[0])
    var = np.abs(RNG.normal(size=(7, 2)))
    lv = LossVariation(labels=("PGD eps=1/255", "PGD eps=2/255"), eps=np.array([1 / 255, 2 / 255]),
                       clean_loss=np.zeros(7), attacked_loss=var, variation=var)
    fig = plot_max_loss_variation({"AR 4": lv, "AR 16": lv})
    ax = fig.axes[0]
    assert labelled(ax) and "ε" in ax.get_xlabel() and legend_texts(ax) == ["AR 4", "AR 16"]


def test_singular_value_std_plot_marks_approximations():
    rows = [dict(name=f"l{i}", sv_std=0.1 * i, sv_exact=i != 2, sv_method="x") for i in range(1, 4)]
    rep = SpectralReport(rows=rows, product_operator=1.0, product_reshape=1.0)
    fig = plot_singular_value_std({"AR 4": rep, "AR 16": rep})
    ax = fig.axes[0]
    assert labelled(ax) and "layer" in ax.get_xlabel()
    texts = legend_texts(ax)
    assert "AR 4" in texts and "circular approximation" in texts and "exact singular values" in texts
