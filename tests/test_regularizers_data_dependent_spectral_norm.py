"""Data-dependent spectral norm penalties (Roth et al. 2019, eq. 12–13) against a materialized
Jacobian and numpy's SVD, on a plain-JAX tanh MLP (no Flax)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
enable_x64 = lambda: jax.enable_x64(True)

from robustjax.regularizers.data_dependent_spectral_norm import (
    jacobian_spectral_penalty,
    sos_spectral_penalty,
)


def make_mlp(key, sizes=(6, 12, 4), dtype=jnp.float32):
    params = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        k1, k2, key = jax.random.split(key, 3)
        params.append(
            {
                "w": jax.random.normal(k1, (a, b), dtype) / np.sqrt(a),
                "b": 0.1 * jax.random.normal(k2, (b,), dtype),
            }
        )
    return params


def mlp_apply(params, x):
    h = x.reshape(x.shape[0], -1)
    for i, layer in enumerate(params):
        h = h @ layer["w"] + layer["b"]
        if i < len(params) - 1:
            h = jnp.tanh(h)
    return h


def reference_svd(params, x):
    """Per-example Jacobians materialized with jacfwd on single examples, then numpy SVD."""
    single = lambda xi: mlp_apply(params, xi[None])[0]  # noqa: E731
    jac = np.asarray(jax.jit(jax.vmap(jax.jacfwd(single)))(x))
    sig, us, vs = [], [], []
    for j in jac:
        u, s, vt = np.linalg.svd(j.reshape(j.shape[0], -1))
        sig.append(s[0])
        us.append(u[:, 0])
        vs.append(vt[0])
    return np.array(sig), np.array(us), np.array(vs)


def test_jacobian_penalty_equals_sigma_squared_from_svd():
    with enable_x64():
        params = make_mlp(jax.random.PRNGKey(0), dtype=jnp.float64)
        x = jax.random.normal(jax.random.PRNGKey(1), (4, 2, 3), jnp.float64)
        f = lambda z: mlp_apply(params, z)
        pen, v = jacobian_spectral_penalty(f, x, iters=200, key=jax.random.PRNGKey(2), reduction="none")
        sig, _, vs = reference_svd(params, x)
        np.testing.assert_allclose(np.asarray(pen), sig**2, rtol=1e-8)
        # v is the dominant right singular vector (up to sign), in the shape of x.
        assert v.shape == x.shape
        cos = np.abs(np.sum(np.asarray(v).reshape(4, -1) * vs, axis=1))
        np.testing.assert_allclose(cos, 1.0, atol=1e-8)
        mean_pen, _ = jacobian_spectral_penalty(f, x, iters=200, key=jax.random.PRNGKey(2))
        np.testing.assert_allclose(float(mean_pen), np.mean(sig**2), rtol=1e-8)


def test_sos_penalty_over_eps_squared_converges_to_sigma_squared():
    with enable_x64():
        params = make_mlp(jax.random.PRNGKey(3), dtype=jnp.float64)
        x = jax.random.normal(jax.random.PRNGKey(4), (3, 6), jnp.float64)
        f = lambda z: mlp_apply(params, z)
        sig, _, _ = reference_svd(params, x)
        errors = []
        for eps in (1e-1, 1e-2, 1e-3, 1e-4):
            pen, _ = sos_spectral_penalty(
                f, x, eps=eps, iters=200, key=jax.random.PRNGKey(5), reduction="none"
            )
            errors.append(np.max(np.abs(np.asarray(pen) / eps**2 - sig**2) / sig**2))
        assert errors[-1] < 1e-3
        assert all(b < a for a, b in zip(errors, errors[1:])), errors
        # At the paper's scale the value is the actual finite difference, not ε²σ².
        pen, v = sos_spectral_penalty(f, x, eps=1.75, iters=200, key=jax.random.PRNGKey(5),
                                      reduction="none")
        ref = np.sum((np.asarray(f(x + 1.75 * v)) - np.asarray(f(x))) ** 2, axis=1)
        np.testing.assert_allclose(np.asarray(pen), ref, rtol=1e-10)


def test_warm_start_returns_v_for_next_call():
    params = make_mlp(jax.random.PRNGKey(6))
    x = jax.random.normal(jax.random.PRNGKey(7), (3, 6))
    f = lambda z: mlp_apply(params, z)
    sig, _, _ = reference_svd(params, x)
    _, v = jacobian_spectral_penalty(f, x, iters=1, key=jax.random.PRNGKey(8))
    step = jax.jit(lambda x, v: jacobian_spectral_penalty(f, x, iters=1, v0=v, reduction="none"))
    for _ in range(100):
        pen, v = step(x, v)
    np.testing.assert_allclose(np.asarray(pen), sig**2, rtol=1e-4)


def _param_grads_with_constant_vectors(params, x, u, v, form, eps=None):
    def loss(p):
        f = lambda z: mlp_apply(p, z)
        if form == "jac":
            _, jv = jax.jvp(f, (x,), (v,))
            return jnp.mean(jnp.sum(u * jv, axis=1) ** 2)
        return jnp.mean(jnp.sum((f(x + eps * v) - f(x)) ** 2, axis=1))

    return jax.grad(loss)(params)


@pytest.mark.parametrize("form", ["jac", "sos"])
def test_gradient_flows_through_model_only(form):
    """The param-gradient equals the one with u, v (from numpy SVD) passed in as constants."""
    with enable_x64():
        params = make_mlp(jax.random.PRNGKey(9), dtype=jnp.float64)
        x = jax.random.normal(jax.random.PRNGKey(10), (3, 6), jnp.float64)
        _, us, vs = reference_svd(params, x)
        # Align the SVD's sign with the power iteration's (the penalties are sign-invariant
        # in (u, v) jointly, but fix it anyway).
        key = jax.random.PRNGKey(11)

        def penalty(p, v0):
            f = lambda z: mlp_apply(p, z)
            if form == "jac":
                return jacobian_spectral_penalty(f, x, iters=200, key=key, v0=v0)[0]
            return sos_spectral_penalty(f, x, eps=0.3, iters=200, key=key, v0=v0)[0]

        v0 = jax.random.normal(key, x.shape, x.dtype)
        g_params, g_v0 = jax.grad(penalty, argnums=(0, 1))(params, v0)
        _, v_pi = jacobian_spectral_penalty(lambda z: mlp_apply(params, z), x, iters=200, v0=v0)
        sign = np.sign(np.sum(np.asarray(v_pi) * vs, axis=1))
        ref = _param_grads_with_constant_vectors(
            params, x, jnp.asarray(us * sign[:, None]), jnp.asarray(vs * sign[:, None]), form, eps=0.3
        )
        for a, b in zip(jax.tree.leaves(g_params), jax.tree.leaves(ref)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-7, atol=1e-10)
        # The start vector gets no gradient (u and v are stop_gradient constants).
        assert np.all(np.asarray(g_v0) == 0.0)


def test_examples_are_independent():
    params = make_mlp(jax.random.PRNGKey(12))
    f = lambda z: mlp_apply(params, z)
    x = jax.random.normal(jax.random.PRNGKey(13), (4, 6))
    v0 = jax.random.normal(jax.random.PRNGKey(14), x.shape)
    x2 = x.at[2].add(1.5)
    for fn, kw in ((jacobian_spectral_penalty, {}), (sos_spectral_penalty, {"eps": 0.5})):
        p1, v1 = fn(f, x, iters=5, v0=v0, reduction="none", **kw)
        p2, v2 = fn(f, x2, iters=5, v0=v0, reduction="none", **kw)
        keep = np.array([0, 1, 3])
        np.testing.assert_allclose(np.asarray(p1)[keep], np.asarray(p2)[keep], rtol=1e-6)
        np.testing.assert_allclose(np.asarray(v1)[keep], np.asarray(v2)[keep], rtol=1e-6, atol=1e-7)
        assert not np.allclose(np.asarray(p1)[2], np.asarray(p2)[2])


def test_jit_and_reductions():
    params = make_mlp(jax.random.PRNGKey(15))
    f = lambda z: mlp_apply(params, z)
    x = jax.random.normal(jax.random.PRNGKey(16), (3, 6))
    key = jax.random.PRNGKey(17)
    run = jax.jit(lambda x, key: sos_spectral_penalty(f, x, eps=1.75, iters=10, key=key))
    pen, v = run(x, key)
    per, _ = sos_spectral_penalty(f, x, eps=1.75, iters=10, key=key, reduction="none")
    total, _ = sos_spectral_penalty(f, x, eps=1.75, iters=10, key=key, reduction="sum")
    np.testing.assert_allclose(float(pen), float(jnp.mean(per)), rtol=1e-5)
    np.testing.assert_allclose(float(total), float(jnp.sum(per)), rtol=1e-5)


def test_bad_input_raises():
    params = make_mlp(jax.random.PRNGKey(18))
    f = lambda z: mlp_apply(params, z)
    x = jnp.ones((2, 6))
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="eps"):
        sos_spectral_penalty(f, x, eps=0.0, iters=3, key=key)
    with pytest.raises(ValueError, match="eps"):
        sos_spectral_penalty(f, x, eps=-1.0, iters=3, key=key)
    with pytest.raises(ValueError, match="iters"):
        jacobian_spectral_penalty(f, x, iters=0, key=key)
    with pytest.raises(ValueError, match="key"):
        jacobian_spectral_penalty(f, x, iters=3)
    with pytest.raises(ValueError, match="v0"):
        jacobian_spectral_penalty(f, x, iters=3, v0=jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="reduction"):
        jacobian_spectral_penalty(f, x, iters=3, key=key, reduction="max")
    with pytest.raises(ValueError, match="x"):
        jacobian_spectral_penalty(f, jnp.ones((2, 6), jnp.int32), iters=3, key=key)
