"""Bad input raises ValueError naming the argument, also when called under an outer jax.jit."""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import attacks as A

W = jax.random.normal(jax.random.PRNGKey(0), (8, 3))
f = lambda x: x.reshape(x.shape[0], -1) @ W  # noqa: E731
X = jax.random.uniform(jax.random.PRNGKey(1), (4, 2, 2, 2))
Y = jnp.array([0, 1, 2, 0])
KEY = jax.random.PRNGKey(2)
PGD = dict(norm=2, step_size=0.1, steps=2, key=KEY)


@pytest.mark.parametrize("eps", [-0.1, float("nan"), float("inf")])
def test_bad_eps(eps):
    with pytest.raises(ValueError, match="eps"):
        A.fgm(f, X, Y, eps=eps)
    with pytest.raises(ValueError, match="eps"):
        A.pgd(f, X, Y, eps=eps, **PGD)
    with pytest.raises(ValueError, match="eps"):
        A.uniform_noise(X, key=KEY, eps=eps)


@pytest.mark.parametrize("norm", [3, "l7", None])
def test_unknown_norm(norm):
    with pytest.raises(ValueError, match="norm"):
        A.pgd(f, X, Y, eps=0.1, norm=norm, step_size=0.1, steps=2, key=KEY)
    with pytest.raises(ValueError, match="norm"):
        A.fgm(f, X, Y, eps=0.1, norm=norm)


def test_bad_step_counts():
    with pytest.raises(ValueError, match="steps"):
        A.pgd(f, X, Y, eps=0.1, norm=2, step_size=0.1, steps=0, key=KEY)
    with pytest.raises(ValueError, match="steps"):
        A.pgd(f, X, Y, eps=0.1, norm=2, step_size=0.1, steps=2.5, key=KEY)
    with pytest.raises(ValueError, match="steps"):
        A.wrm(f, X, Y, gamma=1.0, steps=0)
    with pytest.raises(ValueError, match="max_iter"):
        A.deepfool(f, X, max_iter=0)
    with pytest.raises(ValueError, match="n"):
        A.worst_of_n(f, X, Y, sampler=partial(A.gaussian_noise, sigma=0.1), n=0, key=KEY)


def test_bad_labels_and_images():
    with pytest.raises(ValueError, match="y"):
        A.pgd(f, X, Y[:3], eps=0.1, **PGD)  # mismatched batch sizes
    with pytest.raises(ValueError, match="y"):
        A.fgm(f, X, jnp.array([0, 1, 3, 0]), eps=0.1)  # label 3 with K = 3
    with pytest.raises(ValueError, match="y"):
        A.fgm(f, X, jnp.array([0, -1, 2, 0]), eps=0.1)
    with pytest.raises(ValueError, match="y"):
        A.fgm(f, X, jnp.array([0.0, 1.0, 2.0, 0.0]), eps=0.1)  # float labels
    with pytest.raises(ValueError, match="x"):
        A.fgm(f, (X * 255).astype(jnp.uint8), Y, eps=0.1)  # integer images
    with pytest.raises(ValueError, match="x"):
        A.deepfool(f, X.at[0, 0, 0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="y"):
        A.pgd(f, X, None, eps=0.1, targeted=True, **PGD)  # targeted needs targets


def test_bad_other_arguments():
    with pytest.raises(ValueError, match="gamma"):
        A.wrm(f, X, Y, gamma=0.0, steps=2)
    with pytest.raises(ValueError, match="loss"):
        A.pgd(f, X, Y, eps=0.1, loss="hinge", **PGD)
    with pytest.raises(ValueError, match="clip"):
        A.pgd(f, X, Y, eps=0.1, clip=(1.0, 0.0), **PGD)
    with pytest.raises(ValueError, match="step_size"):
        A.pgd(f, X, Y, eps=0.1, norm=2, step_size=-1.0, steps=2, key=KEY)
    with pytest.raises(ValueError, match="temperature"):
        A.pgd(f, X, Y, eps=0.1, temperature=0.0, **PGD)
    with pytest.raises(ValueError, match="unroll"):
        A.pgd(f, X, Y, eps=0.1, unroll=0, **PGD)
    with pytest.raises(ValueError, match="unroll"):
        A.wrm(f, X, Y, gamma=1.0, steps=2, unroll="yes")
    with pytest.raises(ValueError, match="overshoot"):
        A.deepfool(f, X, overshoot=-0.1)
    with pytest.raises(ValueError, match="logits_fn"):
        A.pgd(lambda x: x, X, Y, eps=0.1, **PGD)  # not [B, K]
    with pytest.raises(ValueError, match="sigma"):
        A.gaussian_noise(X, key=KEY, sigma=-1.0)
    with pytest.raises(ValueError, match="decay_length"):
        A.lrc_noise(X, key=KEY, eps=0.1, decay_length=0.0)


def test_validation_under_outer_jit():
    # static hyper-parameters and shapes are still checked while tracing
    with pytest.raises(ValueError, match="eps"):
        jax.jit(lambda x, y: A.pgd(f, x, y, eps=-1.0, **PGD))(X, Y)
    with pytest.raises(ValueError, match="y"):
        jax.jit(lambda x, y: A.pgd(f, x, y, eps=0.1, **PGD))(X, Y[:3])
    with pytest.raises(ValueError, match="x"):
        jax.jit(lambda x, y: A.fgm(f, x, y, eps=0.1))(X.astype(jnp.int32), Y)
    # value checks on traced labels are skipped (no error, no crash) — training calls attacks
    # inside a jitted step
    out = jax.jit(lambda x, y: A.pgd(f, x, y, eps=0.1, **PGD))(X, Y)
    np.testing.assert_allclose(out, A.pgd(f, X, Y, eps=0.1, **PGD), atol=1e-6)
    # a traced eps is accepted (its value is not checkable)
    out = jax.jit(lambda x, y, e: A.fgm(f, x, y, eps=e))(X, Y, 0.1)
    np.testing.assert_allclose(out, A.fgm(f, X, Y, eps=0.1), atol=1e-6)
    assert math.isfinite(float(out.sum()))
