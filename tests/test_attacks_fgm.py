"""FGM/FGSM against the analytic solution on linear models (Farnia et al. 2019, eq. 5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.attacks import fgm, fgsm

KEY = jax.random.PRNGKey(0)
W = jax.random.normal(KEY, (2, 3, 2))  # one weight per input coordinate


def binary_linear(x):
    """logits = [0, ⟨w, x⟩]: CE of label 0 increases along +w."""
    s = jnp.sum(x * W, axis=(1, 2, 3))
    return jnp.stack([jnp.zeros_like(s), s], axis=1)


X = jax.random.uniform(jax.random.PRNGKey(1), (4, 2, 3, 2))
Y = jnp.zeros(4, jnp.int32)


def test_fgm_l2_equals_eps_w_over_norm():
    eps = 0.37
    out = fgm(binary_linear, X, Y, eps=eps, norm=2, clip=None)
    w = np.asarray(W, np.float64)
    np.testing.assert_allclose(np.asarray(out - X), np.broadcast_to(eps * w / np.linalg.norm(w), X.shape),
                               rtol=1e-5, atol=1e-6)


def test_fgsm_equals_eps_sign_w():
    eps = 0.1
    out = fgsm(binary_linear, X, Y, eps=eps, clip=None)
    np.testing.assert_allclose(np.asarray(out - X), np.broadcast_to(eps * np.sign(W), X.shape), atol=1e-6)
    np.testing.assert_array_equal(out, fgm(binary_linear, X, Y, eps=eps, norm=jnp.inf, clip=None))


def test_fgm_targeted_moves_towards_target_and_clip():
    # target label 1: minimizing CE(1) also increases ⟨w, x⟩ → same direction +w
    out = fgm(binary_linear, X, jnp.ones(4, jnp.int32), eps=0.2, norm=2, targeted=True)
    ref = fgm(binary_linear, X, Y, eps=0.2, norm=2)
    np.testing.assert_allclose(out, ref, atol=1e-6)
    clipped = fgsm(binary_linear, X, Y, eps=0.5, clip=(0.0, 1.0))
    assert float(clipped.min()) >= 0.0 and float(clipped.max()) <= 1.0


def test_fgm_multiclass_linear_cw_direction():
    # K-class linear model, CW loss: ∇ₓ(max_{i≠y} z_i − z_y) = a_j − a_y for the runner-up j.
    a = jax.random.normal(jax.random.PRNGKey(3), (5, 4))
    f = lambda x: x @ a.T  # noqa: E731
    x = jax.random.normal(jax.random.PRNGKey(4), (6, 4))
    y = jnp.argmax(f(x), 1)
    out = fgm(f, x, y, eps=0.01, norm=2, loss="cw", clip=None)
    z = np.asarray(f(x))
    for i in range(6):
        zz = z[i].copy()
        zz[int(y[i])] = -np.inf
        j = int(np.argmax(zz))
        g = np.asarray(a[j] - a[int(y[i])], np.float64)
        np.testing.assert_allclose(np.asarray(out[i] - x[i]), 0.01 * g / np.linalg.norm(g), atol=1e-6)


def test_fgm_predicted_labels_and_zero_gradient():
    out_none = fgm(binary_linear, X, None, eps=0.3, norm=2)
    pred = jnp.argmax(binary_linear(X), 1)
    np.testing.assert_allclose(out_none, fgm(binary_linear, X, pred, eps=0.3, norm=2), atol=1e-7)
    const = lambda x: jnp.zeros((x.shape[0], 3)) + 0.0 * jnp.sum(x)  # noqa: E731
    out = fgm(const, X, Y, eps=0.3, norm=2)
    np.testing.assert_array_equal(out, X)


@pytest.mark.parametrize("norm", [2, jnp.inf])
def test_fgm_examples_independent(norm):
    f = lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ jnp.ones((12, 3)) * jnp.arange(3.0))  # noqa: E731
    x2 = X.at[1].add(0.3)
    a = fgm(f, X, Y, eps=0.1, norm=norm)
    b = fgm(f, x2, Y, eps=0.1, norm=norm)
    np.testing.assert_array_equal(np.delete(np.asarray(a), 1, 0), np.delete(np.asarray(b), 1, 0))
