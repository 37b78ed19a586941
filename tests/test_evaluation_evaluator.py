"""evaluate(): exact numbers on affine models (closed-form distance to the boundary), chunk-size
invariance, the worst-case invariants and bad input; accuracy_vs_eps (robustjax.evaluation.curves)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import evaluation as E
from robustjax.evaluation import AttackSpec


# ---------------------------------------------------------------------------------------------
# Affine models: the ℓ2 robust radius is known in closed form.
# ---------------------------------------------------------------------------------------------


def _affine(w, b):
    w, b = jnp.asarray(w), jnp.asarray(b)
    return lambda x: x.reshape(x.shape[0], -1) @ w + b


def _radius(x, y, w, b):
    """Exact ℓ2 distance from x to the complement of class y's polytope, for correctly
    classified points: min_{k≠y} (z_y − z_k)/‖w_y − w_k‖ (a convex polytope's interior point
    is nearest its closest facet hyperplane). Computed in float64 with NumPy."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    w, b = np.asarray(w, np.float64), np.asarray(b, np.float64)
    z = x @ w + b
    r = np.full(len(x), np.inf)
    for k in range(w.shape[1]):
        diff = z[np.arange(len(x)), y] - z[:, k]
        dw = np.linalg.norm(w[:, y].T - w[:, k][None], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            dk = np.where(k == y, np.inf, diff / dw)
        r = np.minimum(r, dk)
    correct = np.argmax(z, axis=1) == y
    return r, correct


def _gap_eps(values, count, rel_gap=2e-3):
    """ε strictly between consecutive sorted values, only where the gap is wide: no ties."""
    v = np.sort(values[np.isfinite(values) & (values > 0)])
    mids = [(a + c) / 2 for a, c in zip(v, v[1:]) if c - a > rel_gap * max(c, 1e-3)]
    idx = np.linspace(0, len(mids) - 1, count).round().astype(int)
    return [float(mids[i]) for i in sorted(set(idx))]


def _affine_data(seed, n, d, k):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(d, k)).astype(np.float32)
    b = rng.normal(size=k).astype(np.float32) * 0.3
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = np.argmax(x @ w + b, axis=1).astype(np.int32)
    flip = rng.random(n) < 0.15  # some clean errors
    y = np.where(flip, (y + 1) % k, y).astype(np.int32)
    return w, b, x, y


def test_binary_affine_exact_l2_fgm_pgd_deepfool():
    w, b, x, y = _affine_data(0, 60, 6, 2)
    r, correct = _radius(x, y, w, b)
    eps = _gap_eps(r[correct], 6)
    f = _affine(w, b)
    suite = [
        AttackSpec("FGM", "fgm", eps=eps, norm=2, clip=None),
        AttackSpec("PGD", "pgd", eps=eps, norm=2, clip=None,
                   params={"steps": 4, "step_size_factor": 0.5, "random_start": False}),
        AttackSpec("DeepFool", "deepfool", eps=eps, clip=None, params={"overshoot": 1e-4}),
    ]
    rep = E.evaluate(f, (x, y), suite=suite, batch_size=16, key=0, progress=False)
    assert rep.clean_accuracy == pytest.approx(np.mean(correct))
    for e in eps:
        expected = correct & (r > e)
        for name in ("FGM", "PGD", "DeepFool"):
            got = rep.result(name, e).robust_mask(rep.clean_correct)
            np.testing.assert_array_equal(got, expected, err_msg=f"{name} eps={e}")
        threat = E.evaluator.threat_label(2.0, e)
        np.testing.assert_array_equal(rep.robust_mask(threat), expected)
        assert rep.robust_accuracy(threat) == pytest.approx(np.mean(expected))
    # FGM moves exactly ε along the boundary normal: the margin drops by ε·‖w1 − w0‖.
    v = np.linalg.norm(w[:, 1] - w[:, 0])
    fgm = rep.result("FGM", eps[0])
    np.testing.assert_allclose(fgm.margin, rep.clean_margin - eps[0] * v, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fgm.norm_l2, eps[0], rtol=1e-5)


def test_multiclass_affine_exact_deepfool_and_worst_case():
    w, b, x, y = _affine_data(1, 50, 5, 4)
    r, correct = _radius(x, y, w, b)
    eps = _gap_eps(r[correct], 5)
    f = _affine(w, b)
    suite = [
        AttackSpec("FGM", "fgm", eps=eps, norm=2, clip=None),
        AttackSpec("DeepFool", "deepfool", eps=eps, clip=None, params={"overshoot": 1e-4}),
    ]
    rep = E.evaluate(f, (x, y), suite=suite, batch_size=50, key=0, progress=False)
    for e in eps:
        expected = correct & (r > e)
        df = rep.result("DeepFool", e).robust_mask(rep.clean_correct)
        np.testing.assert_array_equal(df, expected)
        # No attack can beat the exact radius, and DeepFool attains it: the worst case is exact.
        np.testing.assert_array_equal(rep.robust_mask(E.evaluator.threat_label(2.0, e)), expected)
    # DeepFool's perturbation is (1 + overshoot)·radius for correctly classified points.
    dfr = rep.result("DeepFool", eps[0])
    np.testing.assert_allclose(dfr.norm_l2[correct], (1 + 1e-4) * r[correct], rtol=2e-4)
    rho = np.mean(dfr.norm_l2 / np.linalg.norm(x, axis=1))
    assert dfr.extras["rho"] == pytest.approx(rho, rel=1e-4)


def test_deepfool_rho_in_a_paper_space_fooled_fraction_and_wens_conditional_accuracy():
    """``rho_space``: DeepFool's ρ in the paper's input space, ‖T(x+r) − T(x)‖/‖T(x)‖ by hand;
    ``fooled``: DeepFool changed the prediction (all points, unclipped affine model); Wen et
    al.'s conditional accuracy = robust points / clean-correct points."""
    w, b, x, y = _affine_data(1, 50, 5, 4)
    r, correct = _radius(x, y, w, b)
    f = _affine(w, b)
    m, s = 0.2, 0.5
    t = lambda z: (z - m) / s  # noqa: E731
    suite = [AttackSpec("FGM", "fgm", eps=(0.3,), norm=2, clip=None),
             AttackSpec("DeepFool", "deepfool", clip=None, params={"overshoot": 1e-4})]
    rep = E.evaluate(f, (x, y), suite=suite, batch_size=16, key=0, progress=False, rho_space=t)
    dfr = rep.result("DeepFool")
    norm_t = np.linalg.norm((np.asarray(x, np.float64) - m) / s, axis=1)
    ref = np.mean(dfr.norm_l2 / s / norm_t)  # T is affine: ‖T(x+r) − T(x)‖ = ‖r‖/s
    assert dfr.extras["rho_space"] == pytest.approx(ref, rel=1e-4)
    assert dfr.extras["fooled"] == 1.0
    fgm = rep.rows()[0]
    robust = rep.result("FGM", 0.3).robust_mask(rep.clean_correct)
    assert fgm["conditional_accuracy"] == pytest.approx(robust.sum() / correct.sum())
    assert fgm["conditional_accuracy"] == pytest.approx(1 - fgm["success_rate"])
    assert fgm["accuracy"] < fgm["conditional_accuracy"]
    assert "rho[custom]=" in rep.table() and "fooled 100.00%" in rep.table()
    with pytest.raises(ValueError, match="rho_space"):
        E.evaluate(f, (x, y), suite=suite, key=0, progress=False, rho_space="per_image")


def test_accuracy_vs_eps_matches_closed_form():
    w, b, x, y = _affine_data(2, 40, 4, 2)
    r, correct = _radius(x, y, w, b)
    eps = [0.0] + _gap_eps(r[correct], 5)
    curve = E.accuracy_vs_eps(_affine(w, b), (x, y), eps=eps, key=0, attack="fgm", norm=2,
                              clip=None, batch_size=16, progress=False)
    expected = [np.mean(correct & (r > e)) for e in eps]
    np.testing.assert_allclose(curve.accuracy, expected)
    assert curve.accuracy[0] == pytest.approx(np.mean(correct))  # ε = 0 is the clean accuracy
    assert np.all(np.diff(curve.accuracy) <= 0)


# ---------------------------------------------------------------------------------------------
# Chunk-size invariance over every attack kind, skip_broken, invariants.
# ---------------------------------------------------------------------------------------------


def _mlp(seed, d_in, k=3, h=16):
    rng = np.random.default_rng(seed)
    w1 = jnp.asarray(rng.normal(size=(d_in, h)) / math.sqrt(d_in), jnp.float32)
    w2 = jnp.asarray(rng.normal(size=(h, k)) * 2.0 / math.sqrt(h), jnp.float32)
    return lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ w1) @ w2


def _images(seed, n, k=3):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, k, n).astype(np.int32)
    return x, y


ALL_KINDS_SUITE = [
    AttackSpec("FGSM", "fgsm", eps=(0.05, 0.2)),
    AttackSpec("PGD", "pgd", eps=(0.05, 0.2), norm=math.inf,
               params={"steps": 3, "step_size_factor": 0.5, "random_start": True}),
    AttackSpec("L2-PGD", "pgd", eps=(0.5,), norm=2,
               params={"steps": 3, "step_size_factor": 0.5}),
    AttackSpec("Uniform", "uniform", eps=(0.05, 0.2), norm=math.inf),
    AttackSpec("Gaussian", "gaussian", eps=(0.2,)),
    AttackSpec("LRC", "lrc", eps=(0.3,), params={"decay_length": 2.0, "worst_of_n": 3}),
    AttackSpec("Spatial", "spatial", eps=("medium",), params={"mode": "random", "n": 2}),
    AttackSpec("WRM", "wrm", eps=(2.0,), params={"steps": 3}),
    AttackSpec("DeepFool", "deepfool", eps=(0.5,), clip=None),
]


# The random attacks (PGD random start, uniform noise, worst-of-n LRC) and two deterministic
# ones; every other kind runs in the slow test below.
FAST_SUITE = [s for s in ALL_KINDS_SUITE if s.name in ("FGSM", "PGD", "Uniform", "LRC",
                                                       "DeepFool")]


def test_chunked_equals_single_pass():
    _check_chunk_invariance(FAST_SUITE)


@pytest.mark.slow
def test_chunked_equals_single_pass_for_every_attack_kind():
    _check_chunk_invariance(ALL_KINDS_SUITE)


def _check_chunk_invariance(suite):
    x, y = _images(0, 23)
    f = _mlp(0, 36)
    key = jax.random.key(7)
    a = E.evaluate(f, (x, y), suite=suite, batch_size=5, key=key, progress=False)
    b = E.evaluate(f, (x, y), suite=suite, batch_size=32, key=key, progress=False)
    pa, pb = a.per_example(), b.per_example()
    assert pa.keys() == pb.keys()
    for k in pa:
        if pa[k].dtype.kind in "biu":
            np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
        else:
            np.testing.assert_allclose(pa[k], pb[k], rtol=1e-5, atol=1e-6, err_msg=k)
    # The random attacks really are random per example (not one draw broadcast to the batch).
    u = a.result("Uniform", 0.2)
    assert len(np.unique(np.round(u.norm_l2, 5))) > 10
    # Every kind ran on every example and stayed in budget.
    for r in a.results:
        assert r.evaluated.all(), r.attack
    assert not [w for w in a.warnings if w.name == "attack_exceeds_budget"]
    # A different key changes the random attacks' draws.
    c = E.evaluate(f, (x, y), suite=[ALL_KINDS_SUITE[3]], batch_size=32, key=8, progress=False)
    assert not np.allclose(c.result("Uniform", 0.2).norm_l2, u.norm_l2)


def test_invariants_and_skip_broken_agree_with_full_evaluation():
    x, y = _images(1, 40)
    f = _mlp(1, 36)
    suite = [s for s in ALL_KINDS_SUITE if s.name in ("FGSM", "PGD", "Uniform")]
    full = E.evaluate(f, (x, y), suite=suite, batch_size=16, key=3, progress=False)
    skip = E.evaluate(f, (x, y), suite=suite, batch_size=16, key=3, progress=False,
                      skip_broken=True)
    clean = full.clean_accuracy
    for threat, members in full.threat_models().items():
        rob = full.robust_accuracy(threat)
        assert rob <= clean
        for r in members:
            assert rob <= full.accuracy(r.attack, r.eps_label) <= clean
        # Skipping broken points changes the work done, not the worst case.
        np.testing.assert_array_equal(skip.robust_mask(threat), full.robust_mask(threat))
    assert sum(int(r.evaluated.sum()) for r in skip.results) < sum(
        int(r.evaluated.sum()) for r in full.results)
    # Corrupt the report: an attack that "did not run" on a point nobody broke makes the worst
    # case exceed that attack's accuracy, which check_invariants must catch.
    threat = next(iter(full.threat_models()))
    robust_idx = np.flatnonzero(full.robust_mask(threat))
    assert robust_idx.size
    full.threat_models()[threat][0].evaluated[robust_idx[0]] = False
    with pytest.raises(AssertionError, match="exceeds"):
        E.check_invariants(full)


def test_relative_eps_resolves_against_the_data_mean_norm():
    x, y = _images(2, 12)
    suite = [AttackSpec("FGM", "fgm", eps=(0.05,), norm=2, eps_scale="mean_l2_norm")]
    rep = E.evaluate(_mlp(2, 36), (x, y), suite=suite, batch_size=8, key=0, progress=False)
    mean_norm = np.mean(np.linalg.norm(x.reshape(12, -1).astype(np.float64), axis=1))
    r = rep.result("FGM")
    assert r.eps == pytest.approx(0.05 * mean_norm, rel=1e-9)
    assert r.eps_label == "0.05*E|x|2"
    assert np.all(r.norm_l2 <= r.eps * (1 + 1e-5))


def test_dataset_object_and_mapping_inputs():
    x, y = _images(3, 9)

    class DS:
        images, labels = x, y

    f = _mlp(3, 36)
    s = [AttackSpec("FGSM", "fgsm", eps=(0.1,))]
    a = E.evaluate(f, DS(), suite=s, batch_size=4, key=0, progress=False)
    b = E.evaluate(f, {"images": x, "labels": y}, suite=s, batch_size=4, key=0, progress=False)
    np.testing.assert_array_equal(a.result("FGSM").success, b.result("FGSM").success)
    # Attacking the predicted labels (SGR §7.2) changes nothing on clean-correct points.
    c = E.evaluate(f, (x, y), suite=s, batch_size=4, key=0, progress=False,
                   attack_labels="predicted")
    cc = a.clean_correct
    np.testing.assert_array_equal(c.result("FGSM").success[cc], a.result("FGSM").success[cc])
    assert c.accuracy("FGSM") == a.accuracy("FGSM")


# ---------------------------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------------------------


def test_bad_input_raises_value_error_naming_the_problem():
    x, y = _images(4, 6)
    f = _mlp(4, 36)
    ok = [AttackSpec("FGSM", "fgsm", eps=(0.1,))]
    with pytest.raises(ValueError, match="unknown suite 'nope'.*mnist-quick"):
        E.evaluate(f, (x, y), suite="nope", batch_size=4, key=0)
    with pytest.raises(ValueError, match="unknown attack 'cw'"):
        E.evaluate(f, (x, y), suite=[{"name": "x", "attack": "cw", "eps": [0.1]}],
                   batch_size=4, key=0)
    with pytest.raises(ValueError, match="empty"):
        E.evaluate(f, (x[:0], y[:0]), suite=ok, batch_size=4, key=0)
    with pytest.raises(ValueError, match="suite is empty"):
        E.evaluate(f, (x, y), suite=[], batch_size=4, key=0)
    with pytest.raises(ValueError, match="batch_size"):
        E.evaluate(f, (x, y), suite=ok, batch_size=0, key=0)
    with pytest.raises(ValueError, match="same length"):
        E.evaluate(f, (x, y[:3]), suite=ok, batch_size=4, key=0)
    with pytest.raises(ValueError, match="floating point"):
        E.evaluate(f, ((x * 255).astype(np.uint8), y), suite=ok, batch_size=4, key=0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        E.evaluate(f, (x, y + 5), suite=ok, batch_size=4, key=0)
    with pytest.raises(ValueError, match="NaN"):
        E.evaluate(f, (np.full_like(x, np.nan), y), suite=ok, batch_size=4, key=0)
    with pytest.raises(ValueError, match="key"):
        E.evaluate(f, (x, y), suite=ok, batch_size=4, key=None)
    with pytest.raises(ValueError, match="unique"):
        E.evaluate(f, (x, y), suite=ok + ok, batch_size=4, key=0)
    with pytest.raises(ValueError, match="unknown parameter"):
        E.evaluate(f, (x, y), suite=[AttackSpec("P", "pgd", eps=(0.1,), norm=2,
                                                params={"stepz": 3, "step_size": 0.1})],
                   batch_size=4, key=0)
    with pytest.raises(ValueError, match="needs norm"):
        AttackSpec("P", "pgd", eps=(0.1,))
    with pytest.raises(ValueError, match="eps"):
        AttackSpec("F", "fgsm", eps=(-0.1,))
    rep = E.evaluate(f, (x, y), suite=ok, batch_size=4, key=0, progress=False)
    with pytest.raises(ValueError, match="unknown attack 'PGD'"):
        rep.accuracy("PGD")
    with pytest.raises(ValueError, match="unknown threat model"):
        rep.robust_accuracy("L7 eps=1")
