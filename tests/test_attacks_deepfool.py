"""DeepFool: exact distance to the nearest decision boundary of affine models, early stopping."""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.attacks import deepfool, deepfool_robustness
from robustjax.core import norms as N

A = jax.random.normal(jax.random.PRNGKey(0), (5, 3, 4))  # K=5 classes on 3x4 inputs
C = jax.random.normal(jax.random.PRNGKey(1), (5,))


def affine(x):
    return jnp.einsum("bij,kij->bk", x, A) + C


def nearest_boundary(x, candidates=None):
    """min_k |f_k − f_k0| / ‖a_k − a_k0‖ and the minimizing direction, in float64 NumPy."""
    a = np.asarray(A, np.float64).reshape(5, -1)
    c = np.asarray(C, np.float64)
    out = []
    for xi in np.asarray(x, np.float64).reshape(x.shape[0], -1):
        f = a @ xi + c
        k0 = int(np.argmax(f))
        ks = [k for k in (candidates(f) if candidates else range(5)) if k != k0]
        dists = [abs(f[k] - f[k0]) / np.linalg.norm(a[k] - a[k0]) for k in ks]
        l = ks[int(np.argmin(dists))]
        w = a[l] - a[k0]
        out.append((min(dists), w / np.linalg.norm(w)))
    return out


@pytest.mark.parametrize("overshoot", [0.02, 0.1])
def test_deepfool_affine_exact_distance(overshoot):
    x = jax.random.normal(jax.random.PRNGKey(2), (6, 3, 4))
    x_adv, r = deepfool(affine, x, overshoot=overshoot)
    ref = nearest_boundary(x)
    for i, (dist, direction) in enumerate(ref):
        ri = np.asarray(r[i], np.float64).ravel()
        np.testing.assert_allclose(np.linalg.norm(ri), (1 + overshoot) * dist, rtol=1e-4)
        # the step goes along w_l = a_l − a_k0 (towards the nearest class l)
        np.testing.assert_allclose(ri / np.linalg.norm(ri), direction, atol=1e-4)
    assert np.all(np.asarray(jnp.argmax(affine(x_adv), 1) != jnp.argmax(affine(x), 1)))
    np.testing.assert_allclose(x_adv - x, r, atol=1e-6)


def test_deepfool_num_classes_restricts_candidates():
    x = jax.random.normal(jax.random.PRNGKey(3), (6, 3, 4))
    _, r = deepfool(affine, x, overshoot=0.02, num_classes=2, max_iter=1)
    ref = nearest_boundary(x, candidates=lambda f: list(np.argsort(-f)[:2]))
    np.testing.assert_allclose(np.asarray(N.l2_norm(r)), [1.02 * d for d, _ in ref], rtol=1e-4)


def mlp(p, x):
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ p[0])
    return h @ p[1]


P = (jax.random.normal(jax.random.PRNGKey(4), (8, 16)) / math.sqrt(8),
     jax.random.normal(jax.random.PRNGKey(5), (16, 4)))


def test_deepfool_flips_mlp_and_examples_stop_independently():
    f = partial(mlp, P)
    x = jax.random.normal(jax.random.PRNGKey(6), (8, 8))
    x_adv, r = deepfool(f, x, max_iter=50)
    assert np.all(np.asarray(jnp.argmax(f(x_adv), 1) != jnp.argmax(f(x), 1)))
    # perturbing (and possibly slowing down) example 5 does not change the others
    x2 = x.at[5].multiply(3.0)
    x_adv2, r2 = deepfool(f, x2, max_iter=50)
    np.testing.assert_array_equal(np.delete(np.asarray(r), 5, 0), np.delete(np.asarray(r2), 5, 0))
    # max_iter=1 takes exactly one linearized step per example
    _, r1 = deepfool(f, x, max_iter=1)
    assert np.all(np.asarray(N.l2_norm(r1)) > 0)


def test_deepfool_robustness_is_mean_ratio():
    f = partial(mlp, P)
    x = jax.random.normal(jax.random.PRNGKey(7), (5, 8))
    _, r = deepfool(f, x)
    ref = np.mean(np.linalg.norm(np.asarray(r), axis=1) / np.linalg.norm(np.asarray(x), axis=1))
    np.testing.assert_allclose(deepfool_robustness(f, x), ref, rtol=1e-5)


def test_deepfool_clip_keeps_range():
    f = partial(mlp, P)
    x = jax.random.uniform(jax.random.PRNGKey(8), (4, 8))
    x_adv, r = deepfool(f, x, clip=(0.0, 1.0))
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    np.testing.assert_allclose(r, x_adv - x, atol=1e-7)
