"""robustjax.analysis.linearity against closed forms (linear model) and an analytic Jacobian with
numpy.linalg.svd (tanh MLP): Roth 2019 Fig. 2."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.analysis import (
    LinearityResult,
    SigmaPathResult,
    concatenate_results,
    local_linearity,
    sigma_along_path,
)

SHAPE = (3, 2, 2)  # D = 12
D, H, K = 12, 7, 5
RADII = [0.0, 0.1, 0.5, 1.0, 2.0]


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(D, H)) / np.sqrt(D), rng.normal(size=(H, K)) / np.sqrt(H)
    w, b = rng.normal(size=(D, K)), rng.normal(size=K)
    # NumPy constants: float64 under jax.enable_x64
    return {
        "w1": w1, "w2": w2, "w": w,
        "mlp": lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ w1) @ w2,
        "hidden": lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ w1).reshape(x.shape[0], H, 1),
        "linear": lambda x: x.reshape(x.shape[0], -1) @ w + b,
        "x": rng.uniform(size=(4,) + SHAPE),
        "d": rng.normal(size=(4,) + SHAPE),
    }


def _np_mlp(m, xi):
    return np.tanh(xi.reshape(-1) @ m["w1"]) @ m["w2"]


def _np_jac(m, xi):
    pre = xi.reshape(-1) @ m["w1"]
    return m["w2"].T @ np.diag(1.0 - np.tanh(pre) ** 2) @ m["w1"].T


def _run(fn, m, x=None, d=None, **kw):
    x = m["x"] if x is None else x
    d = m["d"] if d is None else d
    with jax.enable_x64(True):
        if kw.pop("sigma", False):
            return sigma_along_path(fn, jnp.asarray(x), jnp.asarray(d), RADII, iters=60, key=jax.random.key(0))
        return local_linearity(fn, jnp.asarray(x), jnp.asarray(d), RADII)


def test_linear_model_is_exactly_linear_with_constant_sigma(models):
    r = _run(models["linear"], models)
    assert isinstance(r, LinearityResult) and r.deviation.shape == (4, len(RADII))
    assert np.max(r.deviation) < 1e-12 and np.max(r.relative_deviation) < 1e-12
    d = models["d"].reshape(4, -1)
    slope = np.linalg.norm((d / np.linalg.norm(d, axis=1, keepdims=True)) @ models["w"], axis=1)
    np.testing.assert_allclose(r.linear_change, slope, rtol=1e-12)
    np.testing.assert_allclose(r.change, slope[:, None] * np.asarray(RADII)[None], rtol=1e-12, atol=1e-15)
    s = _run(models["linear"], models, sigma=True)
    assert isinstance(s, SigmaPathResult) and s.iters == 60
    np.testing.assert_allclose(s.sigma, np.linalg.svd(models["w"], compute_uv=False)[0], rtol=1e-9)


def test_mlp_matches_numpy_reference(models):
    m = models
    r = _run(m["mlp"], m)
    s = _run(m["mlp"], m, sigma=True)
    for i in range(4):
        xi, di = m["x"][i], m["d"][i] / np.linalg.norm(m["d"][i])
        jd = _np_jac(m, xi) @ di.reshape(-1)
        for j, t in enumerate(RADII):
            diff = _np_mlp(m, xi + t * di) - _np_mlp(m, xi)
            np.testing.assert_allclose(r.deviation[i, j], np.linalg.norm(diff - t * jd), rtol=1e-8, atol=1e-14)
            np.testing.assert_allclose(r.change[i, j], np.linalg.norm(diff), rtol=1e-10, atol=1e-14)
            top = np.linalg.svd(_np_jac(m, xi + t * di), compute_uv=False)[0]
            np.testing.assert_allclose(s.sigma[i, j], top, rtol=1e-7)
    assert r.relative_deviation[0, 0] == 0.0  # t = 0: 0/0 guarded
    assert np.all(r.deviation[:, -1] > r.deviation[:, 1])  # a tanh net bends with distance


def test_hidden_layer_output_and_zero_direction(models):
    m = models
    d = m["d"].copy()
    d[1] = 0.0
    r = _run(m["hidden"], m, d=d)
    assert np.all(np.isfinite(r.relative_deviation))
    np.testing.assert_array_equal(r.deviation[1], 0.0)
    np.testing.assert_array_equal(r.relative_deviation[1], 0.0)
    s = _run(m["mlp"], m, d=d, sigma=True)
    top = np.linalg.svd(_np_jac(m, m["x"][1]), compute_uv=False)[0]
    np.testing.assert_allclose(s.sigma[1], top, rtol=1e-7)  # the path stays at x


def test_examples_independent_and_json(models):
    m = models
    r = _run(m["mlp"], m)
    s = _run(m["mlp"], m, sigma=True)
    x2, d2 = m["x"].copy(), m["d"].copy()
    x2[3] += 0.2
    d2[3] = np.roll(d2[3], 1)
    r2 = _run(m["mlp"], m, x=x2, d=d2)
    s2 = _run(m["mlp"], m, x=x2, d=d2, sigma=True)
    np.testing.assert_allclose(r2.deviation[:3], r.deviation[:3], rtol=1e-12)
    np.testing.assert_allclose(s2.sigma[:3], s.sigma[:3], rtol=1e-9)
    assert not np.allclose(r2.deviation[3], r.deviation[3])
    joined = concatenate_results([r, r2])
    assert joined.deviation.shape == (8, len(RADII)) and list(joined.radii) == RADII
    import json

    text = json.dumps(joined.to_json(), allow_nan=False)
    assert '"analysis": "LinearityResult"' in text
    assert json.loads(text)["summary"]["deviation"]["mean"][0] == 0.0


def test_bad_arguments(models):
    f, x, d = models["mlp"], jnp.asarray(models["x"], jnp.float32), jnp.asarray(models["d"], jnp.float32)
    with pytest.raises(ValueError, match="radii must be a non-empty"):
        local_linearity(f, x, d, [])
    with pytest.raises(ValueError, match="radii must be >= 0"):
        local_linearity(f, x, d, [0.1, -0.1])
    with pytest.raises(ValueError, match="radii must be finite"):
        local_linearity(f, x, d, [np.nan])
    with pytest.raises(ValueError, match="directions must have the shape of x"):
        local_linearity(f, x, d[:, :1], [0.1])
    with pytest.raises(ValueError, match="fn must be a callable"):
        local_linearity(None, x, d, [0.1])
    with pytest.raises(ValueError, match="fn must return one output per example"):
        local_linearity(lambda z: jnp.sum(z), x, d, [0.1])
    with pytest.raises(ValueError, match="iters must be an integer"):
        sigma_along_path(f, x, d, [0.1], iters=0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="key must be a PRNG key"):
        sigma_along_path(f, x, d, [0.1], iters=3, key=None)
