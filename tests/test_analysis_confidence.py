"""robustjax.analysis.confidence on a linear model against a hand computation (SOAR 2020, Table 5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.analysis import ConfidenceResult, confidence_at_points

EPS = 0.1


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(0)
    w, b = 4.0 * rng.normal(size=(6, 3)), rng.normal(size=3)
    x = rng.uniform(0.2, 0.8, size=(5, 3, 2))
    y = np.array([0, 1, 2, 1, 0], np.int32)
    return w, b, (lambda z: z.reshape(z.shape[0], -1) @ w + b), x, y


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _hand(w, b, x, y, key):
    """Clean, uniform-ℓ∞-ball and one-signed-gradient-step points, written out for a linear model."""
    xf = x.reshape(len(x), -1)
    with jax.enable_x64(True):
        eta = EPS * np.asarray(jax.random.uniform(key, x.shape, jnp.float64, -1.0, 1.0)).reshape(len(x), -1)
    p_rand = _softmax((xf + eta) @ w + b)
    grad = (p_rand - np.eye(3)[y]) @ w.T  # ∇ₓ CE of a linear model: W (softmax − onehot)
    x_pgd1 = xf + np.clip(eta + EPS * np.sign(grad), -EPS, EPS)
    probs = [_softmax(xf @ w + b), p_rand, _softmax(x_pgd1 @ w + b)]
    return np.stack([p.max(axis=1) for p in probs], axis=1), np.stack([p.argmax(axis=1) == y for p in probs], axis=1)


def _run(f, x, y, **kw):
    with jax.enable_x64(True):
        return confidence_at_points(f, jnp.asarray(x), None if y is None else jnp.asarray(y), eps=EPS,
                                    key=jax.random.key(7), clip=None, **kw)


def test_matches_hand_computation(linear):
    w, b, f, x, y = linear
    r = _run(f, x, y)
    assert isinstance(r, ConfidenceResult) and r.points == ("clean", "random", "pgd1") and r.norm == "inf"
    maxprob, correct = _hand(w, b, x, y, jax.random.key(7))
    np.testing.assert_allclose(r.max_probability, maxprob, rtol=1e-10)
    np.testing.assert_array_equal(r.correct, correct)
    s = r.summary()
    assert s["mean_max_probability"]["pgd1"] == pytest.approx(maxprob[:, 2].mean())
    assert s["accuracy"]["clean"] == pytest.approx(correct[:, 0].mean())


def test_predicted_labels_and_independence(linear):
    w, b, f, x, y = linear
    r = _run(f, x, None)
    pred = np.argmax(x.reshape(5, -1) @ w + b, axis=1)
    maxprob, _ = _hand(w, b, x, pred, jax.random.key(7))
    np.testing.assert_allclose(r.max_probability, maxprob, rtol=1e-10)
    assert r.correct is None and "accuracy" not in r.summary()
    x2 = x.copy()
    x2[4] = 1.0 - x2[4]
    r2 = _run(f, x2, None)
    np.testing.assert_allclose(r2.max_probability[:4], r.max_probability[:4], rtol=1e-12)


def test_subset_of_points_and_bad_arguments(linear):
    _, _, f, x, y = linear
    r = _run(f, x, y, points=("clean",))
    assert r.max_probability.shape == (5, 1) and r.correct.shape == (5, 1)
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y)
    with pytest.raises(ValueError, match="eps must be > 0"):
        confidence_at_points(f, xj, yj, eps=0.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="key must be a PRNG key"):
        confidence_at_points(f, xj, yj, eps=EPS)
    with pytest.raises(ValueError, match="points must be one of"):
        confidence_at_points(f, xj, yj, eps=EPS, key=jax.random.key(0), points=("pgd7",))
    with pytest.raises(ValueError, match="points must not repeat"):
        confidence_at_points(f, xj, yj, eps=EPS, points=("clean", "clean"))
    with pytest.raises(ValueError, match=r"y must be in \[0, 3\)"):
        confidence_at_points(f, xj, yj + 3, eps=EPS, key=jax.random.key(0))
    with pytest.raises(ValueError, match="norm must be one of"):
        confidence_at_points(f, xj, yj, eps=EPS, key=jax.random.key(0), norm=1)
    with pytest.raises(ValueError, match="step_size must be > 0"):
        confidence_at_points(f, xj, yj, eps=EPS, key=jax.random.key(0), step_size=-1.0)
