"""robustjax.analysis.margins against Python loops, numpy.histogram and a hand-attacked linear model."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.analysis import (
    adversarial_margin_loss,
    margin_distribution,
    margin_loss,
    probability_and_loss_histograms,
)
from robustjax.evaluation import AttackSpec

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(40, 5)) * 3
LABELS = RNG.integers(0, 5, size=40)
LOGITS[3] = [1.0, 1.0, 0.0, -1.0, 0.5]  # a tie between the true class 0 and class 1
LABELS[3] = 0


def loop_margins(logits, y):
    out = []
    for row, label in zip(logits, y):
        others = [row[j] for j in range(len(row)) if j != label]
        out.append(row[label] - max(others))
    return np.array(out)


def loop_probability(logits, y):
    out = []
    for row, label in zip(logits, y):
        e = [math.exp(v - max(row)) for v in row]
        out.append(e[label] / sum(e))
    return np.array(out)


def test_margin_distribution_matches_loop_and_numpy_histogram():
    r = margin_distribution(LOGITS, LABELS, bins=13)
    ref = loop_margins(LOGITS, LABELS)
    np.testing.assert_allclose(r.margins, ref, rtol=1e-12, atol=1e-12)
    counts, edges = np.histogram(ref, bins=13)
    density, _ = np.histogram(ref, bins=13, density=True)
    np.testing.assert_allclose(r.bin_edges, edges)
    np.testing.assert_array_equal(r.counts, counts)
    np.testing.assert_allclose(r.density, density)
    s = r.summary()
    assert s["num_examples"] == 40 and r.margins[3] == 0.0
    assert s["fraction_nonpositive"] == pytest.approx(np.mean(ref <= 0))  # the tie counts as an error
    assert s["mean"] == pytest.approx(ref.mean()) and s["std"] == pytest.approx(ref.std())
    fixed = margin_distribution(LOGITS, LABELS, bins=4, range=(-1, 1))
    np.testing.assert_array_equal(fixed.counts, np.histogram(ref, bins=4, range=(-1, 1))[0])
    json.dumps(r.to_json())


def test_probability_and_loss_histograms_match_loop():
    r = probability_and_loss_histograms(LOGITS, LABELS, bins=9, middle=(0.2, 0.8))
    p = loop_probability(LOGITS, LABELS)
    np.testing.assert_allclose(r.probability, p, rtol=1e-12)
    np.testing.assert_allclose(r.loss, -np.log(p), rtol=1e-12)
    np.testing.assert_array_equal(r.probability_counts, np.histogram(p, bins=9, range=(0, 1))[0])
    np.testing.assert_array_equal(r.loss_counts, np.histogram(-np.log(p), bins=9, range=(0, (-np.log(p)).max()))[0])
    assert r.summary()["fraction_middle_probability"] == pytest.approx(np.mean((p > 0.2) & (p < 0.8)))
    assert r.summary()["mean_loss"] == pytest.approx(np.mean(-np.log(p)))
    # extreme logits: no overflow, no NaN
    big = probability_and_loss_histograms(np.array([[1e4, -1e4], [-1e4, 1e4]]), np.array([0, 0]))
    np.testing.assert_allclose(big.loss, [0.0, 2e4]) and np.testing.assert_allclose(big.probability, [1.0, 0.0])


def test_margin_loss_is_the_indicator_of_eq_1():
    ref = loop_margins(LOGITS, LABELS)
    for gamma in (0.0, 0.7, 3.0):
        np.testing.assert_array_equal(margin_loss(LOGITS, LABELS, gamma=gamma), (ref <= gamma).astype(float))


def test_per_example_functions_are_batch_independent():
    a = margin_distribution(LOGITS, LABELS)
    b_logits = LOGITS.copy()
    b_logits[7] += RNG.normal(size=5) * 10
    b = margin_distribution(b_logits, LABELS)
    keep = np.arange(40) != 7
    np.testing.assert_array_equal(a.margins[keep], b.margins[keep])
    pa = probability_and_loss_histograms(LOGITS, LABELS)
    pb = probability_and_loss_histograms(b_logits, LABELS)
    np.testing.assert_array_equal(pa.loss[keep], pb.loss[keep])


@pytest.mark.parametrize("call,match", [
    (lambda: margin_distribution(LOGITS[:, :1], LABELS), "logits"),
    (lambda: margin_distribution(LOGITS, LABELS[:-1]), "y"),
    (lambda: margin_distribution(LOGITS, LABELS + 5), "y must be in"),
    (lambda: margin_distribution(LOGITS.astype(int), LABELS), "logits"),
    (lambda: margin_distribution(np.full((2, 3), np.nan), [0, 1]), "NaN"),
    (lambda: margin_distribution(LOGITS, LABELS, bins=0), "bins"),
    (lambda: margin_distribution(LOGITS, LABELS, range=(1, 0)), "range"),
    (lambda: probability_and_loss_histograms(LOGITS, LABELS, middle=(0.5, 2.0)), "middle"),
    (lambda: margin_loss(LOGITS, LABELS, gamma=-1), "gamma"),
    (lambda: margin_distribution(LOGITS, LABELS.astype(float)), "y"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---- adversarial margin loss (Farnia eq. 8) on a linear model -------------------------------------

W = RNG.normal(size=(12, 3))
B = RNG.normal(size=3)
X = RNG.uniform(size=(10, 3, 4, 1)).astype(np.float32)
Y = RNG.integers(0, 3, size=10).astype(np.int32)


def linear(x):
    return x.reshape(x.shape[0], -1) @ jnp.asarray(W, jnp.float32) + jnp.asarray(B, jnp.float32)


def shift_attack(logits_fn, x, y, key):
    return x + 0.05


def test_adversarial_margin_loss_on_linear_model_by_hand():
    gammas = [0.0, 0.5, 2.0]
    r = adversarial_margin_loss(linear, (X, Y), attack=shift_attack, gamma=gammas, batch_size=4)
    flat = X.reshape(10, -1).astype(np.float64)
    clean = loop_margins(flat @ W + B, Y)
    adv = loop_margins((flat + 0.05) @ W + B, Y)
    np.testing.assert_allclose(r.clean_margins, clean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r.adversarial_margins[:, 0], adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r.clean_loss, [np.mean(clean <= g) for g in gammas])
    np.testing.assert_allclose(r.adversarial_loss[0], [np.mean(adv <= g) for g in gammas])
    # ℓ2 FGM through the evaluator's registry: x + ε g/‖g‖ with g = Wᵀ(softmax − e_y)
    spec = AttackSpec("FGM", "fgm", eps=(0.3, 0.6), norm=2, clip=None)
    f = adversarial_margin_loss(linear, (X, Y), attack=spec, gamma=1.0, margin_scale=2.0)
    logits = flat @ W + B
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = (p - np.eye(3)[Y]) @ W.T
    for e, eps in enumerate((0.3, 0.6)):
        x_adv = flat + eps * g / np.linalg.norm(g, axis=1, keepdims=True)
        np.testing.assert_allclose(f.adversarial_margins[:, e], loop_margins(x_adv @ W + B, Y) / 2.0, rtol=1e-4, atol=1e-5)
    assert f.labels == ("FGM eps=0.3", "FGM eps=0.6") and np.allclose(f.eps, [0.3, 0.6])
    json.dumps(f.to_json())


def test_adversarial_margin_loss_random_attack_is_per_example_and_chunk_invariant():
    spec = AttackSpec("PGD", "pgd", eps=0.1, norm=math.inf, params=dict(steps=3, step_size=0.05))
    a = adversarial_margin_loss(linear, (X, Y), attack=spec, gamma=0.0, key=1, batch_size=3)
    b = adversarial_margin_loss(linear, (X, Y), attack=spec, gamma=0.0, key=1, batch_size=10)
    np.testing.assert_allclose(a.adversarial_margins, b.adversarial_margins, rtol=1e-6, atol=1e-6)
    x2 = X.copy()
    x2[4] = RNG.uniform(size=X.shape[1:])
    c = adversarial_margin_loss(linear, (x2, Y), attack=spec, gamma=0.0, key=1, batch_size=3)
    keep = np.arange(10) != 4
    np.testing.assert_allclose(a.adversarial_margins[keep], c.adversarial_margins[keep], rtol=1e-6, atol=1e-6)
    assert not np.allclose(a.adversarial_margins[4], c.adversarial_margins[4])
    with pytest.raises(ValueError, match="gamma"):
        adversarial_margin_loss(linear, (X, Y), attack=spec, gamma=[-1.0])
    with pytest.raises(ValueError, match="attack"):
        adversarial_margin_loss(linear, (X, Y), attack="pgd", gamma=0.0)
    with pytest.raises(ValueError, match="data"):
        adversarial_margin_loss(linear, (X, Y[:3]), attack=spec, gamma=0.0)
    with pytest.raises(ValueError, match="logits_fn"):
        adversarial_margin_loss(None, (X, Y), attack=spec, gamma=0.0)
