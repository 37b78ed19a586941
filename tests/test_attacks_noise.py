"""Noise attacks: ball membership, Gaussian scale, LRC covariance, worst-of-n selection."""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.attacks import gaussian_noise, lrc_covariance, lrc_noise, lrc_sample, uniform_noise, worst_of_n
from robustjax.attacks import noise as noise_module
from robustjax.core import losses as L

KEY = jax.random.PRNGKey(0)


@pytest.mark.parametrize("norm", [2, math.inf])
def test_uniform_noise_in_ball_and_clip(norm):
    x = jax.random.uniform(KEY, (64, 5, 5, 1))
    out = uniform_noise(x, key=jax.random.PRNGKey(1), eps=0.3, norm=norm, clip=(0.0, 1.0))
    d = (np.asarray(out, np.float64) - np.asarray(x, np.float64)).reshape(64, -1)
    assert np.all(np.linalg.norm(d, ord=2 if norm == 2 else np.inf, axis=1) <= 0.3 * (1 + 1e-6))
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert np.mean(np.abs(d) > 0) > 0.5


def test_gaussian_noise_scale():
    x = jnp.zeros((200, 50))
    out = np.asarray(gaussian_noise(x, key=KEY, sigma=0.1, clip=None))
    np.testing.assert_allclose(out.std(), 0.1, rtol=0.02)
    np.testing.assert_allclose(out.mean(), 0.0, atol=0.002)


def test_lrc_covariance_formula():
    # independent construction, entry by entry: c_ab·exp(−‖i − j‖/ζ), NHWC flattening order
    h, w, c, zeta = 3, 4, 2, 1.7
    cov = lrc_covariance(h, w, c, decay_length=zeta)
    idx = [(i, j, a) for i in range(h) for j in range(w) for a in range(c)]
    ref = np.array([[(1.0 if a == b else 0.5) * math.exp(-math.hypot(i - k, j - l) / zeta)
                     for (k, l, b) in idx] for (i, j, a) in idx])
    np.testing.assert_allclose(cov, ref, rtol=1e-12)
    assert np.linalg.eigvalsh(cov).min() > 0


def test_lrc_empirical_covariance_matches_target():
    h, w, c, zeta, n = 6, 6, 2, 3.0, 40000
    s = np.asarray(lrc_sample(jax.random.PRNGKey(2), (n, h, w, c), decay_length=zeta), np.float64)
    flat = s.reshape(n, -1)
    emp = flat.T @ flat / n
    target = lrc_covariance(h, w, c, decay_length=zeta)
    # entry-wise standard error of a second moment ≤ sqrt(2/n) ≈ 0.007 for unit variances
    assert np.abs(emp - target).max() < 6 * math.sqrt(2 / n)
    np.testing.assert_allclose(flat.mean(0), 0.0, atol=6 / math.sqrt(n))


def test_lrc_factor_is_computed_once_per_shape():
    noise_module._lrc_factors.cache_clear()
    x = jnp.zeros((2, 5, 5, 3))
    for i in range(3):
        lrc_noise(x, key=jax.random.PRNGKey(i), eps=0.1, decay_length=2.0)
    info = noise_module._lrc_factors.cache_info()
    assert info.misses == 1 and info.hits == 2


def test_lrc_noise_scaling_and_clip():
    x = 0.5 * jnp.ones((3, 4, 4, 3))
    key = jax.random.PRNGKey(3)
    out = lrc_noise(x, key=key, eps=0.2, decay_length=4.0, clip=None)
    np.testing.assert_allclose(out - x, 0.2 * lrc_sample(key, x.shape, decay_length=4.0), atol=1e-6)
    clipped = lrc_noise(x, key=key, eps=5.0, decay_length=4.0, clip=(0.0, 1.0))
    assert float(clipped.min()) >= 0 and float(clipped.max()) <= 1


def _model(x):
    w = jax.random.normal(jax.random.PRNGKey(9), (x[0].size, 4))
    return x.reshape(x.shape[0], -1) @ w


def test_worst_of_n_keeps_the_most_damaging_sample():
    x = jax.random.uniform(jax.random.PRNGKey(4), (6, 4, 4, 2))
    y = jnp.argmax(_model(x), 1)
    sampler = partial(lrc_noise, eps=0.5, decay_length=2.0)
    key, n = jax.random.PRNGKey(5), 7
    out = worst_of_n(_model, x, None, sampler=sampler, n=n, key=key)
    # recompute all n candidates with the same keys and pick per example by hand
    cands = np.stack([np.asarray(sampler(x, key=k)) for k in jax.random.split(key, n)])
    scores = np.stack([np.asarray(-L.margin(_model(jnp.asarray(c)), y)) for c in cands])
    best = scores.argmax(0)
    np.testing.assert_allclose(out, cands[best, np.arange(6)], atol=1e-6)
    # if any sample fools the model, the kept one does
    fooled_any = (scores > 0).any(0)
    kept_fooled = np.asarray(jnp.argmax(_model(out), 1) != y)
    np.testing.assert_array_equal(kept_fooled, fooled_any)


def test_worst_of_n_with_uniform_and_gaussian_samplers():
    x = jax.random.uniform(jax.random.PRNGKey(6), (5, 4, 4, 2))
    for sampler in (partial(uniform_noise, eps=0.3), partial(gaussian_noise, sigma=0.3)):
        out = worst_of_n(_model, x, None, sampler=sampler, n=5, key=KEY, loss="ce")
        assert out.shape == x.shape and not np.allclose(out, x)
