"""robustjax.analysis.taylor on a quadratic loss (exact second order) and a cubic loss (known
third-order residual): SOAR 2020, Fig. 1 and Fig. 4."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.analysis import TaylorResult, concatenate_results, taylor_approximation_quality

RADII = [0.0, 0.25, 0.5, 1.0, 2.0]
STEPS = [0.1, 1.0]
D = 6


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(D, D))
    a = m @ m.T - 2.0 * np.eye(D)  # symmetric, indefinite
    b, c = rng.normal(size=D), rng.normal(size=D)

    def quadratic(x):
        f = x.reshape(x.shape[0], -1)
        return 0.5 * jnp.einsum("bi,ij,bj->b", f, a, f) + f @ b + 1.0

    def cubic(x):
        f = x.reshape(x.shape[0], -1)
        return jnp.sum(c * f**3, axis=1) + jnp.sum(f**2, axis=1)

    x = rng.normal(size=(3, 2, 3))
    d = rng.normal(size=(3, 2, 3))
    return dict(a=a, b=b, c=c, quadratic=quadratic, cubic=cubic, x=x, d=d)


def _run(loss_fn, x, d, radii=RADII, steps=STEPS):
    with jax.enable_x64(True):
        return taylor_approximation_quality(loss_fn, jnp.asarray(x), jnp.asarray(d), radii, fd_steps=steps)


def test_quadratic_second_order_is_exact(problem):
    p = problem
    r = _run(p["quadratic"], p["x"], p["d"])
    assert isinstance(r, TaylorResult) and r.second_order_fd.shape == (3, len(STEPS), len(RADII))
    np.testing.assert_allclose(r.second_order, r.loss, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r.second_order_fd, np.broadcast_to(r.loss[:, None], r.second_order_fd.shape),
                               rtol=1e-9, atol=1e-9)  # FD curvature of a quadratic is exact for any h
    x, d = p["x"].reshape(3, -1), p["d"].reshape(3, -1)
    u = d / np.linalg.norm(d, axis=1, keepdims=True)
    curvature = np.einsum("bi,ij,bj->b", u, p["a"], u)
    np.testing.assert_allclose(r.curvature, curvature, rtol=1e-12)
    np.testing.assert_allclose(r.slope, np.einsum("bi,ij,bj->b", x, p["a"], u) + u @ p["b"], rtol=1e-12)
    t = np.asarray(RADII)
    np.testing.assert_allclose(r.loss - r.first_order, 0.5 * curvature[:, None] * t**2, rtol=1e-9, atol=1e-12)


def test_cubic_leaves_the_third_order_residual(problem):
    p = problem
    r = _run(p["cubic"], p["x"], p["d"])
    d = p["d"].reshape(3, -1)
    u = d / np.linalg.norm(d, axis=1, keepdims=True)
    t = np.asarray(RADII)
    third = (p["c"] * u**3).sum(axis=1)  # D³ℓ[u, u, u] / 6
    np.testing.assert_allclose(r.loss - r.second_order, third[:, None] * t**3, rtol=1e-9, atol=1e-12)
    # SOAR eq. 9 curvature: exact + 3 h Σ c u³, so the FD approximation's residual is known too
    for j, h in enumerate(STEPS):
        fd_curv = r.curvature + 3.0 * h * third
        np.testing.assert_allclose(r.second_order_fd[:, j], r.first_order + 0.5 * fd_curv[:, None] * t**2,
                                   rtol=1e-8, atol=1e-10)
    errors = r.errors()
    assert set(errors) == {"first_order", "second_order", "second_order_fd_h=0.1", "second_order_fd_h=1"}


def test_independence_zero_direction_and_concatenate(problem):
    p = problem
    r = _run(p["cubic"], p["x"], p["d"])
    x2, d2 = p["x"].copy(), p["d"].copy()
    x2[1] += 1.0
    d2[1] = 0.0
    r2 = _run(p["cubic"], x2, d2)
    for name in ("loss", "first_order", "second_order"):
        np.testing.assert_allclose(getattr(r2, name)[[0, 2]], getattr(r, name)[[0, 2]], rtol=1e-13)
    np.testing.assert_allclose(r2.loss[1], r2.loss[1, 0])  # a zero direction stays at x
    assert np.all(np.isfinite(r2.second_order_fd))
    assert concatenate_results([r, r2]).loss.shape == (6, len(RADII))
    with pytest.raises(ValueError, match="share radii"):
        concatenate_results([r, _run(p["cubic"], p["x"], p["d"], radii=[0.0, 1.0])])


def test_no_fd_steps_and_bad_arguments(problem):
    p = problem
    x, d = jnp.asarray(p["x"], jnp.float32), jnp.asarray(p["d"], jnp.float32)
    r = taylor_approximation_quality(p["quadratic"], x, d, [0.0, 0.5])
    assert r.second_order_fd is None and r.fd_steps.shape == (0,)
    with pytest.raises(ValueError, match="fd_steps must be finite steps h > 0"):
        taylor_approximation_quality(p["quadratic"], x, d, RADII, fd_steps=[0.0])
    with pytest.raises(ValueError, match="fd_steps must be a sequence"):
        taylor_approximation_quality(p["quadratic"], x, d, RADII, fd_steps="big")
    with pytest.raises(ValueError, match="loss_fn must return one loss per example"):
        taylor_approximation_quality(lambda z: jnp.sum(z), x, d, RADII)
    with pytest.raises(ValueError, match="radii must be >= 0"):
        taylor_approximation_quality(p["quadratic"], x, d, [-1.0])
    with pytest.raises(ValueError, match="directions must have the shape"):
        taylor_approximation_quality(p["quadratic"], x, d[:1], RADII)
