"""Plots of the Farnia et al. diagnostics: overlaid runs, labelled axes, legends, bad input."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from robustjax.analysis import (
    AdversarialMarginLoss,
    InputGradientNorms,
    NormGain,
    capacity_scores,
    plot_adversarial_margin_loss,
    plot_capacity_scores,
    plot_input_gradient_norms,
    plot_norm_gain,
)

RNG = np.random.default_rng(4)


def legend_texts(ax):
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg else []


def labelled(ax):
    return ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_norm_gain_and_gradient_plots():
    g1, g2 = np.abs(RNG.normal(size=50)) + 0.5, np.abs(RNG.normal(size=50)) * 100 + 1
    runs = {"β=∞": NormGain(input_norm=np.ones(50), output_norm=g2, gain=g2),
            "β=1": NormGain(input_norm=np.ones(50), output_norm=g1, gain=g1)}
    fig = plot_norm_gain(runs, bins=10)
    ax = fig.axes[0]
    assert isinstance(fig, Figure) and labelled(ax) and ax.get_xscale() == "log"  # spans > 2 decades
    assert [t.split(" (")[0] for t in legend_texts(ax)] == ["β=∞", "β=1"]
    grads = {"ERM": InputGradientNorms(grad_norm=g1, loss=g1), "SN": InputGradientNorms(grad_norm=g1 * 2, loss=g1)}
    fig = plot_input_gradient_norms(grads)
    ax = fig.axes[0]
    assert labelled(ax) and "∇" in ax.get_xlabel() and len(legend_texts(ax)) == 2
    fig.canvas.draw()
    with pytest.raises(ValueError, match="results"):
        plot_norm_gain(grads)


def test_margin_loss_and_capacity_plots():
    gamma = np.linspace(0, 2, 5)
    m = RNG.normal(size=(30, 2))
    r = AdversarialMarginLoss(gamma=gamma, labels=("FGM eps=0.1", "FGM eps=0.2"), eps=np.array([0.1, 0.2]),
                              margin_scale=1.0, clean_loss=np.mean(m[:, :1] <= gamma, axis=0),
                              adversarial_loss=np.stack([np.mean(m[:, e:e + 1] <= gamma, axis=0) for e in (0, 1)]),
                              clean_margins=m[:, 0], adversarial_margins=m)
    fig = plot_adversarial_margin_loss({"ERM": r, "SN": r})
    d_ax, l_ax = fig.axes
    assert labelled(d_ax) and labelled(l_ax) and "γ" in l_ax.get_xlabel()
    assert "ERM, FGM eps=0.2 (eq. 8)" in legend_texts(l_ax) and "SN, clean (eq. 1)" in legend_texts(l_ax)
    a = capacity_scores([(2.0, 3.0), (1.0, 2.0)], eps=0.1, kappa=1.0)
    b = capacity_scores([(1.0, 2.0), (1.0, 2.0)], eps=0.1, kappa=1.0)
    fig = plot_capacity_scores({"ERM": a, "SN β=1": b})
    ax = fig.axes[0]
    assert labelled(ax) and [t.get_text() for t in ax.get_xticklabels()] == ["Φ_erm", "Φ_fgm"]
    assert legend_texts(ax) == ["ERM", "SN β=1"]
    heights = sorted(p.get_height() for p in ax.patches)
    np.testing.assert_allclose(heights, sorted([a.log10_phi["erm"], a.log10_phi["fgm"], b.log10_phi["erm"], b.log10_phi["fgm"]]))
