"""robustjax.analysis.trajectory against the closed-form softmax of a linear model (SGR 2018, Fig. 6)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.analysis import TrajectoryResult, softmax_along_trajectory

TS = [-5.0, -1.0, 0.0, 0.5, 1.0, 5.0]


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(6, 3)), rng.normal(size=3)
    x, delta = rng.uniform(size=(4, 3, 2)), 0.3 * rng.normal(size=(4, 3, 2))
    return w, b, (lambda z: z.reshape(z.shape[0], -1) @ w + b), x, delta


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _run(f, x, delta, ts=TS, **kw):
    with jax.enable_x64(True):
        return softmax_along_trajectory(f, jnp.asarray(x), jnp.asarray(delta), ts, **kw)


def test_closed_form_on_linear_model(linear):
    w, b, f, x, delta = linear
    r = _run(f, x, delta)
    assert isinstance(r, TrajectoryResult) and r.probabilities.shape == (4, len(TS), 3)
    xf, df = x.reshape(4, -1), delta.reshape(4, -1)
    # logits are affine in t: z(t) = (x W + b) + t (δ W)
    expected = np.stack([_softmax(xf @ w + b + t * (df @ w)) for t in TS], axis=1)
    np.testing.assert_allclose(r.probabilities, expected, rtol=1e-12)
    np.testing.assert_array_equal(r.clean_prediction, np.argmax(xf @ w + b, axis=1))
    tv = 0.5 * np.abs(np.diff(expected, axis=1)).sum(axis=(1, 2))  # TS is sorted
    np.testing.assert_allclose(r.total_variation, tv, rtol=1e-12)
    s = r.summary()
    np.testing.assert_allclose(s["mean_probability_of_clean_prediction"][2], expected.max(axis=2)[:, 2].mean())


def test_clip_unsorted_ts_and_independence(linear):
    w, b, f, x, delta = linear
    r = _run(f, x, delta, ts=[1.0, -1.0, 0.0], clip=(0.0, 1.0))
    xf = np.clip(x + delta, 0, 1).reshape(4, -1)
    np.testing.assert_allclose(r.probabilities[:, 0], _softmax(xf @ w + b), rtol=1e-12)
    full = _run(f, x, delta)
    x2, d2 = x.copy(), delta.copy()
    x2[0] += 0.5
    d2[0] *= 3.0
    other = _run(f, x2, d2)
    np.testing.assert_allclose(other.probabilities[1:], full.probabilities[1:], rtol=1e-13)
    assert not np.allclose(other.probabilities[0], full.probabilities[0])


def test_bad_arguments(linear):
    _, _, f, x, delta = linear
    xj, dj = jnp.asarray(x, jnp.float32), jnp.asarray(delta, jnp.float32)
    with pytest.raises(ValueError, match="ts must be a non-empty"):
        softmax_along_trajectory(f, xj, dj, [])
    with pytest.raises(ValueError, match="delta must have the shape of x"):
        softmax_along_trajectory(f, xj, dj[:2], TS)
    with pytest.raises(ValueError, match="clip must"):
        softmax_along_trajectory(f, xj, dj, TS, clip=(1.0, 0.0))
    with pytest.raises(ValueError, match="logits_fn must return logits"):
        softmax_along_trajectory(lambda z: z, xj, dj, TS)
