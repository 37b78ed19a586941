"""Tests of the global spectral penalty (Yoshida & Miyato; Roth et al. 2019 eq. 10), plain JAX."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.core.power import conv_apply
from robustjax.regularizers.global_spectral_norm import (
    DENSE,
    ConvGeometry,
    global_spectral_penalty,
    global_spectral_state_init,
    layer_spectral_norms,
)


def _conv_matrix(kernel, geometry):
    """Differentiable explicit operator matrix [D_out, D_in] of a conv layer."""
    d = int(np.prod(geometry.input_shape))
    basis = jnp.eye(d, dtype=kernel.dtype).reshape((d,) + geometry.input_shape)
    out = conv_apply(basis, kernel, strides=geometry.strides, padding=geometry.padding,
                     dilation=geometry.dilation)
    return out.reshape(d, -1).T


def _layers(seed=0):
    rng = np.random.default_rng(seed)
    k = lambda *s: jnp.asarray(rng.normal(size=s) / np.sqrt(np.prod(s[:-1])), jnp.float32)  # noqa
    # stride-1 SAME convolutions often have a near-degenerate top singular value (then u, v
    # and the gradient are not unique); this kernel/input pair has sigma_2/sigma_1 = 0.89
    k0 = jnp.asarray(np.random.default_rng(2).normal(size=(3, 3, 2, 4)) / np.sqrt(18), jnp.float32)
    return [
        (k0, ConvGeometry((4, 3, 2), strides=1, padding="SAME")),
        (k(3, 3, 4, 3), ConvGeometry((6, 6, 4), strides=2, padding=((1, 0), (0, 1)))),
        (k(12, 5), DENSE),
        (k(5, 3), DENSE),
    ]


def _exact_sigma(kernel, geometry):
    mat = kernel if not isinstance(geometry, ConvGeometry) else _conv_matrix(kernel, geometry)
    return jnp.linalg.svd(mat, compute_uv=False)[0]


def test_penalty_matches_explicit_svd_and_gradient():
    layers = _layers()
    lam = 0.3
    state = global_spectral_state_init(layers, key=jax.random.PRNGKey(0), iters=500)
    kernels = [k for k, _ in layers]
    geoms = [g for _, g in layers]

    def pen(ks):
        return global_spectral_penalty(list(zip(ks, geoms)), state, lam=lam, iters=1)

    (p, new_state), g = jax.jit(jax.value_and_grad(pen, has_aux=True))(kernels)
    exact = [float(_exact_sigma(k, geo)) for k, geo in layers]
    np.testing.assert_allclose(p, 0.5 * lam * np.sum(np.square(exact)), rtol=1e-3)

    def ref(ks):  # λ/2 Σ σ_max² with σ from a differentiable SVD of the explicit operator
        return 0.5 * lam * sum(_exact_sigma(k, geo) ** 2 for k, geo in zip(ks, geoms))

    g_ref = jax.jit(jax.grad(ref))(kernels)
    for a, b in zip(g, g_ref):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4 * float(jnp.max(jnp.abs(b))))
    # dense layer: gradient is λ σ u vᵀ (Roth eq. 10 discussion); kernel [in, out] = (u vᵀ)ᵀ
    k = np.asarray(kernels[2], np.float64)
    uu, ss, vt = np.linalg.svd(k.T)
    np.testing.assert_allclose(g[2], lam * ss[0] * np.outer(uu[:, 0], vt[0]).T, rtol=2e-3, atol=1e-5)
    assert len(new_state) == 4 and all(a.shape == b.shape for a, b in zip(new_state, state))


def test_one_iteration_per_step_converges_through_state():
    layers = _layers(1)
    state = global_spectral_state_init(layers, key=jax.random.PRNGKey(0), iters=1)
    step = jax.jit(lambda ls, st: layer_spectral_norms(ls, st, iters=1))
    for _ in range(300):
        sigmas, state = step(layers, state)
    exact = [float(_exact_sigma(k, g)) for k, g in layers]
    np.testing.assert_allclose(sigmas, exact, rtol=1e-3)


def test_zero_lambda_and_zero_kernel():
    layers = [(jnp.zeros((4, 3)), "dense"), (jnp.zeros((3, 3, 1, 2)), ConvGeometry((5, 5, 1)))]
    state = global_spectral_state_init(layers, key=jax.random.PRNGKey(0))
    (p, _), g = jax.value_and_grad(
        lambda ks: global_spectral_penalty([(ks[0], DENSE), (ks[1], layers[1][1])], state, lam=1.0),
        has_aux=True)([k for k, _ in layers])
    assert float(p) == 0.0
    assert all(np.all(np.isfinite(a)) for a in g)
    p0, _ = global_spectral_penalty(layers, state, lam=0.0)
    assert float(p0) == 0.0


def test_bad_arguments():
    layers = _layers()
    state = global_spectral_state_init(layers, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="lam"):
        global_spectral_penalty(layers, state, lam=-1.0)
    with pytest.raises(ValueError, match="iters"):
        global_spectral_penalty(layers, state, lam=1.0, iters=0)
    with pytest.raises(ValueError, match="state"):
        global_spectral_penalty(layers, state[:2], lam=1.0)
    with pytest.raises(ValueError, match="padding"):
        ConvGeometry((6, 6, 2), padding="FULL")
    with pytest.raises(ValueError, match="input_shape"):
        global_spectral_state_init([(jnp.ones((3, 3, 2, 4)), ConvGeometry((6, 2)))], key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="channels"):
        global_spectral_state_init([(jnp.ones((3, 3, 2, 4)), ConvGeometry((6, 6, 3)))], key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="geometry"):
        global_spectral_state_init([(jnp.ones((3, 4)), "conv")], key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="layers"):
        global_spectral_penalty([], (), lam=1.0)


def test_module_does_not_import_flax():
    code = ("import sys; import robustjax.regularizers.global_spectral_norm; "
            "bad = [m for m in ('flax', 'optax') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
