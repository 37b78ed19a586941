"""robustjax.analysis.attacked: the attack forms the Wen/Farnia diagnostics accept resolve to one
run per strength, and the chunked clean/attacked logits equal a hand-computed FGSM on a linear
model and do not depend on the chunk size."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.analysis.attacked import AttackRun, logits_over_data, resolve_attack
from robustjax.evaluation import AttackSpec

rng = np.random.default_rng(0)
D, K, N = 6, 3, 10
W = rng.normal(size=(D, K)).astype(np.float32)
X = rng.uniform(0.2, 0.8, size=(N, D)).astype(np.float32)
Y = rng.integers(0, K, size=N).astype(np.int32)


def linear(x):
    return x @ jnp.asarray(W)


def test_a_spec_and_its_mapping_give_one_run_per_strength():
    spec = AttackSpec("FGSM", "fgsm", eps=(0.1, "1/10", 0.2), norm=np.inf)
    runs = resolve_attack(spec)
    assert all(isinstance(r, AttackRun) for r in runs)
    assert [r.eps for r in runs] == pytest.approx([0.1, 0.1, 0.2])
    assert runs[0].label.startswith("FGSM") and not runs[0].random
    same = resolve_attack({"name": "FGSM", "attack": "fgsm", "eps": (0.1, "1/10", 0.2), "norm": np.inf})
    assert [r.label for r in same] == [r.label for r in runs]


def test_eps_relative_to_the_mean_norm_needs_the_data():
    spec = AttackSpec("FGM", "fgm", eps=(0.05,), norm=2, eps_scale="mean_l2_norm")
    with pytest.raises(ValueError, match="relative to E‖x‖₂"):
        resolve_attack(spec)
    (run,) = resolve_attack(spec, images=X)
    assert run.eps == pytest.approx(0.05 * np.mean(np.linalg.norm(X, axis=1)), rel=1e-6)


def test_a_callable_is_one_random_run_and_bad_forms_fail_loudly():
    def shift(logits_fn, x, y, key):
        return x + 0.01

    (run,) = resolve_attack(shift)
    assert run.label == "shift" and run.eps is None and run.random
    with pytest.raises(ValueError, match="attack must be an AttackSpec"):
        resolve_attack(0.3)
    with pytest.raises(ValueError, match="mapping must hold AttackSpec fields"):
        resolve_attack({"name": "x", "kind": "fgsm"})


def test_logits_over_data_is_fgsm_by_hand_on_a_linear_model():
    # FGSM on softmax cross-entropy of logits x W: δ = ε·sign((softmax(xW) − onehot(y)) Wᵀ),
    # then clipped to [0, 1]
    eps = 0.1
    runs = resolve_attack(AttackSpec("FGSM", "fgsm", eps=(eps,), norm=np.inf))
    clean, (adv,) = logits_over_data(linear, X, Y, runs, key=jax.random.key(0), batch_size=4)
    z = X.astype(np.float64) @ W
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(K)[Y]) @ W.T
    x_adv = np.clip(X + eps * np.sign(grad), 0.0, 1.0)
    np.testing.assert_allclose(clean, z, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(adv, x_adv @ W, rtol=1e-5, atol=1e-5)


def test_random_attacks_draw_per_example_whatever_the_chunk_size():
    runs = resolve_attack(AttackSpec("noise", "uniform", eps=(0.05,), norm=np.inf))
    assert runs[0].random
    _, (a,) = logits_over_data(linear, X, Y, runs, key=jax.random.key(3), batch_size=3)
    _, (b,) = logits_over_data(linear, X, Y, runs, key=jax.random.key(3), batch_size=7)
    _, (c,) = logits_over_data(linear, X, Y, runs, key=jax.random.key(4), batch_size=3)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert not np.allclose(a, c)
    with pytest.raises(ValueError, match="batch_size"):
        logits_over_data(linear, X, Y, runs, key=jax.random.key(0), batch_size=0)
