"""The plot_* companions of robustjax.analysis (robustjax.analysis.plots_roth, robustjax.analysis.plots_sgr,
robustjax.analysis.plots_soar and their shared robustjax.analysis.plotting helpers), called through the package's
public names: figures overlay labelled runs, axes carry units, bad input raises."""

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from robustjax import analysis as A

RADII = np.array([0.0, 0.5, 1.0, 2.0])
rng = np.random.default_rng(0)


def _alignment(random=True):
    b, r, k = 6, 4, 3
    return A.AlignmentResult(np.sort(rng.uniform(0.1, 2, (b, r)))[:, ::-1], rng.uniform(0, 1, (b, k)),
                             rng.uniform(0, 1, b), np.ones(b), k=k,
                             random_cosines=rng.uniform(0, 0.1, (b, k)) if random else None,
                             random_share=rng.uniform(0, 0.1, b) if random else None)


def _linearity():
    dev = rng.uniform(0, 1, (5, 4)) * RADII
    rel = dev / 3.0
    rel[0, 0] = np.inf
    return A.LinearityResult(RADII, dev, dev + 1, rel, np.ones(5))


def _covariance(c):
    f = np.exp(-np.arange(5) / 1.5)[None, None] * np.ones((c, c, 1))
    return A.CovarianceResult((4, 3, c), 10, True, np.zeros((4, 3, c)), np.eye(12 * c), np.arange(5), f,
                              np.arange(5) + 1, A.decay_length(np.stack([f[i, i] for i in range(c)])), 1.5)


def _trajectory():
    p = rng.dirichlet(np.ones(3), size=(4, 5))
    return A.TrajectoryResult(np.linspace(-5, 5, 5), p, np.argmax(p[:, 2], axis=1), np.ones(4))


def _taylor(fd=True):
    loss = rng.uniform(0, 1, (3, 4))
    return A.TaylorResult(RADII, np.array([0.1, 1.0]) if fd else np.zeros(0), loss, loss + 0.1, loss + 0.01,
                          np.ones(3), np.ones(3), (loss[:, None] + np.array([0.02, 0.001])[None, :, None]) if fd else None)


def _confidence(points=("clean", "random", "pgd1")):
    return A.ConfidenceResult(tuple(points), 0.1, "inf", rng.uniform(0.5, 1, (4, len(points))), None)


def _labels(fig):
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def _render(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    assert buf.getvalue()[:4] == b"\x89PNG"


def test_roth_plots_overlay_runs_with_units():
    fig = A.plot_perturbation_alignment({"ERM": _alignment(), "PGD AT": _alignment(random=False)})
    assert isinstance(fig, Figure)
    labels = _labels(fig)
    assert any(lbl.startswith("ERM (share") for lbl in labels) and any("ERM, random" in lbl for lbl in labels)
    assert not any("PGD AT, random" in lbl for lbl in labels)
    assert "rank" in fig.axes[1].get_xlabel() and "|cos" in fig.axes[1].get_ylabel()
    _render(fig)
    fig = A.plot_alignment_vs_eps({"ERM": {0.5: _alignment(), 0.1: _alignment()}}, train_eps=0.3)
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), [0.1, 0.5])  # sorted by ε
    assert "training ε = 0.3" in _labels(fig) and "pixel" in fig.axes[0].get_xlabel()
    for plot, result, unit in [(A.plot_local_linearity, _linearity(), "units of φ"),
                               (A.plot_sigma_along_path, A.SigmaPathResult(RADII, rng.uniform(1, 2, (5, 4)), 10),
                                "logits per pixel")]:
        fig = plot({"ERM, adversarial": result, "ERM, random": result})
        assert _labels(fig)[:2] == ["ERM, adversarial", "ERM, random"]
        assert "pixel units" in fig.axes[0].get_xlabel() and unit in fig.axes[0].get_ylabel()
        _render(fig)
    fig = A.plot_local_linearity(_linearity(), relative=True)  # a single result; inf entries skipped
    assert "/" in fig.axes[0].get_ylabel()


def test_sgr_plots():
    fig = A.plot_perturbation_covariance({"PGD": _covariance(2), "data": _covariance(2)})
    assert len([ax for ax in fig.axes if ax.images]) == 2
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (12, 12) and np.max(np.abs(img)) == pytest.approx(1.0)  # 24 × 24 cropped 25 %
    fig = A.plot_covariance_function({"PGD": _covariance(2), "FGSM": _covariance(2)})
    assert len(fig.axes) == 2 and "pixels" in fig.axes[0].get_xlabel()
    assert any("decay length 1.58 px" in lbl for lbl in _labels(fig)) and "1/e" in _labels(fig)
    _render(fig)
    assert len(A.plot_covariance_function(_covariance(1)).axes) == 1  # grayscale: no inter-channel panel
    fig = A.plot_softmax_trajectory({"SGR": _trajectory(), "clean": _trajectory()}, examples=(0, 3))
    assert len(fig.axes) == 4 and "multiples of δ" in fig.axes[0].get_xlabel()
    assert "class 2" in _labels(fig)
    _render(fig)


def test_soar_plots():
    fig = A.plot_taylor_approximation({"ERM": _taylor(fd=False), "SOAR": _taylor()}, example=2)
    labels = _labels(fig)
    assert len(fig.axes) == 4 and fig.axes[1].get_title() == "SOAR: example 2"
    for name in ("exact loss", "1st order", "2nd order (exact HVP)", "2nd order (FD, h = 0.1)"):
        assert name in labels
    assert len(labels) == 9  # top: exact + 4 approximations once; bottom: the 4 approximations once
    assert fig.axes[3].get_yscale() == "log" and "pixel" in fig.axes[3].get_xlabel()
    np.testing.assert_allclose(fig.axes[2].get_lines()[0].get_xdata(), RADII[1:])  # t = 0 left out of the log axis
    _render(fig)
    fig = A.plot_confidence({"SOAR zero init": _confidence(), "PGD AT": _confidence(("clean",))})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["clean (Standard)", "random in ε-ball", "PGD1"]
    assert len(ax.patches) == 4 and "%" in ax.get_ylabel()
    _render(fig)


def test_bad_inputs():
    with pytest.raises(ValueError, match="results must be a AlignmentResult or a non-empty mapping"):
        A.plot_perturbation_alignment({})
    with pytest.raises(ValueError, match=r"results\['x'\] must be a LinearityResult"):
        A.plot_local_linearity({"x": _alignment()})
    with pytest.raises(ValueError, match="rank must be <= k"):
        A.plot_alignment_vs_eps({0.1: _alignment()}, rank=4)
    with pytest.raises(ValueError, match="crop must be in"):
        A.plot_perturbation_covariance(_covariance(1), crop=0.5)
    no_matrix = A.CovarianceResult((4,), 3, True, np.zeros(4))
    with pytest.raises(ValueError, match="has no matrix"):
        A.plot_perturbation_covariance(no_matrix)
    with pytest.raises(ValueError, match="has no covariance function"):
        A.plot_covariance_function(A.CovarianceResult((4,), 3, True, np.zeros(4), np.eye(4)))
    with pytest.raises(ValueError, match="examples must be in"):
        A.plot_softmax_trajectory(_trajectory(), examples=(9,))
    with pytest.raises(ValueError, match="classes must be in"):
        A.plot_softmax_trajectory(_trajectory(), classes=(3,))
    with pytest.raises(ValueError, match="example must be in"):
        A.plot_taylor_approximation(_taylor(), example=-1)
