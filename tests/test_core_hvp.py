"""Tests of robustjax.core.hvp against jax.hessian of each example's loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.core.hvp import input_hvp, input_hvp_finite_difference


def _model(dtype=jnp.float32):
    rng = np.random.default_rng(0)
    w1 = jnp.asarray(rng.normal(size=(6, 8)) / 2.5, dtype)
    w2 = jnp.asarray(rng.normal(size=(8, 3)) / 2.8, dtype)
    y = jnp.array([0, 2, 1, 1])

    def loss_fn(x):
        logits = jnp.tanh(x.reshape(x.shape[0], -1) @ w1) @ w2
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1)[:, 0]

    return loss_fn


def _hessian_reference(loss_fn, x, v):
    out = []
    for i in range(x.shape[0]):
        def li(xi, i=i):
            return loss_fn(x.at[i].set(xi))[i]
        h = jax.hessian(li)(x[i]).reshape(x[i].size, x[i].size)
        out.append((h @ v[i].reshape(-1)).reshape(x[i].shape))
    return np.stack(out)


def test_input_hvp_matches_hessian():
    loss_fn = _model()
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 2, 3))
    v = jax.random.normal(jax.random.PRNGKey(1), (4, 2, 3))
    ref = _hessian_reference(loss_fn, x, v)
    np.testing.assert_allclose(input_hvp(loss_fn, x, v), ref, rtol=1e-4, atol=1e-6)


def test_input_hvp_examples_independent():
    loss_fn = _model()
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 6))
    v = jax.random.normal(jax.random.PRNGKey(1), (4, 6))
    a = input_hvp(loss_fn, x, v)
    b = input_hvp(loss_fn, x.at[1].add(3.0), v.at[1].set(0.0))
    idx = np.array([0, 2, 3])
    np.testing.assert_allclose(a[idx], b[idx], rtol=1e-6)


def test_finite_difference_converges_to_exact():
    with jax.enable_x64(True):
        loss_fn = _model(jnp.float64)
        x = jax.random.normal(jax.random.PRNGKey(0), (4, 6), jnp.float64)
        v = 3.0 * jax.random.normal(jax.random.PRNGKey(1), (4, 6), jnp.float64)
        exact = np.asarray(input_hvp(loss_fn, x, v))
        errs = []
        for h in (1e-1, 1e-2, 1e-3, 1e-4):
            fd = input_hvp_finite_difference(loss_fn, x, v, h=h)
            errs.append(np.linalg.norm(np.asarray(fd) - exact) / np.linalg.norm(exact))
        # first-order convergence: error shrinks ~10x per decade of h
        assert all(b < a / 5 for a, b in zip(errs, errs[1:])), errs
        assert errs[-1] < 1e-4
        # per-example h and returned gradient
        hv, g = input_hvp_finite_difference(loss_fn, x, v, h=jnp.full((4,), 1e-4), return_grad=True)
        np.testing.assert_allclose(hv, input_hvp_finite_difference(loss_fn, x, v, h=1e-4), rtol=1e-10)
        np.testing.assert_allclose(g, jax.grad(lambda z: loss_fn(z).sum())(x), rtol=1e-12)


def test_finite_difference_with_a_given_gradient_uses_it_and_stays_differentiable():
    # grad= skips the gradient at x: the same products when it is the true gradient, the
    # products of (∇ℓ(x + h v̂) − grad) otherwise, and the parameter gradient of a function of
    # the products flows through grad as through the computed one (float64).
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(0), (4, 6), jnp.float64)
        v = jax.random.normal(jax.random.PRNGKey(1), (4, 6), jnp.float64)
        w = jnp.asarray(np.random.default_rng(2).normal(size=(6, 3)), jnp.float64)
        y = jnp.array([0, 2, 1, 1])

        def loss_of(wv):
            return lambda z: -jnp.take_along_axis(jax.nn.log_softmax(jnp.tanh(z @ wv)), y[:, None], 1)[:, 0]

        def objective(wv, given):
            loss_fn = loss_of(wv)
            g0 = jax.grad(lambda z: loss_fn(z).sum())(x) if given else None
            return jnp.sum(input_hvp_finite_difference(loss_fn, x, v, h=1e-2, grad=g0) ** 2)

        np.testing.assert_allclose(objective(w, True), objective(w, False), rtol=1e-12)
        np.testing.assert_allclose(jax.grad(objective)(w, True), jax.grad(objective)(w, False),
                                   rtol=1e-10, atol=1e-14)
        loss_fn = loss_of(w)
        shifted = input_hvp_finite_difference(loss_fn, x, v, h=1e-2, grad=jnp.zeros_like(x))
        step = 1e-2 * v / jnp.linalg.norm(v, axis=1, keepdims=True)
        g1 = jax.grad(lambda z: loss_fn(z).sum())(x + step)
        np.testing.assert_allclose(shifted, g1 * jnp.linalg.norm(v, axis=1, keepdims=True) / 1e-2,
                                   rtol=1e-10)
        with pytest.raises(ValueError, match="grad"):
            input_hvp_finite_difference(loss_fn, x, v, h=1e-2, grad=jnp.zeros((4, 5)))
        # rows stay independent: a non-finite gradient row (the two gradients are ordered by a
        # zero data dependency) leaves the other rows' products unchanged
        bad = jnp.asarray(jax.grad(lambda z: loss_fn(z).sum())(x)).at[0].set(jnp.inf)
        rows = input_hvp_finite_difference(loss_fn, x, v, h=1e-2, grad=bad)
        ref = input_hvp_finite_difference(loss_fn, x, v, h=1e-2)
        assert not np.all(np.isfinite(rows[0]))
        np.testing.assert_allclose(rows[1:], ref[1:], rtol=1e-12)


def test_finite_difference_zero_direction_and_scaling():
    loss_fn = _model()
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 6))
    v = jax.random.normal(jax.random.PRNGKey(1), (4, 6)).at[2].set(0.0)
    fd = input_hvp_finite_difference(loss_fn, x, v, h=1e-2)
    assert np.all(np.isfinite(fd)) and np.all(np.asarray(fd[2]) == 0)
    # linear in ||v||: doubling v doubles the product (the step h v̂ is unchanged)
    np.testing.assert_allclose(input_hvp_finite_difference(loss_fn, x, 2 * v, h=1e-2), 2 * fd, rtol=1e-5)


def test_bad_arguments():
    loss_fn = _model()
    x = jnp.ones((4, 6))
    with pytest.raises(ValueError, match="v"):
        input_hvp(loss_fn, x, jnp.ones((4, 5)))
    with pytest.raises(ValueError, match="h"):
        input_hvp_finite_difference(loss_fn, x, x, h=0.0)
    with pytest.raises(ValueError, match="h"):
        input_hvp_finite_difference(loss_fn, x, x, h=jnp.ones(3))
    with pytest.raises(ValueError, match="per example"):
        input_hvp(lambda z: z.sum(), x, x)
