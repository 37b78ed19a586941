"""Tests of robustjax.core.power: batched power iteration and layer operators."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.core.power import (
    conv_apply,
    conv_operator,
    dense_operator,
    normalize_per_example,
    power_iteration,
)


def _matrix_ops(mats):
    mats = jnp.asarray(mats)  # [B, m, n]
    return (lambda v: jnp.einsum("bmn,bn->bm", mats, v)), (lambda u: jnp.einsum("bmn,bm->bn", mats, u))


def test_power_iteration_matches_svd_per_example():
    rng = np.random.default_rng(0)
    mats = rng.normal(size=(4, 7, 5)).astype(np.float32)
    # make the top singular value gap-separated
    u_, s_, vt_ = np.linalg.svd(mats, full_matrices=False)
    s_[:, 0] *= 2.0
    mats = np.einsum("bik,bk,bkj->bij", u_, s_, vt_).astype(np.float32)
    matvec, rmatvec = _matrix_ops(mats)
    sigma, u, v = power_iteration(matvec, rmatvec, jnp.ones((4, 5)), iters=100)
    np.testing.assert_allclose(sigma, s_[:, 0], rtol=1e-4)
    for i in range(4):
        assert abs(abs(float(u[i] @ u_[i, :, 0])) - 1) < 1e-4
        assert abs(abs(float(v[i] @ vt_[i, 0])) - 1) < 1e-4
    # sigma = u^T A v
    np.testing.assert_allclose(sigma, np.einsum("bm,bmn,bn->b", u, mats, v), rtol=1e-5)


def test_examples_are_independent():
    rng = np.random.default_rng(1)
    mats = rng.normal(size=(3, 4, 4)).astype(np.float32)
    v0 = rng.normal(size=(3, 4)).astype(np.float32)
    a = power_iteration(*_matrix_ops(mats), v0, iters=3)
    mats2 = mats.copy()
    mats2[2] *= -5.0
    v02 = v0.copy()
    v02[2] = 1.0
    b = power_iteration(*_matrix_ops(mats2), v02, iters=3)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x[:2], y[:2], rtol=1e-6)


def test_zero_operator_gives_zero_sigma_and_finite_vectors():
    zero = jnp.zeros((2, 3, 4))
    sigma, u, v = power_iteration(*_matrix_ops(zero), jnp.ones((2, 4)), iters=3)
    assert np.all(np.asarray(sigma) == 0)
    assert np.all(np.isfinite(u)) and np.all(np.isfinite(v))
    # zero start vector too
    sigma, u, v = power_iteration(*_matrix_ops(zero), jnp.zeros((2, 4)), iters=2)
    assert np.all(np.isfinite(u)) and np.all(np.isfinite(v)) and np.all(np.asarray(sigma) == 0)


def test_normalize_per_example_zero_is_finite():
    x = jnp.array([[0.0, 0.0], [3.0, 4.0]])
    out = normalize_per_example(x)
    np.testing.assert_allclose(out, [[0, 0], [0.6, 0.8]])


def test_bad_iters_raises():
    ops = _matrix_ops(np.eye(3)[None])
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="iters"):
            power_iteration(*ops, jnp.ones((1, 3)), iters=bad)


def test_power_iteration_jits_and_grads():
    mats = jnp.asarray(np.random.default_rng(2).normal(size=(2, 3, 3)), jnp.float32)
    f = jax.jit(lambda m: power_iteration(*_matrix_ops(m), jnp.ones((2, 3)), iters=50)[0].sum())
    g = jax.grad(f)(mats)
    # d sigma / d A = u v^T
    _, u, v = power_iteration(*_matrix_ops(mats), jnp.ones((2, 3)), iters=50)
    np.testing.assert_allclose(g, np.einsum("bm,bn->bmn", u, v), atol=1e-3)


def test_dense_operator_transpose():
    k = jnp.asarray(np.random.default_rng(3).normal(size=(5, 3)), jnp.float32)
    mv, rmv = dense_operator(k)
    v = jnp.ones((2, 5))
    u = jnp.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(jnp.sum(u * mv(v)), jnp.sum(rmv(u) * v), rtol=1e-5)


@pytest.mark.parametrize("padding", ["SAME", "VALID", "CIRCULAR", "REFLECT", ((1, 0), (2, 1)), 1])
@pytest.mark.parametrize("strides", [1, 2])
def test_conv_apply_matches_flax_free_reference_and_transpose(padding, strides):
    rng = np.random.default_rng(4)
    k = jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32)
    x = jnp.asarray(rng.normal(size=(2, 6, 5, 2)), jnp.float32)
    y = conv_apply(x, k, strides=strides, padding=padding)
    # reference: explicit loops over output positions on a padded input
    xn = np.asarray(x)
    if padding in ("CIRCULAR", "REFLECT"):
        mode = {"CIRCULAR": "wrap", "REFLECT": "reflect"}[padding]
        xp = np.pad(xn, [(0, 0), (1, 1), (1, 1), (0, 0)], mode=mode)
    elif padding == "VALID":
        xp = xn
    elif padding == 1:
        xp = np.pad(xn, [(0, 0), (1, 1), (1, 1), (0, 0)])
    elif padding == "SAME":
        xp = None
    else:
        xp = np.pad(xn, [(0, 0), (1, 0), (2, 1), (0, 0)])
    if xp is not None:
        ho = (xp.shape[1] - 3) // strides + 1
        wo = (xp.shape[2] - 3) // strides + 1
        ref = np.zeros((2, ho, wo, 4), np.float32)
        for i in range(ho):
            for j in range(wo):
                patch = xp[:, i * strides:i * strides + 3, j * strides:j * strides + 3, :]
                ref[:, i, j] = np.einsum("bhwc,hwco->bo", patch, np.asarray(k))
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    mv, rmv = conv_operator(k, (6, 5, 2), strides=strides, padding=padding)
    u = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
    np.testing.assert_allclose(jnp.sum(u * mv(x)), jnp.sum(rmv(u) * x), rtol=1e-4, atol=1e-4)


def test_conv_bad_geometry_raises():
    k = jnp.zeros((3, 3, 2, 4))
    with pytest.raises(ValueError, match="input_shape"):
        conv_operator(k, (6, 6), padding="SAME")
    with pytest.raises(ValueError, match="channels"):
        conv_operator(k, (6, 6, 3), padding="SAME")
    with pytest.raises(ValueError, match="padding"):
        conv_apply(jnp.zeros((1, 6, 6, 2)), k, padding="FULL")
    with pytest.raises(ValueError, match="padding"):
        conv_apply(jnp.zeros((1, 6, 6, 2)), k, padding=((1, 2, 3),))


@pytest.mark.parametrize("unroll", [True, 1, 3])
def test_unroll_options_agree(unroll):
    mats = np.random.default_rng(5).normal(size=(2, 4, 3)).astype(np.float32)
    ref = power_iteration(*_matrix_ops(mats), jnp.ones((2, 3)), iters=6, unroll=False)
    out = power_iteration(*_matrix_ops(mats), jnp.ones((2, 3)), iters=6, unroll=unroll)
    for a, b in zip(ref, out):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
