"""SOAR §2 in closed form (Ma et al. 2020): the functions of experiments/soar_regression.py against
independent formulas, in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import soar_regression as reg
from robustjax.data import overparameterized_linear_regression

EPS = 0.1


@pytest.fixture(scope="module")
def problem():
    with jax.enable_x64(True):
        p = overparameterized_linear_regression(jax.random.PRNGKey(0), n=16, d=12)
        x, y = jnp.asarray(p.x, jnp.float64), jnp.asarray(p.y, jnp.float64)
        w0 = 0.3 * jax.random.normal(jax.random.PRNGKey(1), (12,), jnp.float64)
    return x, y, w0


def test_gradient_descent_ends_at_w_star_plus_the_untouched_initial_weights(problem):
    x, y, w0 = problem
    with jax.enable_x64(True):
        lr = 0.5 / float(jnp.mean(x[:, 0] ** 2))
        w_bar, ws, at = reg.gradient_descent(reg.objective("erm", eps=EPS), w0, x, y, steps=120, lr=lr,
                                             record_every=50)
        np.testing.assert_allclose(np.asarray(w_bar), np.concatenate([[1.0], np.asarray(w0[1:])]), atol=1e-12)
        assert list(at) == [0, 50, 100, 120] and ws.shape == (4, 12)
        assert float(jnp.max(jnp.abs(reg.residual(w_bar, x, y)))) < 1e-12


def test_attack_is_the_maximizer_and_second_order_taylor_is_exact(problem):
    x, y, w0 = problem
    with jax.enable_x64(True):
        w = w0.at[0].set(0.7)  # residual != 0
        delta = reg.attack(w, x, y, eps=EPS)
        assert float(jnp.max(jnp.abs(delta[:, 0]))) == 0.0
        np.testing.assert_allclose(np.abs(np.asarray(delta[:, 1:])), EPS)
        # the closed-form worst case equals the loss at the attack, and no random point of the
        # ball beats it
        worst = reg.worst_case_loss(w, x, y, eps=EPS)
        est = reg.taylor_estimates(w, x, y, delta)
        np.testing.assert_allclose(np.asarray(est["exact"]), np.asarray(worst), rtol=1e-13)
        np.testing.assert_allclose(np.asarray(est["second_order"]), np.asarray(worst), rtol=1e-13)
        r = np.asarray(reg.residual(w, x, y))
        l1 = float(np.sum(np.abs(np.asarray(w[1:]))))
        np.testing.assert_allclose(np.asarray(est["first_order"]), 0.5 * r**2 + EPS * np.abs(r) * l1, rtol=1e-13)
        u = jax.random.uniform(jax.random.PRNGKey(3), (200, 12), jnp.float64, -EPS, EPS).at[:, 0].set(0.0)
        others = 0.5 * np.square(np.asarray(x[0] @ w - y[0]) + np.asarray(u @ w))
        assert others.max() <= float(worst[0]) + 1e-12


def test_first_order_misses_the_attack_at_the_gd_solution(problem):
    x, y, w0 = problem
    with jax.enable_x64(True):
        w_bar = w0.at[0].set(1.0)
        delta = reg.attack(w_bar, x, y, eps=EPS)
        est = reg.taylor_estimates(w_bar, x, y, delta)
        closed = 0.5 * EPS**2 * float(jnp.sum(jnp.abs(w_bar[1:]))) ** 2
        np.testing.assert_allclose(np.asarray(est["exact"]), closed, rtol=1e-13)
        assert float(jnp.max(jnp.abs(est["first_order"]))) == 0.0
        # GN has a zero gradient there: fine-tuning with it cannot remove the attack
        g = jax.grad(reg.objective("gradient_norm", eps=EPS))(w_bar, x, y)
        assert float(jnp.max(jnp.abs(g))) == 0.0


def test_second_order_and_adversarial_objectives_have_the_same_gradient(problem):
    x, y, w0 = problem
    with jax.enable_x64(True):
        for k in range(3):
            w = w0 + 0.5 * jax.random.normal(jax.random.PRNGKey(10 + k), w0.shape, jnp.float64)
            g2 = jax.grad(reg.objective("second_order", eps=EPS))(w, x, y)
            ga = jax.grad(reg.objective("adversarial", eps=EPS))(w, x, y)
            np.testing.assert_allclose(np.asarray(g2), np.asarray(ga), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="name must be one of"):
        reg.objective("third_order", eps=EPS)


def test_eq2_needs_the_half_and_expected_loss_matches_monte_carlo(problem):
    x, y, w0 = problem
    with jax.enable_x64(True):
        t = reg.eq2_terms(w0.at[0].set(0.4), x, y, eps=EPS)
    assert t["measured"] == pytest.approx(t["expansion_with_half"], rel=1e-12)
    assert abs(t["expansion_as_printed"] - t["measured"]) > 1e-6
    rng = np.random.default_rng(0)
    d, sigma = 40, 0.2
    w = rng.normal(0.0, sigma, (20000, d))
    mc = 0.5 * EPS**2 * np.sum(np.abs(w[:, 1:]), axis=1) ** 2
    assert reg.expected_attack_loss(d, sigma, EPS) == pytest.approx(mc.mean(), rel=4 * mc.std() / mc.mean() / np.sqrt(len(mc)))
