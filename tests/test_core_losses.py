"""core/losses.py against NumPy references and the papers' closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.core import losses as L

KEY = jax.random.PRNGKey(1)


def _np_ce(z, y, beta):
    z = beta * np.asarray(z, np.float64)
    m = z.max(1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(1))
    return lse - z[np.arange(len(y)), y]


@pytest.mark.parametrize("beta", [1.0, 0.3, 5.0])
def test_cross_entropy_matches_numpy(beta):
    z = 3 * jax.random.normal(KEY, (6, 5))
    y = jnp.array([0, 1, 2, 3, 4, 0])
    np.testing.assert_allclose(L.cross_entropy(z, y, beta=beta), _np_ce(z, y, beta), rtol=1e-5, atol=1e-5)


def test_cross_entropy_stable_for_huge_logits():
    z = jnp.array([[1000.0, 0.0], [0.0, 1000.0]])
    out = L.cross_entropy(z, jnp.array([0, 0]))
    np.testing.assert_allclose(out, [0.0, 1000.0], atol=1e-3)


@pytest.mark.parametrize("beta", [1.0, 4.0])
def test_cross_entropy_logit_gradient_is_roth_eq22(beta):
    # ∇_z CE_β(y, z) = β (s^β(z) − e_y)  (Roth et al. 2019, eq. 22)
    z = jax.random.normal(KEY, (3, 4))
    y = jnp.array([1, 3, 0])
    g = jax.grad(lambda z: jnp.sum(L.cross_entropy(z, y, beta=beta)))(z)
    s = np.exp(beta * np.asarray(z, np.float64))
    s /= s.sum(1, keepdims=True)
    ref = beta * (s - np.eye(4)[np.asarray(y)])
    np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-6)


def test_margin_operator_and_cw_loss():
    z = np.array([[2.0, 1.0, -1.0], [0.5, 3.0, 2.5], [1.0, 1.0, 0.0]], np.float32)
    y = np.array([0, 0, 1])
    ref = np.array([2.0 - 1.0, 0.5 - 3.0, 1.0 - 1.0])
    np.testing.assert_allclose(L.margin(jnp.asarray(z), jnp.asarray(y)), ref)
    np.testing.assert_allclose(L.cw_margin_loss(jnp.asarray(z), jnp.asarray(y)), -ref)
    np.testing.assert_allclose(
        L.cw_margin_loss(jnp.asarray(z), jnp.asarray(y), kappa=0.5), np.maximum(-ref, -0.5))


def test_sum_of_squares_and_its_gradient_eq17():
    z = jax.random.normal(KEY, (3, 4))
    t = jax.random.normal(jax.random.PRNGKey(2), (3, 4))
    np.testing.assert_allclose(L.sum_of_squares(z, t), 0.5 * np.sum((np.asarray(z) - np.asarray(t)) ** 2, 1),
                               rtol=1e-6)
    g = jax.grad(lambda z: jnp.sum(L.sum_of_squares(z, t)))(z)
    np.testing.assert_allclose(g, np.asarray(z) - np.asarray(t), rtol=1e-6)


def test_ramp_loss_definition4():
    r = jnp.array([-3.0, -2.0, -1.0, 0.0, 0.5])
    np.testing.assert_allclose(L.ramp_loss(r, gamma=2.0), [0.0, 0.0, 0.5, 1.0, 1.0])
    z = jnp.array([[3.0, 0.0], [0.0, 1.0], [0.5, 0.0]])
    y = jnp.array([0, 0, 0])
    # margins 3 (≥γ → 0), −1 (misclassified → 1), 0.5 (→ 1 − 0.5/1 = 0.5)
    np.testing.assert_allclose(L.margin_ramp_loss(z, y, gamma=1.0), [0.0, 1.0, 0.5])


def test_adversarial_objective_signs():
    z = jax.random.normal(KEY, (4, 3))
    y = jnp.array([0, 1, 2, 0])
    ce = L.cross_entropy(z, y)
    np.testing.assert_allclose(L.adversarial_objective(z, y), ce)
    np.testing.assert_allclose(L.adversarial_objective(z, y, targeted=True), -ce)
    np.testing.assert_allclose(L.adversarial_objective(z, y, loss="cw"), -L.margin(z, y))
    np.testing.assert_allclose(L.adversarial_objective(z, y, loss="cw", targeted=True), L.margin(z, y))
    np.testing.assert_allclose(L.adversarial_objective(z, None, loss="sos", target_logits=z), 0.0)
    with pytest.raises(ValueError, match="loss"):
        L.adversarial_objective(z, y, loss="hinge")


def test_losses_are_per_example():
    z = jax.random.normal(KEY, (5, 4))
    y = jnp.array([0, 1, 2, 3, 0])
    z2 = z.at[3].set(100.0)
    for fn in (L.cross_entropy, L.margin, L.cw_margin_loss):
        a, b = np.asarray(fn(z, y)), np.asarray(fn(z2, y))
        assert a.shape == (5,)
        np.testing.assert_array_equal(np.delete(a, 3), np.delete(b, 3))
