"""Tests of robustjax.core.jacobian against materialized Jacobians and numpy SVD."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from robustjax.core.jacobian import (
    input_jacobian,
    jacobian_by_regression,
    jacobian_singular_values,
    jacobian_top_singular,
)

K = 5


def _conv(x, w, stride, padding):
    return lax.conv_general_dilated(x, w, (stride, stride), padding,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _maxpool(x):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def make_model(kind, seed=0):
    """Small plain-JAX networks: (logits_fn, input shape)."""
    rng = np.random.default_rng(seed)
    w = lambda *s: jnp.asarray(rng.normal(size=s) / np.sqrt(np.prod(s[:-1])), jnp.float32)  # noqa
    if kind == "dense_relu":
        w1, w2, w3 = w(12, 16), w(16, 16), w(16, K)
        f = lambda x: jax.nn.relu(jax.nn.relu(x.reshape(x.shape[0], -1) @ w1) @ w2) @ w3  # noqa
        return f, (12,)
    if kind == "conv_s1_same_elu_pool":
        k1, k2, wd = w(3, 3, 2, 4), w(3, 3, 4, 4), w(3 * 3 * 4, K)
        def f(x):
            h = jax.nn.elu(_conv(x, k1, 1, "SAME"))
            h = _maxpool(jax.nn.elu(_conv(h, k2, 1, "VALID")))
            return h.reshape(h.shape[0], -1) @ wd
        return f, (8, 8, 2)
    if kind == "conv_s2_explicit_relu":
        k1, k2, wd = w(3, 3, 3, 6), w(2, 2, 6, 4), w(2 * 2 * 4, K)
        def f(x):
            h = jax.nn.relu(_conv(x, k1, 2, ((1, 0), (0, 1))))
            h = jax.nn.relu(_conv(h, k2, 1, ((1, 1), (1, 1))))
            h = _maxpool(h)
            return h.reshape(h.shape[0], -1) @ wd
        return f, (7, 7, 3)
    if kind == "conv_s2_same_valid":
        k1, k2, wd = w(3, 3, 1, 4), w(3, 3, 4, 3), w(2 * 2 * 3, K)
        def f(x):
            h = jax.nn.elu(_conv(x, k1, 2, "SAME"))
            h = jax.nn.relu(_conv(h, k2, 2, "VALID"))
            return h.reshape(h.shape[0], -1) @ wd
        return f, (9, 9, 1)
    raise ValueError(kind)


def _numpy_jacobian(f, x):
    """Materialized Jacobian, one example at a time with jax.jacfwd (independent of the code)."""
    j = jax.jit(jax.vmap(jax.jacfwd(lambda xi: f(xi[None])[0])))(x)
    return np.asarray(j).reshape(x.shape[0], K, -1).astype(np.float64)


KINDS = ["dense_relu", "conv_s1_same_elu_pool", "conv_s2_explicit_relu", "conv_s2_same_valid"]


@pytest.mark.parametrize("kind", KINDS)
def test_top_singular_matches_svd(kind):
    f, shape = make_model(kind)
    x = jax.random.normal(jax.random.PRNGKey(1), (6,) + shape)
    jac = _numpy_jacobian(f, x)
    uu, ss, vvt = np.linalg.svd(jac, full_matrices=False)
    sigma, u, v = jax.jit(lambda x: jacobian_top_singular(f, x, iters=300, key=jax.random.PRNGKey(0)))(x)
    gap = ss[:, 1] / ss[:, 0] < 0.97
    assert gap.sum() >= 3
    np.testing.assert_allclose(np.asarray(sigma)[gap], ss[gap, 0], rtol=1e-3)
    vf = np.asarray(v).reshape(6, -1)
    for i in np.nonzero(gap)[0]:
        assert abs(abs(np.dot(u[i], uu[i, :, 0])) - 1) < 1e-3
        assert abs(abs(np.dot(vf[i], vvt[i, 0])) - 1) < 1e-3
    # the materialized-Jacobian path agrees too
    np.testing.assert_allclose(input_jacobian(f, x), jac, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jacobian_singular_values(f, x), ss, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("method", ["linearize", "jvp_vjp", "vjp_transpose"])
def test_methods_agree(method):
    f, shape = make_model("conv_s1_same_elu_pool")
    x = jax.random.normal(jax.random.PRNGKey(2), (3,) + shape)
    ref = jacobian_top_singular(f, x, iters=20, key=jax.random.PRNGKey(0))
    out = jacobian_top_singular(f, x, iters=20, key=jax.random.PRNGKey(0), method=method)
    for a, b in zip(ref, out):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_example_i_unaffected_by_perturbing_example_j():
    f, shape = make_model("conv_s2_explicit_relu")
    x = jax.random.normal(jax.random.PRNGKey(3), (4,) + shape)
    v0 = jax.random.normal(jax.random.PRNGKey(4), x.shape)
    run = jax.jit(lambda x, v0: jacobian_top_singular(f, x, iters=5, v0=v0))
    a = run(x, v0)
    x2 = x.at[3].set(10.0 * x[0])
    v02 = v0.at[3].set(-v0[0])
    b = run(x2, v02)
    for p, q in zip(a, b):
        np.testing.assert_allclose(p[:3], q[:3], rtol=1e-5, atol=1e-6)


def test_warm_start_converges_immediately():
    f, shape = make_model("dense_relu")
    x = jax.random.normal(jax.random.PRNGKey(5), (4,) + shape)
    s1, _, v = jacobian_top_singular(f, x, iters=200, key=jax.random.PRNGKey(0))
    s2, _, v2 = jacobian_top_singular(f, x, iters=1, v0=v)
    np.testing.assert_allclose(s1, s2, rtol=1e-5)


def test_zero_jacobian_no_nan():
    f = lambda x: jnp.zeros((x.shape[0], K)) * x.sum()  # noqa: E731
    sigma, u, v = jacobian_top_singular(f, jnp.ones((2, 3)), iters=3, key=jax.random.PRNGKey(0))
    assert np.all(np.asarray(sigma) == 0)
    assert np.all(np.isfinite(u)) and np.all(np.isfinite(v))


def test_bad_arguments():
    f, shape = make_model("dense_relu")
    x = jnp.ones((2,) + shape)
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="iters"):
        jacobian_top_singular(f, x, iters=0, key=key)
    with pytest.raises(ValueError, match="exactly one"):
        jacobian_top_singular(f, x, iters=1)
    with pytest.raises(ValueError, match="exactly one"):
        jacobian_top_singular(f, x, iters=1, key=key, v0=x)
    with pytest.raises(ValueError, match="v0"):
        jacobian_top_singular(f, x, iters=1, v0=jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="method"):
        jacobian_top_singular(f, x, iters=1, key=key, method="magic")


def test_regression_extraction_matches_exact_jacobian():
    """Roth App. 7.4: least squares on random perturbations recovers J (smooth model)."""
    f, shape = make_model("conv_s2_same_valid")
    x = jax.random.normal(jax.random.PRNGKey(6), (2,) + shape)
    exact = _numpy_jacobian(f, x)
    est = jax.jit(lambda x: jacobian_by_regression(f, x, key=jax.random.PRNGKey(0), scale=1e-2,
                                                   num_samples=400, activations="live"))(x)
    rel = np.linalg.norm(np.asarray(est) - exact) / np.linalg.norm(exact)
    assert rel < 5e-2, rel
    s = np.linalg.svd(np.asarray(est), compute_uv=False)
    np.testing.assert_allclose(s[:, 0], np.linalg.svd(exact, compute_uv=False)[:, 0], rtol=5e-2)
    with pytest.raises(ValueError, match="num_samples"):
        jacobian_by_regression(f, x, key=jax.random.PRNGKey(0), num_samples=10)
    with pytest.raises(ValueError, match="activations"):
        jacobian_by_regression(f, x, key=jax.random.PRNGKey(0), activations="frozen")


def test_regression_with_fixed_activations_is_exact_for_relu_nets():
    """Roth App. 7.4 "with fixed activation functions": with the ReLU pattern frozen at x the
    net is affine, so the fit recovers J (float64, up to lstsq rounding) even for perturbations
    large enough to flip many ReLUs, where the live network's fit is biased."""
    with jax.enable_x64(True):
        k1, k2, k3 = jax.random.split(jax.random.PRNGKey(7), 3)
        w1 = jax.random.normal(k1, (12, 16), jnp.float64)
        w2 = jax.random.normal(k2, (16, K), jnp.float64)
        f = lambda x: jax.nn.relu(x.reshape(x.shape[0], -1) @ w1) @ w2  # noqa: E731
        x = jax.random.normal(k3, (3, 3, 4), jnp.float64)
        exact = _numpy_jacobian(f, x)
        fixed = jacobian_by_regression(f, x, key=jax.random.PRNGKey(0), scale=0.5, num_samples=60)
        live = jacobian_by_regression(f, x, key=jax.random.PRNGKey(0), scale=0.5, num_samples=60,
                                      activations="live")
        np.testing.assert_allclose(np.asarray(fixed), exact, rtol=1e-8, atol=1e-10)
        assert np.linalg.norm(np.asarray(live) - exact) > 0.05 * np.linalg.norm(exact)
    with pytest.raises(ValueError, match="key"):
        jacobian_singular_values(f, x, method="regression")
