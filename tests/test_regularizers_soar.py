"""SOAR (Ma et al. 2020, eq. 9–12) against the closed forms of logistic regression (§4.1)."""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.regularizers.soar import soar_evaluation_point, soar_penalty

enable_x64 = lambda: jax.enable_x64(True)  # noqa: E731


def logistic(w):
    """Binary logistic regression as a 2-logit softmax model: P(y=1|x) = σ(wᵀx)."""
    w = jnp.asarray(w)

    def logits_fn(x):
        s = x.reshape(x.shape[0], -1) @ w
        return jnp.stack([jnp.zeros_like(s), s], axis=1)

    return logits_fn


def closed_form_hz(w, x, y, z):
    """H z from ∇ℓ = r w, ∇²ℓ = u w wᵀ (SOAR §4.1), r = f − y, u = f(1 − f)."""
    b = x.shape[0]
    xf = x.reshape(b, -1)
    d = xf.shape[1]
    f = 1.0 / (1.0 + np.exp(-(xf @ w)))
    r = f - y
    u = f * (1 - f)
    z_d, z_1 = z[:, :d], z[:, d]
    top = (u * (z_d @ w))[:, None] * w[None] + (z_1 * r)[:, None] * w[None]
    last = r * (z_d @ w) + z_1
    return np.sqrt(np.sum(top**2, axis=1) + last**2)


def _problem(rng, b=5, shape=(3, 2)):
    d = math.prod(shape)
    w = rng.normal(size=d)
    x = rng.uniform(size=(b,) + shape)
    y = rng.integers(0, 2, size=b)
    z = rng.normal(size=(b, d + 1))
    return w, x, y, z, d


def test_exact_hvp_matches_logistic_closed_form():
    with enable_x64():
        rng = np.random.default_rng(0)
        w, x, y, z, d = _problem(rng)
        eps = 8 / 255
        out = soar_penalty(logistic(w), jnp.asarray(x), jnp.asarray(y), eps=eps, hvp="exact",
                           z=jnp.asarray(z), norm_clip=None, reduction="none")
        ref = (d * eps**2 + 1) / 2 * closed_form_hz(w, x, y, z)
        np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-10)
        # ℓ2 balls need no √d relaxation: (ε² + 1)/2.
        out2 = soar_penalty(logistic(w), jnp.asarray(x), jnp.asarray(y), eps=0.5, hvp="exact", norm=2,
                            z=jnp.asarray(z), norm_clip=None, reduction="none")
        np.testing.assert_allclose(np.asarray(out2), (0.25 + 1) / 2 * closed_form_hz(w, x, y, z), rtol=1e-10)


def test_finite_difference_converges_to_exact_as_alpha_vanishes():
    with enable_x64():
        rng = np.random.default_rng(1)
        w, x, y, z, d = _problem(rng)
        w = 3 * w  # enough curvature for the FD error to be visible
        eps = 0.1
        ref = (d * eps**2 + 1) / 2 * closed_form_hz(w, x, y, z)
        errors = []
        for alpha in (1.0, 1e-1, 1e-2, 1e-3, 1e-4):
            out = soar_penalty(logistic(w), jnp.asarray(x), jnp.asarray(y), eps=eps, alpha=alpha,
                               key=jax.random.PRNGKey(2), z=jnp.asarray(z), norm_clip=None,
                               reduction="none")
            errors.append(np.max(np.abs(np.asarray(out) - ref) / ref))
        assert errors[-1] < 1e-3, errors
        assert errors[0] > 10 * errors[-1], errors
        assert all(b < a for a, b in zip(errors, errors[1:])), errors
        # With an explicit h, FD equals the closed-form finite difference of the gradient.
        h = 0.3
        out = soar_penalty(logistic(w), jnp.asarray(x), jnp.asarray(y), eps=eps, h=h,
                           z=jnp.asarray(z), norm_clip=None, reduction="none")
        xf = x.reshape(5, -1)
        zt = z[:, :d] / np.linalg.norm(z[:, :d], axis=1, keepdims=True)
        sig = lambda s: 1 / (1 + np.exp(-s))  # noqa: E731
        r0 = sig(xf @ w) - y
        r1 = sig((xf + h * zt) @ w) - y
        fd = (np.linalg.norm(z[:, :d], axis=1) * (r1 - r0) / h)[:, None] * w + (z[:, d] * r0)[:, None] * w
        last = r0 * (z[:, :d] @ w) + z[:, d]
        ref_h = (d * eps**2 + 1) / 2 * np.sqrt(np.sum(fd**2, axis=1) + last**2)
        np.testing.assert_allclose(np.asarray(out), ref_h, rtol=1e-10)


def test_norm_clip_and_its_gradient():
    with enable_x64():
        rng = np.random.default_rng(3)
        w, x, y, z, d = _problem(rng)
        w = 10 * w
        hz = closed_form_hz(w, x, y, z)
        clip = float(np.median(hz))
        f = logistic(w)

        def pen(xx):
            return soar_penalty(f, xx, jnp.asarray(y), eps=0.1, hvp="exact", z=jnp.asarray(z),
                                norm_clip=clip, reduction="none")

        out = np.asarray(pen(jnp.asarray(x)))
        np.testing.assert_allclose(out, (d * 0.01 + 1) / 2 * np.minimum(hz, clip), rtol=1e-10)
        # Clipped examples get zero parameter gradient; unclipped ones do not.
        def per_w(wv, i):
            return soar_penalty(logistic(wv), jnp.asarray(x), jnp.asarray(y), eps=0.1, hvp="exact",
                                z=jnp.asarray(z), norm_clip=clip, reduction="none")[i]

        for i in range(5):
            gw = np.asarray(jax.grad(per_w)(jnp.asarray(w), i))
            if hz[i] > clip:
                assert np.all(gw == 0.0)
            elif hz[i] < clip:
                assert np.any(gw != 0.0)


def test_parameter_gradient_matches_finite_differences():
    with enable_x64():
        rng = np.random.default_rng(4)
        w, x, y, z, d = _problem(rng, b=3, shape=(4,))
        for hvp in ("exact", "fd"):
            loss = jax.jit(lambda wv, x: soar_penalty(logistic(wv), x, jnp.asarray(y), eps=0.2, hvp=hvp,
                                                      h=0.05, z=jnp.asarray(z), norm_clip=None))
            g = np.asarray(jax.grad(loss)(jnp.asarray(w), jnp.asarray(x)))
            fd = []
            for i in range(d):
                e = np.zeros(d)
                e[i] = 1e-6
                fd.append((loss(jnp.asarray(w + e), jnp.asarray(x)) - loss(jnp.asarray(w - e), jnp.asarray(x))) / 2e-6)
            np.testing.assert_allclose(g, np.array(fd), rtol=1e-5, atol=1e-9)


def test_a_given_input_gradient_gives_the_same_penalty_and_parameter_gradient():
    # grad= (the SOAR objective passes ∇ℓ(x) from its cross-entropy backward pass): same value
    # and, through double backprop, the same parameter gradient, for both HVP methods (float64).
    with enable_x64():
        rng = np.random.default_rng(6)
        w, x, y, z, d = _problem(rng, b=4, shape=(3, 2))
        x, y, z = jnp.asarray(x), jnp.asarray(y), jnp.asarray(z)

        @partial(jax.jit, static_argnums=(1, 2))
        def penalty(wv, hvp, given):
            f = logistic(wv)
            g = jax.grad(lambda v: jnp.sum(jax.vmap(lambda l, t: -jax.nn.log_softmax(l)[t])(f(v), y)))(x)
            return soar_penalty(f, x, y, eps=0.2, hvp=hvp, h=0.05, z=z, norm_clip=None,
                                grad=g if given else None)

        for hvp in ("fd", "exact"):
            np.testing.assert_allclose(penalty(jnp.asarray(w), hvp, True),
                                       penalty(jnp.asarray(w), hvp, False), rtol=1e-12)
            grad = jax.jit(jax.grad(penalty), static_argnums=(1, 2))
            np.testing.assert_allclose(grad(jnp.asarray(w), hvp, True),
                                       grad(jnp.asarray(w), hvp, False), rtol=1e-10)
            # and it is really used: a zero gradient gives another value
            other = soar_penalty(logistic(w), x, y, eps=0.2, hvp=hvp, h=0.05, z=z, norm_clip=None,
                                 grad=jnp.zeros_like(x))
            assert abs(float(other) - float(penalty(jnp.asarray(w), hvp, False))) > 1e-3
        with pytest.raises(ValueError, match="grad"):
            soar_penalty(logistic(w), x, y, eps=0.2, h=0.05, z=z, grad=jnp.zeros((4, 6)))


def test_random_directions_and_examples_independent():
    rng = np.random.default_rng(5)
    w, x, y, z, d = _problem(rng, b=4)
    f = logistic(w.astype(np.float32))
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y)
    key = jax.random.PRNGKey(6)
    a = soar_penalty(f, x, y, eps=8 / 255, alpha=8 / 255, key=key, reduction="none")
    b = soar_penalty(f, x.at[1].add(0.5), y, eps=8 / 255, alpha=8 / 255, key=key, reduction="none")
    np.testing.assert_allclose(np.asarray(a)[[0, 2, 3]], np.asarray(b)[[0, 2, 3]], rtol=1e-5)
    assert not np.isclose(float(a[1]), float(b[1]))
    # Mean over many random z approximates (dε²+1)/2 · ‖H‖_F (eq. 8) with exact HVPs.
    with enable_x64():
        x64 = jnp.asarray(np.asarray(x), jnp.float64)
        xf = np.asarray(x64).reshape(4, -1)
        s = 1 / (1 + np.exp(-(xf @ w)))
        r, u = s - np.asarray(y), s * (1 - s)
        i = 0
        hmat = np.zeros((d + 1, d + 1))
        hmat[:d, :d] = u[i] * np.outer(w, w)
        hmat[:d, d] = hmat[d, :d] = r[i] * w
        hmat[d, d] = 1
        xs = jnp.repeat(x64[:1], 4000, axis=0)
        ys = jnp.repeat(y[:1], 4000)
        vals = soar_penalty(logistic(w), xs, ys, eps=0.0 + 1e-8, hvp="exact", key=jax.random.PRNGKey(7),
                            norm_clip=None, reduction="none")
        est = 2 * float(np.mean(np.asarray(vals)))  # ≈ E‖Hz‖ ≈ ‖H‖_F (up to the mean of a χ)
        fro = np.linalg.norm(hmat)
        assert 0.8 * fro < est < 1.05 * fro


def test_evaluation_points():
    rng = np.random.default_rng(8)
    w = rng.normal(size=6).astype(np.float32)
    f = logistic(w)
    x = jnp.asarray(rng.uniform(0.2, 0.8, size=(5, 6)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 2, size=5))
    key = jax.random.PRNGKey(9)
    eps = 0.1
    np.testing.assert_array_equal(np.asarray(soar_evaluation_point(f, x, y, init="zero", eps=eps)), np.asarray(x))
    xr = np.asarray(soar_evaluation_point(f, x, y, init="random", eps=eps, key=key))
    assert np.max(np.abs(xr - np.asarray(x))) <= eps + 1e-6
    assert np.std(xr - np.asarray(x)) > eps / 4  # uniform in the box, not a point
    xp = np.asarray(soar_evaluation_point(f, x, y, init="pgd1", eps=eps, key=key))
    delta = xp - np.asarray(x)
    assert np.max(np.abs(delta)) <= eps + 1e-6
    # Linear model: after a full sign step of size ε from anywhere in the box, every coordinate
    # sits on the ascent side of x: delta_i · sign(∂ℓ/∂x_i) ≥ 0, i.e. the loss went up.
    direction = np.sign(np.where(np.asarray(y)[:, None] == 1, -1.0, 1.0) * w[None])
    assert np.all(delta * direction >= -1e-6)
    loss = lambda z: -jax.nn.log_softmax(f(z))[jnp.arange(5), y]  # noqa: E731
    assert np.all(np.asarray(loss(jnp.asarray(xp))) >= np.asarray(loss(x)))
    # Clipped to the data range.
    xc = np.asarray(soar_evaluation_point(f, jnp.zeros((5, 6)), y, init="pgd1", eps=eps, key=key))
    assert xc.min() >= 0.0
    # The evaluation point is a constant: no gradient to the parameters.
    gw = jax.grad(lambda wv: jnp.sum(soar_evaluation_point(logistic(wv), x, y, init="pgd1", eps=eps, key=key)))(
        jnp.asarray(w))
    assert np.all(np.asarray(gw) == 0.0)


def test_bad_input_raises():
    f = logistic(np.ones(4, np.float32))
    x = jnp.full((2, 4), 0.5)
    y = jnp.array([0, 1])
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="eps"):
        soar_penalty(f, x, y, eps=0.0, alpha=0.1, key=key)
    with pytest.raises(ValueError, match="eps"):
        soar_penalty(f, x, y, eps=-0.1, alpha=0.1, key=key)
    with pytest.raises(ValueError, match="alpha"):
        soar_penalty(f, x, y, eps=0.1, alpha=0.0, key=key)
    with pytest.raises(ValueError, match="alpha"):
        soar_penalty(f, x, y, eps=0.1, key=key)
    with pytest.raises(ValueError, match="hvp"):
        soar_penalty(f, x, y, eps=0.1, alpha=0.1, key=key, hvp="lanczos")
    with pytest.raises(ValueError, match="norm_clip"):
        soar_penalty(f, x, y, eps=0.1, alpha=0.1, key=key, norm_clip=-1.0)
    with pytest.raises(ValueError, match="key"):
        soar_penalty(f, x, y, eps=0.1, alpha=0.1)
    with pytest.raises(ValueError, match="z"):
        soar_penalty(f, x, y, eps=0.1, alpha=0.1, key=key, z=jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="norm"):
        soar_penalty(f, x, y, eps=0.1, alpha=0.1, key=key, norm=3)
    with pytest.raises(ValueError, match="y"):
        soar_penalty(f, x, jnp.array([0, 2]), eps=0.1, alpha=0.1, key=key)
    with pytest.raises(ValueError, match="init"):
        soar_evaluation_point(f, x, y, init="pgd7", eps=0.1, key=key)
    with pytest.raises(ValueError, match="eps"):
        soar_evaluation_point(f, x, y, init="random", eps=0.0, key=key)
    with pytest.raises(ValueError, match="key"):
        soar_evaluation_point(f, x, y, init="random", eps=0.1)
