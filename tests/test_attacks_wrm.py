"""WRM: the reference schedule against a NumPy re-derivation, and the Lagrangian optimality."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.attacks import wrm
from robustjax.core import losses as L

K_W = jax.random.normal(jax.random.PRNGKey(0), (6, 3)) / math.sqrt(6)


def softmax_linear(x):
    return x @ K_W


def numpy_wrm(x, y, gamma, steps):
    """Gradient ascent on φ(x') = CE(Wᵀx', y) − γ‖x' − x‖² with learning rate (1/2γ)·η_t, where
    η = 1 for the first step and 1/√(t+2) afterwards (float64)."""
    w = np.asarray(K_W, np.float64)
    x = np.asarray(x, np.float64)
    onehot = np.eye(3)[np.asarray(y)]

    def grad_phi(xa):
        z = xa @ w
        s = np.exp(z - z.max(1, keepdims=True))
        s /= s.sum(1, keepdims=True)
        return (s - onehot) @ w.T - 2 * gamma * (xa - x)

    lr0 = 1 / (2 * gamma)
    xa = x + lr0 * grad_phi(x)
    for t in range(steps):
        xa = xa + lr0 / np.sqrt(t + 2) * grad_phi(xa)
    return xa


def test_wrm_matches_numpy_gradient_ascent_on_the_lagrangian():
    x = jax.random.normal(jax.random.PRNGKey(1), (7, 6))
    y = jax.random.randint(jax.random.PRNGKey(2), (7,), 0, 3)
    out = wrm(softmax_linear, x, y, gamma=0.7, steps=12, clip=None)
    np.testing.assert_allclose(np.asarray(out, np.float64), numpy_wrm(x, y, 0.7, 12), atol=1e-5)


def test_wrm_converges_to_stationary_point():
    # at the maximizer of CE − γ‖δ‖²: δ = ∇CE(x')/(2γ). γ=2 exceeds the gradient's Lipschitz
    # constant here, so φ is strongly concave and the schedule converges.
    x = jax.random.normal(jax.random.PRNGKey(3), (5, 6))
    y = jnp.argmax(softmax_linear(x), 1)
    gamma = 2.0
    out = wrm(softmax_linear, x, y, gamma=gamma, steps=60, clip=None)
    g = jax.grad(lambda xa: jnp.sum(L.cross_entropy(softmax_linear(xa), y)))(out)
    np.testing.assert_allclose(out - x, g / (2 * gamma), atol=1e-4)
    phi = lambda xa: L.cross_entropy(softmax_linear(xa), y) - gamma * jnp.sum((xa - x) ** 2, 1)  # noqa: E731
    assert np.all(np.asarray(phi(out)) >= np.asarray(phi(x)))


def test_wrm_constant_step_and_clip_and_predicted_labels():
    x = jax.random.uniform(jax.random.PRNGKey(4), (4, 6))
    y = jnp.argmax(softmax_linear(x), 1)
    np.testing.assert_array_equal(wrm(softmax_linear, x, None, gamma=1.0, steps=3),
                                  wrm(softmax_linear, x, y, gamma=1.0, steps=3))
    out = wrm(softmax_linear, x, y, gamma=0.05, steps=3, step_size=0.5, clip=(0.0, 1.0))
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    # constant step η from x: x₁ = x + η·(ε∇ℓ − 0)
    one = wrm(softmax_linear, x, y, gamma=1.0, steps=1, step_size=0.3)
    g = jax.grad(lambda xa: jnp.sum(L.cross_entropy(softmax_linear(xa), y)))(x)
    np.testing.assert_allclose(one, x + 0.3 * 0.5 * g, atol=1e-6)


def test_wrm_examples_independent():
    f = lambda x: jnp.tanh(x @ K_W) * 3  # noqa: E731
    x = jax.random.normal(jax.random.PRNGKey(5), (4, 6))
    y = jnp.array([0, 1, 2, 0])
    a = wrm(f, x, y, gamma=1.0, steps=4)
    b = wrm(f, x.at[0].add(1.0), y, gamma=1.0, steps=4)
    np.testing.assert_array_equal(np.asarray(a)[1:], np.asarray(b)[1:])
