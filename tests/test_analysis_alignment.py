"""robustjax.analysis.alignment against an analytic Jacobian and numpy.linalg.svd (Roth 2019 Fig. 1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.analysis import AlignmentResult, concatenate_results, perturbation_alignment

SHAPE = (3, 2, 2)  # D = 12
D, H, K = 12, 7, 5


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(D, H)) / np.sqrt(D), rng.normal(size=(H, K)) / np.sqrt(H)


def _model(w1, w2):
    # NumPy weights become float64 constants under jax.enable_x64, float32 otherwise
    return lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ w1) @ w2


def _jacobian_numpy(w1, w2, xi):
    """J = W2ᵀ diag(1 − tanh²(W1ᵀ x)) W1ᵀ, [K, D], written out by hand."""
    pre = xi.reshape(-1) @ w1
    return w2.T @ np.diag(1.0 - np.tanh(pre) ** 2) @ w1.T


@pytest.fixture(scope="module")
def setup():
    """One model function for the whole module, so its compiled program is reused."""
    rng = np.random.default_rng(1)
    w1, w2 = _weights()
    x = rng.uniform(size=(4,) + SHAPE)
    delta = rng.normal(size=(4,) + SHAPE)
    return w1, w2, _model(w1, w2), x, delta


def _align(f, x, delta, **kw):
    with jax.enable_x64(True):
        return perturbation_alignment(f, jnp.asarray(x), jnp.asarray(delta), k=3, key=jax.random.key(3), **kw)


def test_matches_numpy_svd_with_random_baseline(setup):
    w1, w2, f, x, delta = setup
    r = _align(f, x, delta)
    assert isinstance(r, AlignmentResult) and r.k == 3
    with jax.enable_x64(True):
        noise = np.asarray(jax.random.normal(jax.random.key(3), x.shape, jnp.float64))
    for i in range(x.shape[0]):
        _, s, vt = np.linalg.svd(_jacobian_numpy(w1, w2, x[i]), full_matrices=False)
        d = delta[i].reshape(-1)
        proj = vt @ d
        np.testing.assert_allclose(r.singular_values[i], s, rtol=1e-10)
        np.testing.assert_allclose(r.cosines[i], np.abs(proj[:3]) / np.linalg.norm(d), rtol=1e-9)
        np.testing.assert_allclose(r.share[i], np.sum(proj[:3] ** 2) / (d @ d), rtol=1e-9)
        np.testing.assert_allclose(r.delta_norm[i], np.linalg.norm(d), rtol=1e-12)
        n = noise[i].reshape(-1)
        np.testing.assert_allclose(r.random_cosines[i], np.abs(vt[:3] @ n) / np.linalg.norm(n), rtol=1e-9)
        np.testing.assert_allclose(r.random_share[i], np.sum((vt[:3] @ n) ** 2) / (n @ n), rtol=1e-9)


def test_singular_vector_gives_cos_one_and_share_one(setup):
    w1, w2, f, x, _ = setup
    vts = [np.linalg.svd(_jacobian_numpy(w1, w2, xi))[2] for xi in x]
    # example i is 2.5 × its ranks[i]-th right singular vector; the last is the 5th (outside top-3)
    ranks = [0, 1, 2, 4]
    delta = np.stack([2.5 * vts[i][ranks[i]].reshape(SHAPE) for i in range(4)])
    r = _align(f, x, delta)
    for i, rank in enumerate(ranks):
        expected = np.zeros(3)
        if rank < 3:
            expected[rank] = 1.0
        np.testing.assert_allclose(r.cosines[i], expected, atol=1e-10)
        np.testing.assert_allclose(r.share[i], 1.0 if rank < 3 else 0.0, atol=1e-10)


def test_explicit_baseline_and_default_k(setup):
    w1, w2, f, x, delta = setup
    noise = np.random.default_rng(5).uniform(-1, 1, size=x.shape)
    with jax.enable_x64(True):
        r = perturbation_alignment(f, jnp.asarray(x), jnp.asarray(delta), baseline=jnp.asarray(noise))
    assert r.k == K and r.cosines.shape == (4, K) and r.random_cosines.shape == (4, K)
    for i in range(4):
        vt = np.linalg.svd(_jacobian_numpy(w1, w2, x[i]))[2][:K]
        n = noise[i].reshape(-1)
        np.testing.assert_allclose(r.random_share[i], np.sum((vt @ n) ** 2) / (n @ n), rtol=1e-9)


def test_examples_independent_and_concatenate(setup):
    _, _, f, x, delta = setup
    r = _align(f, x, delta)
    x2, d2 = x.copy(), delta.copy()
    x2[2] += 0.3
    d2[2] *= -0.5
    d2[2, 0] += 1.0
    r2 = _align(f, x2, d2)
    keep = [0, 1, 3]
    np.testing.assert_allclose(r2.cosines[keep], r.cosines[keep], rtol=1e-12)
    assert not np.allclose(r2.cosines[2], r.cosines[2])
    parts = [_align(f, x[s], delta[s]) for s in (slice(0, 2), slice(2, 4))]
    joined = concatenate_results(parts)
    np.testing.assert_allclose(joined.cosines, r.cosines, rtol=1e-12)
    np.testing.assert_allclose(joined.singular_values, r.singular_values, rtol=1e-12)


def test_zero_delta_gives_zero_not_nan(setup):
    _, _, f, x, delta = setup
    delta = delta.copy()
    delta[1] = 0.0
    r = _align(f, x, delta)
    assert np.all(np.isfinite(r.cosines)) and np.all(r.cosines[1] == 0) and r.share[1] == 0


def test_bad_arguments(setup):
    _, _, f, x, delta = setup
    xj, dj = jnp.asarray(x, jnp.float32), jnp.asarray(delta, jnp.float32)
    with pytest.raises(ValueError, match="k must"):
        perturbation_alignment(f, xj, dj, k=0)
    with pytest.raises(ValueError, match="k must be <= min"):
        perturbation_alignment(f, xj, dj, k=K + 1)
    with pytest.raises(ValueError, match="delta must have the shape of x"):
        perturbation_alignment(f, xj, dj[:3])
    with pytest.raises(ValueError, match="at most one of key"):
        perturbation_alignment(f, xj, dj, key=jax.random.key(0), baseline=dj)
    with pytest.raises(ValueError, match="baseline must have the shape"):
        perturbation_alignment(f, xj, dj, baseline=dj[:, :1])
    with pytest.raises(ValueError, match="logits_fn must be a callable"):
        perturbation_alignment("model", xj, dj)
    with pytest.raises(ValueError, match="delta contains NaN"):
        perturbation_alignment(f, xj, dj.at[0, 0, 0, 0].set(jnp.nan))
