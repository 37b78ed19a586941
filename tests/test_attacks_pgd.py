"""PGD: analytic linear case, an independent NumPy PGD, properties (hypothesis), trained model."""

import math
import re
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustjax.attacks import fgsm, pgd
from robustjax.core import losses as L
from robustjax.core import norms as N

KEY = jax.random.PRNGKey(0)


# ---------------------------------------------------------------- models
def mlp_params(key, d_in, hidden, k):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    return {
        "w1": jax.random.normal(k1, (d_in, hidden)) / math.sqrt(d_in),
        "b1": 0.1 * jax.random.normal(k3, (hidden,)),
        "w2": jax.random.normal(k2, (hidden, k)) / math.sqrt(hidden),
        "b2": 0.1 * jax.random.normal(k4, (k,)),
    }


def mlp_apply(p, x):
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ p["w1"] + p["b1"])
    return h @ p["w2"] + p["b2"]


# ---------------------------------------------------------------- analytic linear case
W = jax.random.normal(KEY, (6,))


def binary_linear(x):
    s = x.reshape(x.shape[0], -1) @ W
    return jnp.stack([jnp.zeros_like(s), s], axis=1)


@pytest.mark.parametrize("norm", [2, jnp.inf])
def test_pgd_linear_reaches_boundary_in_analytic_direction(norm):
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 6))
    y = jnp.zeros(3, jnp.int32)
    eps = 0.5
    out = pgd(binary_linear, x, y, eps=eps, norm=norm, step_size=0.15, steps=7,
              random_start=False, clip=None)
    w = np.asarray(W, np.float64)
    ref = eps * w / np.linalg.norm(w) if norm == 2 else eps * np.sign(w)
    np.testing.assert_allclose(np.asarray(out - x), np.broadcast_to(ref, x.shape), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- independent NumPy PGD
def numpy_pgd(p, x, y, delta0, *, eps, norm, step_size, steps, clip):
    """PGD written from the update rule with hand-derived gradients of the tanh MLP (float64)."""
    w1, b1, w2, b2 = (np.asarray(p[k], np.float64) for k in ("w1", "b1", "w2", "b2"))
    x = np.asarray(x, np.float64)
    xa = np.clip(x + np.asarray(delta0, np.float64), *clip)
    onehot = np.eye(w2.shape[1])[np.asarray(y)]
    for _ in range(steps):
        h = np.tanh(xa @ w1 + b1)
        z = h @ w2 + b2
        s = np.exp(z - z.max(1, keepdims=True))
        s /= s.sum(1, keepdims=True)
        g = ((s - onehot) @ w2.T * (1 - h**2)) @ w1.T  # ∂CE/∂x
        if norm == 2:
            xt = xa + step_size * g / np.linalg.norm(g, axis=1, keepdims=True)
            d = xt - x
            n = np.linalg.norm(d, axis=1, keepdims=True)
            xa = x + eps * d / np.maximum(eps, n)
        else:
            xt = xa + step_size * np.sign(g)
            xa = x + np.clip(xt - x, -eps, eps)
        xa = np.clip(xa, *clip)
    return xa


@pytest.mark.parametrize("norm,eps,step", [(2, 0.8, 0.25), (math.inf, 0.1, 0.03)])
def test_pgd_matches_independent_numpy_pgd(norm, eps, step):
    p = mlp_params(jax.random.PRNGKey(2), 8, 16, 4)
    x = jax.random.uniform(jax.random.PRNGKey(3), (16, 8))
    y = jax.random.randint(jax.random.PRNGKey(4), (16,), 0, 4)
    key = jax.random.PRNGKey(5)
    out = pgd(partial(mlp_apply, p), x, y, eps=eps, norm=norm, step_size=step, steps=10, key=key,
              unroll=False)  # one rolled loop compiles in a fraction of the unrolled time
    delta0 = N.sample_uniform_ball(key, x.shape, eps=eps, norm=norm)  # the start pgd draws
    ref = numpy_pgd(p, x, y, delta0, eps=eps, norm=norm, step_size=step, steps=10, clip=(0.0, 1.0))
    np.testing.assert_allclose(np.asarray(out, np.float64), ref, atol=1e-5)


# ---------------------------------------------------------------- properties
P_SMALL = mlp_params(jax.random.PRNGKey(6), 12, 8, 3)


@settings(max_examples=8, deadline=None)
@given(
    b=st.integers(1, 4),
    shape=st.sampled_from([(12,), (3, 4), (2, 3, 2)]),
    eps=st.floats(0.001, 2.0),
    steps=st.integers(1, 4),
    norm=st.sampled_from([2, math.inf]),
    clip=st.sampled_from([None, (0.0, 1.0)]),
    random_start=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_pgd_stays_in_ball_and_clip(b, shape, eps, steps, norm, clip, random_start, seed):
    kx, ky, ka = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = jax.random.uniform(kx, (b, *shape))
    y = jax.random.randint(ky, (b,), 0, 3)
    out = pgd(partial(mlp_apply, P_SMALL), x, y, eps=eps, norm=norm, step_size=eps / 2,
              steps=steps, key=ka if random_start else None, random_start=random_start, clip=clip)
    d = (np.asarray(out, np.float64) - np.asarray(x, np.float64)).reshape(b, -1)
    n = np.linalg.norm(d, ord=2 if norm == 2 else np.inf, axis=1)
    assert np.all(n <= eps * (1 + 1e-6)), (n, eps)
    if clip is not None:
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_targeted_pgd_lowers_target_loss():
    p = mlp_params(jax.random.PRNGKey(7), 10, 16, 5)
    f = partial(mlp_apply, p)
    x = jax.random.uniform(jax.random.PRNGKey(8), (32, 10))
    target = (jnp.argmax(f(x), 1) + 1) % 5
    for norm, eps in ((2, 0.5), (jnp.inf, 0.1)):
        out = pgd(f, x, target, eps=eps, norm=norm, step_size=eps / 4, steps=8,
                  random_start=False, targeted=True)
        before, after = L.cross_entropy(f(x), target), L.cross_entropy(f(out), target)
        assert np.all(np.asarray(after) < np.asarray(before))
        untargeted = pgd(f, x, target, eps=eps, norm=norm, step_size=eps / 4, steps=8,
                         random_start=False)
        assert np.all(np.asarray(L.cross_entropy(f(untargeted), target)) > np.asarray(before))


def _trained_model():
    """A 3-class tanh MLP trained by full-batch gradient descent on Gaussian blobs."""
    kc, kx = jax.random.split(jax.random.PRNGKey(9))
    centers = 0.5 + 0.2 * jax.random.normal(kc, (3, 10))
    y = jnp.repeat(jnp.arange(3), 40)
    x = jnp.clip(centers[y] + 0.08 * jax.random.normal(kx, (120, 10)), 0, 1)
    p = mlp_params(jax.random.PRNGKey(10), 10, 32, 3)

    @jax.jit
    def step(p):
        g = jax.grad(lambda p: jnp.mean(L.cross_entropy(mlp_apply(p, x), y)))(p)
        return jax.tree.map(lambda a, b: a - 0.5 * b, p, g)

    for _ in range(200):
        p = step(p)
    return p, x, y


def test_pgd_beats_fgsm_on_trained_model():
    p, x, y = _trained_model()
    f = partial(mlp_apply, p)
    assert float(jnp.mean(jnp.argmax(f(x), 1) == y)) > 0.9
    eps = 0.05
    x_fgsm = fgsm(f, x, y, eps=eps, clip=(0.0, 1.0))
    x_pgd = pgd(f, x, y, eps=eps, norm=jnp.inf, step_size=eps / 4, steps=10, key=KEY, unroll=False)
    l_fgsm = np.asarray(L.cross_entropy(f(x_fgsm), y))
    l_pgd = np.asarray(L.cross_entropy(f(x_pgd), y))
    # many examples end at the same ℓ∞ corner as FGSM (equal losses up to float rounding)
    assert np.mean(l_pgd >= l_fgsm * (1 - 1e-3) - 1e-6) > 0.85
    assert l_pgd.mean() > l_fgsm.mean()


# ---------------------------------------------------------------- options
def test_pgd_options():
    p = mlp_params(jax.random.PRNGKey(11), 6, 8, 3)
    f = partial(mlp_apply, p)
    x = jax.random.uniform(jax.random.PRNGKey(12), (5, 6))
    kw = dict(eps=0.3, norm=2, step_size=0.1, steps=4, key=KEY)
    # y=None attacks the predicted labels
    np.testing.assert_array_equal(pgd(f, x, None, **kw), pgd(f, x, jnp.argmax(f(x), 1), **kw))
    # rolled and unrolled loops compute the same thing
    np.testing.assert_allclose(pgd(f, x, None, unroll=False, **kw), pgd(f, x, None, unroll=True, **kw),
                               atol=1e-6)
    # the default unroll=None unrolls short loops fully and keeps long ones rolled (the loop is
    # a scan over `steps` whose unroll factor is the number of steps per iteration)
    from robustjax.attacks._common import UNROLL_MAX_STEPS

    def scan_unroll(**over):
        jaxpr = str(jax.make_jaxpr(lambda xx: pgd(f, xx, None, **{**kw, **over}))(x))
        return [int(u) for u in re.findall(r"unroll=(\d+)", jaxpr)]

    assert scan_unroll(steps=3) == [3]
    assert scan_unroll(steps=UNROLL_MAX_STEPS) == [UNROLL_MAX_STEPS]
    assert scan_unroll(steps=UNROLL_MAX_STEPS + 1) == [1]
    assert scan_unroll(steps=3, unroll=False) == [1]
    # temperature T: the ℓ2 direction of CE_β differs from CE_1 in general, but stays in the ball
    hot = pgd(f, x, None, temperature=0.1, **kw)
    assert np.all(np.asarray(N.l2_norm(hot - x)) <= 0.3 * (1 + 1e-6))
    # the label-free sum-of-squares loss (Roth eq. 17) moves the logits
    sos = pgd(f, x, None, loss="sos", **kw)
    assert np.all(np.asarray(L.sum_of_squares(f(sos), f(x))) > 0)
    with pytest.raises(ValueError, match="key"):
        pgd(f, x, None, eps=0.3, norm=2, step_size=0.1, steps=2)


@pytest.mark.parametrize("norm", [2, jnp.inf])
def test_pgd_examples_independent(norm):
    p = mlp_params(jax.random.PRNGKey(13), 6, 8, 3)
    f = partial(mlp_apply, p)
    x = jax.random.uniform(jax.random.PRNGKey(14), (5, 6))
    y = jnp.array([0, 1, 2, 0, 1])
    kw = dict(eps=0.3, norm=norm, step_size=0.1, steps=4, random_start=False)
    a = pgd(f, x, y, **kw)
    b = pgd(f, x.at[3].set(0.9), y.at[3].set(2), **kw)
    np.testing.assert_array_equal(np.delete(np.asarray(a), 3, 0), np.delete(np.asarray(b), 3, 0))


@pytest.mark.parametrize("norm", [2, jnp.inf])
def test_per_example_eps(norm):
    p = mlp_params(jax.random.PRNGKey(15), 6, 8, 3)
    f = partial(mlp_apply, p)
    x = jax.random.uniform(jax.random.PRNGKey(16), (4, 6))
    eps = jnp.array([0.0, 0.01, 0.1, 0.3])
    out = pgd(f, x, None, eps=eps, norm=norm, step_size=0.05, steps=3, key=KEY, clip=None)
    d = (np.asarray(out, np.float64) - np.asarray(x, np.float64))
    n = np.linalg.norm(d, ord=2 if norm == 2 else np.inf, axis=1)
    assert np.all(n <= np.asarray(eps) * (1 + 1e-6))
    assert n[0] == 0 and n[3] > 0.05
