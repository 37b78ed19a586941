"""core/norms.py against NumPy references, analytic cases and distribution tests."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustjax.core import norms as N

KEY = jax.random.PRNGKey(0)


def _np_norm(a, p):
    flat = np.asarray(a, np.float64).reshape(a.shape[0], -1)
    return np.linalg.norm(flat, ord=p, axis=1)


@pytest.mark.parametrize("p", [1, 2, math.inf])
def test_per_example_norm_matches_numpy(p):
    x = jax.random.normal(KEY, (5, 3, 4, 2))
    np.testing.assert_allclose(N.per_example_norm(x, norm=p), _np_norm(x, p), rtol=1e-5)


def test_named_norms_and_string_norm():
    x = jax.random.normal(KEY, (3, 7))
    np.testing.assert_allclose(N.l1_norm(x), _np_norm(x, 1), rtol=1e-5)
    np.testing.assert_allclose(N.l2_norm(x), _np_norm(x, 2), rtol=1e-5)
    np.testing.assert_allclose(N.linf_norm(x), _np_norm(x, np.inf), rtol=1e-6)
    np.testing.assert_allclose(N.per_example_norm(x, norm="inf"), _np_norm(x, np.inf), rtol=1e-6)
    with pytest.raises(ValueError, match="norm"):
        N.per_example_norm(x, norm=3)


def test_l2_norm_gradient_at_zero_is_finite():
    g = jax.grad(lambda x: jnp.sum(N.l2_norm(x)))(jnp.zeros((2, 3)))
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(g, 0.0)
    # and away from zero it is x/‖x‖
    x = jnp.array([[3.0, 4.0]])
    np.testing.assert_allclose(jax.grad(lambda x: jnp.sum(N.l2_norm(x)))(x), [[0.6, 0.8]], rtol=1e-6)


def test_project_l2_eq16_form():
    d = jnp.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    out = N.project_to_ball(d, eps=1.0, norm=2)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]], rtol=1e-6)


def test_project_linf_is_clipping_and_per_example_eps():
    d = jax.random.normal(KEY, (3, 4, 2))
    eps = jnp.array([0.1, 0.5, 2.0])
    out = N.project_to_ball(d, eps=eps, norm=jnp.inf)
    ref = np.clip(np.asarray(d), -np.asarray(eps)[:, None, None], np.asarray(eps)[:, None, None])
    np.testing.assert_allclose(out, ref)


def test_zero_vectors_and_zero_eps_give_no_nan():
    z = jnp.zeros((2, 5))
    for p in (2, jnp.inf):
        assert np.all(np.isfinite(N.project_to_ball(z, eps=0.0, norm=p)))
        assert np.all(np.isfinite(N.steepest_ascent_direction(z, norm=p)))
        np.testing.assert_array_equal(N.steepest_ascent_direction(z, norm=p), 0.0)
    np.testing.assert_array_equal(N.project_to_ball(jnp.ones((2, 5)), eps=0.0, norm=2), 0.0)


def test_steepest_ascent_directions():
    g = jax.random.normal(KEY, (4, 3, 3))
    d2 = N.steepest_ascent_direction(g, norm=2)
    np.testing.assert_allclose(N.l2_norm(d2), 1.0, rtol=1e-6)
    np.testing.assert_allclose(d2 * N.l2_norm(g)[:, None, None], g, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(N.steepest_ascent_direction(g, norm=jnp.inf), np.sign(g))
    d1 = N.steepest_ascent_direction(g, norm=1)
    flat = np.asarray(g).reshape(4, -1)
    ref = np.zeros_like(flat)
    idx = np.argmax(np.abs(flat), axis=1)
    ref[np.arange(4), idx] = np.sign(flat[np.arange(4), idx])
    np.testing.assert_array_equal(np.asarray(d1).reshape(4, -1), ref)


@pytest.mark.parametrize("p", [2, math.inf])
def test_examples_are_independent(p):
    d = jax.random.normal(KEY, (4, 6))
    d2 = d.at[2].multiply(100.0)
    for fn in (lambda a: N.project_to_ball(a, eps=0.7, norm=p),
               lambda a: N.steepest_ascent_direction(a, norm=p)):
        a, b = fn(d), fn(d2)
        np.testing.assert_array_equal(np.delete(np.asarray(a), 2, 0), np.delete(np.asarray(b), 2, 0))


@pytest.mark.parametrize("d", [2, 5])
def test_l2_ball_sampler_radius_distribution(d):
    # Uniform in the ℓ2 ball ⇔ P(‖δ‖ ≤ rε) = r^d; check at several r with a binomial tolerance.
    n, eps = 40000, 0.7
    s = N.sample_uniform_ball(KEY, (n, d), eps=eps, norm=2)
    radii = np.asarray(N.l2_norm(s), np.float64) / eps
    assert radii.max() <= 1.0 + 1e-6
    for r in (0.3, 0.6, 0.8, 0.95):
        p = r**d
        frac = np.mean(radii <= r)
        assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-3, (r, frac, p)
    # directions are isotropic: mean ≈ 0, second moment ≈ E‖δ‖²/d · I
    m2 = np.asarray(s, np.float64).T @ np.asarray(s, np.float64) / n
    expected = eps**2 * d / (d + 2) / d
    np.testing.assert_allclose(m2, expected * np.eye(d), atol=0.05 * expected * d)


def test_l2_ball_sampler_multi_axis_uses_full_dimension():
    # d = 2*2 = 4: the radius law must use d = prod(shape[1:]), not the last axis.
    n = 40000
    s = N.sample_uniform_ball(KEY, (n, 2, 2), eps=1.0, norm=2)
    radii = np.asarray(N.l2_norm(s))
    assert abs(np.mean(radii <= 0.8) - 0.8**4) < 0.01


def test_linf_ball_sampler_is_uniform_per_coordinate():
    n, eps = 20000, 0.3
    s = np.asarray(N.sample_uniform_ball(KEY, (n, 3), eps=eps, norm=jnp.inf))
    assert np.abs(s).max() <= eps
    np.testing.assert_allclose(s.mean(0), 0.0, atol=0.01)
    np.testing.assert_allclose(s.var(0), eps**2 / 3, rtol=0.05)
    np.testing.assert_allclose(np.mean(np.abs(s) < eps / 2, axis=0), 0.5, atol=0.02)


def test_clip_to_range():
    x = jnp.array([[-0.5, 0.2, 1.7]])
    np.testing.assert_allclose(N.clip_to_range(x, (0.0, 1.0)), [[0.0, 0.2, 1.0]], rtol=1e-7)
    np.testing.assert_array_equal(N.clip_to_range(x, None), x)


@settings(max_examples=10, deadline=None)
@given(
    b=st.integers(1, 4),
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    eps=st.floats(0.0, 3.0),
    p=st.sampled_from([2, math.inf]),
    scale=st.floats(0.01, 10.0),
    seed=st.integers(0, 1000),
)
def test_projection_properties(b, shape, eps, p, scale, seed):
    d = scale * jax.random.normal(jax.random.PRNGKey(seed), (b, *shape))
    out = N.project_to_ball(d, eps=eps, norm=p)
    n_out = _np_norm(out, p)
    assert np.all(n_out <= eps * (1 + 1e-6) + 1e-30)
    inside = _np_norm(d, p) <= eps
    np.testing.assert_allclose(np.asarray(out)[inside], np.asarray(d)[inside], rtol=1e-6)
    # idempotent
    np.testing.assert_allclose(N.project_to_ball(out, eps=eps, norm=p), out, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- round_into_ball
@pytest.mark.parametrize("norm", [2, math.inf])
def test_round_into_ball_fixes_rounding_only(norm):
    from robustjax.core.norms import l2_norm, linf_norm, round_into_ball

    key = jax.random.PRNGKey(5)
    x = jax.random.uniform(key, (64, 7), jnp.float32, 0.2, 0.8)
    eps = 0.01
    d = jax.random.normal(jax.random.PRNGKey(6), x.shape)
    if norm == math.inf:
        d = eps * jnp.sign(d)                       # on the sphere: x + d rounds either way
    else:
        d = eps * d / l2_norm(d)[:, None]
    inside = x + 0.5 * d                            # well inside: untouched
    on = x + d
    measure = linf_norm if norm == math.inf else l2_norm
    assert np.any(np.asarray(measure(on - x)) > eps)  # float32 rounding leaves the ball
    fixed = round_into_ball(x, on, eps=eps, norm=norm)
    assert np.all(np.asarray(measure(fixed - x)) <= eps)
    np.testing.assert_allclose(np.asarray(fixed), np.asarray(on), rtol=0, atol=2e-7)
    np.testing.assert_array_equal(np.asarray(round_into_ball(x, inside, eps=eps, norm=norm)),
                                  np.asarray(inside))
    # derivatives see the identity (the fix is a constant)
    g = jax.grad(lambda v: jnp.sum(round_into_ball(x, v, eps=eps, norm=norm) * 3.0))(on)
    np.testing.assert_array_equal(np.asarray(g), np.full(x.shape, 3.0, np.float32))
