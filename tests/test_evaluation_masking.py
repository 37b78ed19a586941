"""Gradient-masking checks: fire on constructed pathological models, stay silent on a normally
trained small model; comparison checks on hand-built reports; the transfer check
(robustjax.evaluation.transfer)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import evaluation as E
from robustjax.evaluation import AttackSpec
from robustjax.evaluation import AttackResult, RobustnessReport


def _mixture(seed, n, d=8, k=3, sep=1.6):
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(123).normal(size=(k, d)) * sep
    y = rng.integers(0, k, n).astype(np.int32)
    x = (means[y] + rng.normal(size=(n, d))).astype(np.float32)
    return x, y


@pytest.fixture(scope="module")
def trained():
    """A small MLP trained with plain SGD on a 3-class Gaussian mixture (a normal model)."""
    x, y = _mixture(0, 600)
    rng = np.random.default_rng(1)
    params = {
        "w1": jnp.asarray(rng.normal(size=(8, 32)) / math.sqrt(8), jnp.float32),
        "b1": jnp.zeros(32),
        "w2": jnp.asarray(rng.normal(size=(32, 3)) / math.sqrt(32), jnp.float32),
        "b2": jnp.zeros(3),
    }

    def apply(p, xx):
        return jax.nn.relu(xx @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    @jax.jit
    def step(p):
        def loss(p):
            return jnp.mean(-jax.nn.log_softmax(apply(p, x))[jnp.arange(len(y)), y])

        g = jax.grad(loss)(p)
        return jax.tree.map(lambda a, b: a - 0.2 * b, p, g)

    for _ in range(300):
        params = step(params)
    f = lambda xx: apply(params, xx)  # noqa: E731
    return f, _mixture(2, 150)


EPS = (0.1, 0.3, 0.6)
NORMAL_SUITE = [
    AttackSpec("FGSM", "fgsm", eps=EPS, clip=None),
    AttackSpec("PGD-5", "pgd", eps=EPS, norm=math.inf, clip=None,
               params={"steps": 5, "step_size_factor": 0.5}),
    AttackSpec("PGD-20", "pgd", eps=EPS, norm=math.inf, clip=None,
               params={"steps": 20, "step_size_factor": 2.5 / 20}),
    AttackSpec("Uniform", "uniform", eps=EPS, norm=math.inf, clip=None),
]
SMALL_SUITE = [NORMAL_SUITE[0].replace(eps=(0.3,)), NORMAL_SUITE[1].replace(eps=(0.3,)),
               NORMAL_SUITE[3].replace(eps=(0.3,))]


def _names(report):
    return {w.name for w in report.warnings}


def test_silent_on_a_normally_trained_model(trained):
    f, data = trained
    rep = E.evaluate(f, data, suite=NORMAL_SUITE, batch_size=64, key=0, progress=False)
    assert 0.8 < rep.clean_accuracy < 1.0
    assert rep.robust_accuracy(E.evaluator.threat_label(math.inf, 0.6)) < rep.clean_accuracy
    assert rep.warnings == [], [str(w) for w in rep.warnings]


def test_scaled_logits_fire_zero_gradients_and_saturated_softmax(trained):
    f, data = trained
    rep = E.evaluate(lambda x: 1e6 * f(x), data, suite=SMALL_SUITE, batch_size=64, key=0,
                     progress=False)
    names = _names(rep)
    assert {"zero_gradients", "saturated_softmax"} <= names, names
    # Same decision function: same clean accuracy, but the attacks look far weaker.
    assert rep.clean_accuracy > 0.8
    w = next(w for w in rep.warnings if w.name == "saturated_softmax")
    assert "SOAR" in w.explanation and "100.00%" in w.message


def test_stop_gradient_fires_zero_gradients(trained):
    f, data = trained
    rep = E.evaluate(lambda x: f(jax.lax.stop_gradient(x)), data, suite=SMALL_SUITE,
                     batch_size=64, key=0, progress=False)
    assert "zero_gradients" in _names(rep)
    assert np.all(rep.grad_norm == 0)
    # With no gradient, FGSM cannot move: the attack accuracy equals the clean accuracy.
    assert rep.accuracy("FGSM") == pytest.approx(rep.clean_accuracy)


def test_randomized_model_fires_nondeterministic_logits(trained):
    f, data = trained
    calls = {"n": 0}

    def randomized(x):  # fresh noise at every (eager) call: a randomized "defence"
        calls["n"] += 1
        noise = jax.random.normal(jax.random.key(calls["n"]), x.shape) * 0.3
        return f(x + noise)

    rep = E.evaluate(randomized, data, suite=SMALL_SUITE[:1], batch_size=64, key=0,
                     progress=False)
    assert "nondeterministic_logits" in _names(rep)
    assert rep.meta["determinism"]["eager_rel_diff"] > 1e-3


def _fake_report(results_spec, n=100):
    """A report whose attack accuracies are set by hand: ``(name, kind, eps, steps, acc)``."""
    labels = np.zeros(n, np.int32)
    results, specs = [], {}
    for name, kind, eps, steps, acc in results_spec:
        success = np.arange(n) >= int(round(acc * n))
        norm = math.inf
        threat = E.evaluator.threat_label(norm, eps)
        params = {"steps": steps} if steps else {}
        results.append(AttackResult(
            attack=name, kind=kind, threat=threat, norm=norm, eps=eps, eps_label=str(eps),
            strength_name="eps", params=params, success=success,
            evaluated=np.ones(n, bool), pred=np.where(success, 1, 0).astype(np.int32),
            margin=np.zeros(n, np.float32), norm_l2=np.full(n, eps, np.float32),
            norm_linf=np.full(n, eps, np.float32), finite=np.ones(n, bool)))
        specs[name] = None
    return RobustnessReport(
        suite="fake", specs=(), labels=labels, clean_pred=labels.copy(),
        clean_margin=np.ones(n, np.float32), max_prob=np.full(n, 0.8, np.float32),
        grad_norm=np.ones(n, np.float32), clean_finite=np.ones(n, bool), results=results,
        meta={"determinism": {"eager_rel_diff": 0.0, "jit_rel_diff": 0.0}})


def test_comparison_checks_on_hand_built_reports():
    ok = _fake_report([
        ("FGSM", "fgsm", 0.1, None, 0.6), ("FGSM", "fgsm", 0.2, None, 0.4),
        ("PGD-5", "pgd", 0.1, 5, 0.5), ("PGD-20", "pgd", 0.1, 20, 0.45),
        ("Uniform", "uniform", 0.1, None, 0.95),
    ])
    assert E.check_report(ok) == []
    bad = _fake_report([
        ("FGSM", "fgsm", 0.1, None, 0.5), ("FGSM", "fgsm", 0.2, None, 0.7),  # rises with ε
        ("PGD-5", "pgd", 0.1, 5, 0.6),  # PGD above FGSM
        ("PGD-20", "pgd", 0.1, 20, 0.8),  # more steps, higher accuracy
        ("Uniform", "uniform", 0.1, None, 0.3),  # noise beats the attacks
    ])
    names = [w.name for w in E.check_report(bad)]
    for expected in ("accuracy_increases_with_eps", "iterative_weaker_than_single_step",
                     "accuracy_increases_with_steps", "noise_stronger_than_attack"):
        assert expected in names, names
    for w in E.check_report(bad):
        assert w.explanation == E.EXPLANATIONS[w.name] and w.message
    # Differences within the tolerance are sampling noise, not masking.
    near = _fake_report([("FGSM", "fgsm", 0.1, None, 0.50), ("PGD-5", "pgd", 0.1, 5, 0.505)],
                        n=1000)
    assert E.check_report(near, tolerance=0.01) == []


def test_transfer_matrix_flags_the_masked_model(trained):
    f, (x, y) = trained
    masked = lambda xx: 1e6 * f(xx)  # noqa: E731  same decision function, masked gradients
    attack = AttackSpec("PGD-5", "pgd", eps=(1.0,), norm=math.inf, clip=None,
                        params={"steps": 5, "step_size_factor": 0.5})
    m = E.transfer_matrix({"normal": f, "masked": masked}, (x, y), attack, key=0, batch_size=64,
                          progress=False)
    t_norm, t_mask = m.targets.index("normal"), m.targets.index("masked")
    s_norm = m.sources.index("normal")
    # Examples crafted on the normal model fool the masked one exactly as often (same argmax).
    assert m.accuracy[t_mask, s_norm] == pytest.approx(m.white_box[t_norm])
    assert m.white_box[t_mask] > m.accuracy[t_mask, s_norm] + 0.1
    flagged = [w for w in m.warnings if w.name == "transfer_stronger_than_whitebox"]
    assert len(flagged) == 1 and flagged[0].message.startswith("masked")
    # Independent recount of one entry: target "normal" on examples from "normal".
    from robustjax import attacks as A

    x_adv = np.concatenate([
        np.asarray(A.pgd(f, jnp.asarray(x[i : i + 1]), jnp.asarray(y[i : i + 1]), eps=1.0,
                         norm=math.inf, step_size=0.5, steps=5, clip=None,
                         key=jax.random.fold_in(E.programs.run_key(
                             jax.random.key(0), "transfer:normal", "1"), i)))
        for i in range(len(x))])
    clean_ok = np.argmax(np.asarray(f(jnp.asarray(x))), 1) == y
    adv_ok = np.argmax(np.asarray(f(jnp.asarray(x_adv))), 1) == y
    assert m.white_box[t_norm] == pytest.approx(np.mean(clean_ok & adv_ok))
    assert "masked" in m.table() and m.to_dict()["transfer_acc"]["masked"]["normal"]
