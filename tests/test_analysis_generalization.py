"""robustjax.analysis.generalization on a linear model with hand-computed losses and attacks."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.analysis import generalization_gaps, max_loss_variation
from robustjax.evaluation import AttackSpec

RNG = np.random.default_rng(1)
W = RNG.normal(size=(8, 3))
B = RNG.normal(size=3)
TRAIN = (RNG.uniform(size=(12, 2, 4, 1)).astype(np.float32), RNG.integers(0, 3, size=12).astype(np.int32))
TEST = (RNG.uniform(size=(9, 2, 4, 1)).astype(np.float32), RNG.integers(0, 3, size=9).astype(np.int32))


def linear(x):
    return x.reshape(x.shape[0], -1) @ jnp.asarray(W, jnp.float32) + jnp.asarray(B, jnp.float32)


def hand_ce(x, y):
    """Cross-entropy and correctness of the linear model, one example at a time (float64)."""
    losses, correct = [], []
    for xi, yi in zip(x.reshape(x.shape[0], -1).astype(np.float64), y):
        z = xi @ W + B
        losses.append(math.log(sum(math.exp(v) for v in z)) - z[yi])
        correct.append(int(np.argmax(z)) == yi)
    return np.array(losses), np.array(correct)


def hand_fgsm(x, y, eps):
    """x + ε sign(∇ₓ CE) of the linear model (∇ = Wᵀ(softmax − e_y)), no clipping."""
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    z = flat @ W + B
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = (p - np.eye(3)[y]) @ W.T
    return (flat + eps * np.sign(g)).reshape(x.shape)


def test_generalization_gaps_match_hand_computation():
    fgsm = AttackSpec("FGSM", "fgsm", eps=0.1, clip=None)
    r = generalization_gaps(linear, TRAIN, {"images": TEST[0], "labels": TEST[1]}, attack=fgsm, batch_size=5)
    s = r.summary()
    tr_l, tr_c = hand_ce(*TRAIN)
    te_l, te_c = hand_ce(*TEST)
    np.testing.assert_allclose(r.train_loss, tr_l, rtol=1e-5)
    np.testing.assert_allclose(r.test_loss, te_l, rtol=1e-5)
    assert s["train_loss"] == pytest.approx(tr_l.mean(), rel=1e-5)
    assert s["loss_gap"] == pytest.approx(te_l.mean() - tr_l.mean(), rel=1e-4)
    assert s["error_gap"] == pytest.approx(np.mean(~te_c) - np.mean(~tr_c))
    atr_l, atr_c = hand_ce(hand_fgsm(TRAIN[0], TRAIN[1], 0.1), TRAIN[1])
    ate_l, ate_c = hand_ce(hand_fgsm(TEST[0], TEST[1], 0.1), TEST[1])
    np.testing.assert_allclose(r.train_adv_loss, atr_l, rtol=1e-5)
    np.testing.assert_allclose(r.test_adv_loss, ate_l, rtol=1e-5)
    assert s["adv_loss_gap"] == pytest.approx(ate_l.mean() - atr_l.mean(), rel=1e-4)
    assert s["adv_train_error"] == pytest.approx(np.mean(~atr_c))
    assert s["attack"] == "FGSM eps=0.1" and s["eps"] == 0.1
    clean_only = generalization_gaps(linear, TRAIN, TEST)
    assert clean_only.train_adv_loss is None and "adv_loss_gap" not in clean_only.summary()
    json.dumps(r.to_json())


def test_generalization_gaps_bad_input():
    with pytest.raises(ValueError, match="one strength"):
        generalization_gaps(linear, TRAIN, TEST, attack=AttackSpec("F", "fgsm", eps=(0.1, 0.2)))
    with pytest.raises(ValueError, match="train"):
        generalization_gaps(linear, (TRAIN[0], TRAIN[1][:3]), TEST)
    with pytest.raises(ValueError, match="same shape"):
        generalization_gaps(linear, TRAIN, (TEST[0][:, :1], TEST[1]))
    with pytest.raises(ValueError, match="key"):
        generalization_gaps(linear, TRAIN, TEST, key="seed")


def test_max_loss_variation_by_hand_and_batch_independent():
    spec = AttackSpec("FGSM", "fgsm", eps=(0.05, 0.2), clip=None)
    r = max_loss_variation(linear, TEST, attack=spec, batch_size=4)
    clean, _ = hand_ce(*TEST)
    np.testing.assert_allclose(r.clean_loss, clean, rtol=1e-5)
    for e, eps in enumerate((0.05, 0.2)):
        adv, _ = hand_ce(hand_fgsm(TEST[0], TEST[1], eps), TEST[1])
        np.testing.assert_allclose(r.attacked_loss[:, e], adv, rtol=1e-5)
        np.testing.assert_allclose(r.variation[:, e], np.maximum(adv - clean, 0), rtol=1e-4, atol=1e-6)
    s = r.summary()
    assert s["mean"]["FGSM eps=0.2"] == pytest.approx(r.variation[:, 1].mean())
    assert s["std"]["FGSM eps=0.05"] == pytest.approx(r.variation[:, 0].std())
    assert np.all(r.variation >= 0) and np.all(r.mean[1] >= r.mean[0])  # linear loss: larger ball, larger increase
    x2 = TEST[0].copy()
    x2[2] = 1.0 - x2[2]
    r2 = max_loss_variation(linear, (x2, TEST[1]), attack=spec, batch_size=4)
    keep = np.arange(9) != 2
    np.testing.assert_array_equal(r.variation[keep], r2.variation[keep])
    assert not np.allclose(r.variation[2], r2.variation[2])
    with pytest.raises(ValueError, match="attack"):
        max_loss_variation(linear, TEST, attack=None)


def test_generalization_gaps_relative_eps_mapping_and_batch_independence():
    spec = {"name": "FGM", "attack": "fgm", "eps": 0.05, "norm": 2, "eps_scale": "mean_l2_norm", "clip": None}
    r = generalization_gaps(linear, TRAIN, TEST, attack=spec)
    eps = 0.05 * np.mean(np.linalg.norm(TRAIN[0].reshape(12, -1).astype(np.float64), axis=1))
    assert r.eps == pytest.approx(eps, rel=1e-6)  # Farnia's relative ε, resolved on the training set
    flat = TEST[0].reshape(9, -1).astype(np.float64)
    z = flat @ W + B
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = (p - np.eye(3)[TEST[1]]) @ W.T
    x_adv = flat + eps * g / np.linalg.norm(g, axis=1, keepdims=True)
    np.testing.assert_allclose(r.test_adv_loss, hand_ce(x_adv.reshape(TEST[0].shape), TEST[1])[0], rtol=1e-4)
    x2 = TEST[0].copy()
    x2[0] = 0.0
    r2 = generalization_gaps(linear, TRAIN, (x2, TEST[1]), attack=spec)
    np.testing.assert_array_equal(r2.test_adv_loss[1:], r.test_adv_loss[1:])
    np.testing.assert_array_equal(r2.train_loss, r.train_loss)
    assert r2.test_loss[0] != r.test_loss[0]
    with pytest.raises(ValueError, match="attack mapping"):
        generalization_gaps(linear, TRAIN, TEST, attack={"kind": "fgm"})
