"""SGR / GN penalties (Roth et al. 2018, eq. 11–13, 20) against independent references."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.regularizers.covariance import covariance_init, covariance_update
from robustjax.regularizers.sgr import (
    gradient_norm_penalty,
    log_likelihood_input_gradient,
    sgr_penalty,
)

enable_x64 = lambda: jax.enable_x64(True)  # noqa: E731


def init_mlp(key, sizes=(6, 5, 3), dtype=jnp.float32):
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        k1, k2, key = jax.random.split(key, 3)
        params.append({"w": jax.random.normal(k1, (a, b), dtype), "b": 0.1 * jax.random.normal(k2, (b,), dtype)})
    return params


def mlp(params, x):
    h = x.reshape(x.shape[0], -1)
    for i, layer in enumerate(params):
        h = h @ layer["w"] + layer["b"]
        if i < len(params) - 1:
            h = jnp.tanh(h)
    return h


def single_example_log_prob_grad(params, x, y):
    """∇ₓ log softmax(f(x))_y for one example at a time (a different code path: vmap of grad)."""

    def log_prob(xi, yi):
        return jax.nn.log_softmax(mlp(params, xi[None])[0])[yi]

    return jax.vmap(jax.grad(log_prob))(x, y)


def random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_identity_covariance_equals_half_squared_gradient_norm():
    params = init_mlp(jax.random.PRNGKey(0))
    f = lambda z: mlp(params, z)
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 2, 3))
    y = jnp.array([0, 1, 2, 1, 0])
    g = np.asarray(single_example_log_prob_grad(params, x, y)).reshape(5, -1)
    ref = 0.5 * np.sum(g**2, axis=1)
    np.testing.assert_allclose(np.asarray(log_likelihood_input_gradient(f, x, y)).reshape(5, -1), g,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(gradient_norm_penalty(f, x, y, reduction="none")), ref, rtol=1e-5)
    np.testing.assert_allclose(float(gradient_norm_penalty(f, x, y)), ref.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(sgr_penalty(f, x, y, covariance=jnp.eye(6))), ref.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(sgr_penalty(f, x, y, covariance=jnp.ones((2, 3)))), ref.mean(), rtol=1e-5)


def test_one_layer_softmax_closed_form():
    """SGR eq. 20: ½ (ω_y − ⟨ω⟩)ᵀ Σ (ω_y − ⟨ω⟩), ⟨ω⟩ = Σ_k φ_k ω_k, for logits ωᵀx + b."""
    with enable_x64():
        rng = np.random.default_rng(1)
        d, k, b = 7, 4, 6
        w = rng.normal(size=(d, k))
        bias = rng.normal(size=k)
        x = rng.normal(size=(b, d))
        y = rng.integers(0, k, size=b)
        sigma = random_spd(rng, d)
        f = lambda z: z @ jnp.asarray(w) + jnp.asarray(bias)
        pen = sgr_penalty(f, jnp.asarray(x), jnp.asarray(y), covariance=jnp.asarray(sigma), reduction="none")
        logits = x @ w + bias
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        ref = []
        for i in range(b):
            diff = w[:, y[i]] - w @ p[i]
            ref.append(0.5 * diff @ sigma @ diff)
        np.testing.assert_allclose(np.asarray(pen), np.array(ref), rtol=1e-10)


def test_parameter_gradient_matches_finite_differences():
    """Double backprop: d/dθ of the penalty equals central differences (float64, tiny MLP)."""
    with enable_x64():
        rng = np.random.default_rng(2)
        params = init_mlp(jax.random.PRNGKey(3), sizes=(4, 3, 3), dtype=jnp.float64)
        x = jnp.asarray(rng.normal(size=(3, 4)))
        y = jnp.array([0, 2, 1])
        sigma = jnp.asarray(random_spd(rng, 4))
        loss_xy = jax.jit(lambda p, x, y: sgr_penalty(lambda z: mlp(p, z), x, y, covariance=sigma))
        loss = lambda p: loss_xy(p, x, y)
        grads = jax.grad(loss)(params)
        flat, unravel = jax.flatten_util.ravel_pytree(params)
        gflat, _ = jax.flatten_util.ravel_pytree(grads)
        h = 1e-6
        fd = []
        for i in range(flat.size):
            e = jnp.zeros_like(flat).at[i].set(h)
            fd.append((loss(unravel(flat + e)) - loss(unravel(flat - e))) / (2 * h))
        np.testing.assert_allclose(np.asarray(gflat), np.array(fd), rtol=1e-5, atol=1e-9)
        assert np.max(np.abs(np.asarray(gflat))) > 1e-3


def test_covariance_gets_no_gradient():
    rng = np.random.default_rng(4)
    params = init_mlp(jax.random.PRNGKey(5))
    f = lambda z: mlp(params, z)
    x = jnp.asarray(rng.normal(size=(3, 6)).astype(np.float32))
    y = jnp.array([0, 1, 2])
    sigma = jnp.asarray(random_spd(rng, 6).astype(np.float32))
    g_sigma = jax.grad(lambda s: sgr_penalty(f, x, y, covariance=s))(sigma)
    assert np.all(np.asarray(g_sigma) == 0.0)
    state = covariance_update(covariance_init("full", (6,), data_variance=1.0), jnp.asarray(rng.normal(size=(8, 6)), jnp.float32))
    g_state = jax.grad(lambda s: sgr_penalty(f, x, y, covariance=s, uncentered=True), allow_int=True)(state)
    for leaf in jax.tree.leaves(g_state):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert np.all(np.asarray(leaf) == 0.0)
    mu = jnp.ones(6)
    g_mu = jax.grad(lambda m: sgr_penalty(f, x, y, covariance=sigma, mean=m))(mu)
    assert np.all(np.asarray(g_mu) == 0.0)


def test_uncentered_term_and_state_rescaling():
    rng = np.random.default_rng(6)
    params = init_mlp(jax.random.PRNGKey(7))
    f = lambda z: mlp(params, z)
    x = jnp.asarray(rng.normal(size=(4, 6)).astype(np.float32))
    y = jnp.array([0, 1, 2, 2])
    xi = rng.normal(size=(16, 6)).astype(np.float32) + 0.3
    state = covariance_update(covariance_init("full", (6,), data_variance=0.5), jnp.asarray(xi))
    moment = xi.T @ xi / 16
    s = 0.5 / np.mean(np.diag(moment))
    g = np.asarray(single_example_log_prob_grad(params, x, y))
    mu = np.sqrt(s) * xi.mean(0)
    ref = 0.5 * np.einsum("bi,ij,bj->b", g, s * moment, g) - g @ mu
    out = sgr_penalty(f, x, y, covariance=state, uncentered=True, reduction="none")
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-4, atol=1e-6)
    centered = sgr_penalty(f, x, y, covariance=state, reduction="none")
    np.testing.assert_allclose(np.asarray(centered), ref + g @ mu, rtol=1e-4, atol=1e-6)


def test_function_covariance_state_on_images_matches_dense():
    """SGR with the covariance-function state equals ½ gᵀ Σ g with its dense Σ."""
    from robustjax.regularizers.covariance import covariance_matrix

    rng = np.random.default_rng(8)
    w = jnp.asarray(rng.normal(size=(4 * 4 * 2, 3)).astype(np.float32))
    f = lambda z: jnp.tanh(z.reshape(z.shape[0], -1) @ w)
    x = jnp.asarray(rng.uniform(size=(3, 4, 4, 2)).astype(np.float32))
    y = jnp.array([0, 1, 2])
    state = covariance_update(
        covariance_init("function", (4, 4, 2), data_variance=0.2),
        jnp.asarray(rng.normal(size=(5, 4, 4, 2)).astype(np.float32)),
    )
    dense = np.asarray(covariance_matrix(state))
    g = np.asarray(log_likelihood_input_gradient(f, x, y)).reshape(3, -1)
    ref = 0.5 * np.einsum("bi,ij,bj->b", g, dense, g)
    np.testing.assert_allclose(np.asarray(sgr_penalty(f, x, y, covariance=state, reduction="none")), ref,
                               rtol=1e-4, atol=1e-7)


def test_examples_independent_and_jit():
    params = init_mlp(jax.random.PRNGKey(9))
    f = lambda z: mlp(params, z)
    x = jax.random.normal(jax.random.PRNGKey(10), (4, 6))
    y = jnp.array([0, 1, 2, 0])
    sigma = jnp.asarray(random_spd(np.random.default_rng(11), 6).astype(np.float32))
    a = sgr_penalty(f, x, y, covariance=sigma, reduction="none")
    b = sgr_penalty(f, x.at[3].add(2.0), y, covariance=sigma, reduction="none")
    np.testing.assert_allclose(np.asarray(a)[:3], np.asarray(b)[:3], rtol=1e-6)
    assert not np.isclose(float(a[3]), float(b[3]))
    jitted = jax.jit(lambda x, y, s: sgr_penalty(f, x, y, covariance=s))(x, y, sigma)
    np.testing.assert_allclose(float(jitted), float(jnp.mean(a)), rtol=1e-5)


def test_bad_input_raises():
    f = lambda z: z.reshape(z.shape[0], -1)[:, :3]
    x = jnp.ones((2, 6))
    y = jnp.array([0, 1])
    with pytest.raises(ValueError, match="covariance"):
        sgr_penalty(f, x, y, covariance=jnp.eye(5))
    with pytest.raises(ValueError, match="covariance"):
        sgr_penalty(f, x, y, covariance=covariance_init("full", (5,)))
    with pytest.raises(ValueError, match="covariance"):
        sgr_penalty(f, x, y, covariance="identity")
    with pytest.raises(ValueError, match="y"):
        sgr_penalty(f, x, jnp.array([0, 3]), covariance=jnp.eye(6))
    with pytest.raises(ValueError, match="mean"):
        sgr_penalty(f, x, y, covariance=jnp.eye(6), mean=jnp.ones(5))
    with pytest.raises(ValueError, match="reduction"):
        gradient_norm_penalty(f, x, y, reduction="max")


def test_penalties_of_a_given_gradient_match_the_penalties():
    """``*_of_gradient`` (for objectives that already hold g) equal the full penalties,
    values and parameter gradients, against the independent per-example gradient."""
    from robustjax.regularizers.sgr import gradient_norm_penalty_of_gradient, sgr_penalty_of_gradient

    rng = np.random.default_rng(11)
    params = init_mlp(jax.random.PRNGKey(3))
    x = jax.random.normal(jax.random.PRNGKey(4), (5, 6))
    y = jnp.array([0, 1, 2, 1, 0])
    state = covariance_update(covariance_init("full", (6,), data_variance=0.5),
                              jnp.asarray(rng.normal(size=(8, 6)), jnp.float32))

    def full(p):
        f = lambda z: mlp(p, z)  # noqa: E731
        return (sgr_penalty(f, x, y, covariance=state, uncentered=True)
                + gradient_norm_penalty(f, x, y))

    def given(p):
        g = single_example_log_prob_grad(p, x, y)
        return (sgr_penalty_of_gradient(g, covariance=state, uncentered=True)
                + gradient_norm_penalty_of_gradient(g))

    np.testing.assert_allclose(given(params), full(params), rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(jax.grad(given)(params)),
                    jax.tree_util.tree_leaves(jax.grad(full)(params))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        gradient_norm_penalty_of_gradient(jnp.ones((2, 3)), reduction="max")
