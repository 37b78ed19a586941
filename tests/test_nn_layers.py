"""Tests for robustjax.nn.layers: Standardize, max_pool (vs flax.linen.max_pool), LRN."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustjax.nn.layers import (
    Standardize,
    global_max_pool,
    local_response_normalization,
    max_pool,
)


# ----------------------------------------------------------------------------- Standardize
def test_standardize_matches_numpy_per_channel():
    x = np.random.default_rng(0).uniform(size=(3, 5, 4, 3)).astype(np.float32)
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    layer = Standardize(mean, std)
    variables = layer.init(jax.random.PRNGKey(0), x)
    assert variables == {} or not jax.tree_util.tree_leaves(variables)  # constants, no params
    out = np.asarray(layer.apply(variables, x))
    ref = np.empty_like(x)
    for c in range(3):
        ref[..., c] = (x[..., c] - mean[c]) / std[c]
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


def test_standardize_scalar_and_identity_default():
    x = jnp.linspace(0.0, 1.0, 24).reshape(2, 3, 4, 1)
    np.testing.assert_array_equal(Standardize().apply({}, x), x)
    np.testing.assert_allclose(Standardize(0.1307, 0.3081).apply({}, x),
                               (np.asarray(x) - 0.1307) / 0.3081, rtol=1e-6)


def test_standardize_is_hashable_with_list_arguments():
    layer = Standardize([0.5, 0.5, 0.5], [0.2, 0.2, 0.2])
    assert layer.mean == (0.5, 0.5, 0.5)
    hash(layer)


@pytest.mark.parametrize("mean,std", [(0.0, 0.0), (0.0, -1.0), (0.0, float("nan")),
                                      (float("inf"), 1.0), (0.0, [1.0, 0.0])])
def test_standardize_rejects_bad_constants(mean, std):
    with pytest.raises(ValueError, match="mean|std"):
        Standardize(mean, std)


def test_standardize_rejects_channel_mismatch():
    with pytest.raises(ValueError, match="channels"):
        Standardize((0.5, 0.5), (1.0, 1.0)).apply({}, jnp.zeros((1, 4, 4, 3)))


# -------------------------------------------------------------------------------- max_pool
def _no_ties(seed, shape):
    # A random permutation of distinct values: no two entries are equal, so every pooling
    # window has a unique maximum and both gradients are unambiguous.
    n = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    return (rng.permutation(n).astype(np.float32) / n).reshape(shape), rng


def _check_against_flax(shape, window, strides, padding, seed=0):
    x, rng = _no_ties(seed, shape)

    @jax.jit
    def both(x, ct):
        ours, vjp_ours = jax.vjp(lambda x: max_pool(x, window, strides, padding), x)
        ref, vjp_ref = jax.vjp(
            lambda x: nn.max_pool(x, window, strides=strides, padding=padding), x)
        return ours, ref, vjp_ours(ct)[0], vjp_ref(ct)[0]

    out_shape = nn.max_pool(jnp.zeros(shape), window, strides=strides, padding=padding).shape
    ct = rng.normal(size=out_shape).astype(np.float32)
    ours, ref, g_ours, g_ref = both(x, ct)
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_allclose(g_ours, g_ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape,window,padding", [
    ((2, 8, 8, 3), (2, 2), "VALID"),     # divisible: pure reshape path
    ((2, 7, 9, 2), (2, 2), "VALID"),     # remainder rows/cols dropped
    ((2, 7, 9, 2), (2, 2), "SAME"),      # -inf padding path
    ((1, 10, 6, 1), (3, 2), "SAME"),     # rectangular window
    ((2, 9, 9, 2), (3, 3), "VALID"),
])
def test_max_pool_equals_flax_nonoverlapping(shape, window, padding):
    _check_against_flax(shape, window, window, padding)


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_max_pool_overlapping_falls_back_to_flax(padding):
    _check_against_flax((2, 13, 13, 2), (3, 3), (2, 2), padding)


@settings(max_examples=6, deadline=None)
@given(h=st.integers(2, 11), w=st.integers(2, 11), k=st.integers(1, 3),
       padding=st.sampled_from(["VALID", "SAME"]), seed=st.integers(0, 2**16))
def test_max_pool_equals_flax_random_shapes(h, w, k, padding, seed):
    if padding == "VALID" and (h < k or w < k):
        return
    _check_against_flax((2, h, w, 2), (k, k), (k, k), padding, seed)


def test_max_pool_ties_gradient_is_split_but_mass_preserving():
    # Documented difference: with exact ties jnp.max splits the cotangent equally, flax's
    # select-and-scatter routes it to one position. The total per window is the same.
    x = jnp.ones((1, 2, 2, 1))
    g_ours = jax.grad(lambda x: max_pool(x, 2, 2).sum())(x)
    g_ref = jax.grad(lambda x: nn.max_pool(x, (2, 2), strides=(2, 2)).sum())(x)
    np.testing.assert_allclose(g_ours.sum(), g_ref.sum())
    np.testing.assert_allclose(g_ours, 0.25 * jnp.ones_like(x))


@pytest.mark.parametrize("shape,window,padding", [
    ((2, 8, 8, 3), (2, 2), "VALID"),
    ((2, 7, 9, 2), (2, 2), "SAME"),
    ((1, 9, 6, 2), (3, 2), "VALID"),
])
def test_max_pool_first_tie_rule_equals_flax_gradient_with_ties(shape, window, padding):
    """``ties="first"`` reproduces flax.linen.max_pool's (= PyTorch's) gradient exactly when
    windows hold several equal maxima: values quantized to 3 levels, zeros everywhere else."""
    rng = np.random.default_rng(1)
    x = (rng.integers(0, 3, size=shape) * (rng.random(shape) < 0.5)).astype(np.float32)
    ct = rng.normal(size=nn.max_pool(jnp.zeros(shape), window, strides=window, padding=padding).shape)
    ours, vjp_ours = jax.vjp(lambda x: max_pool(x, window, padding=padding, ties="first"), x)
    ref, vjp_ref = jax.vjp(lambda x: nn.max_pool(x, window, strides=window, padding=padding), x)
    np.testing.assert_array_equal(ours, ref)
    g_ours, g_ref = vjp_ours(ct.astype(np.float32))[0], vjp_ref(ct.astype(np.float32))[0]
    np.testing.assert_array_equal(g_ours, g_ref)
    # the default rule differs exactly on the tied windows (the test is not vacuous)
    g_split = jax.vjp(lambda x: max_pool(x, window, padding=padding), x)[1](ct.astype(np.float32))[0]
    assert np.any(np.abs(g_split - g_ref) > 1e-3)
    np.testing.assert_allclose(np.sum(g_split), np.sum(g_ref), rtol=1e-5)


def test_global_max_pool_first_tie_rule():
    x = jnp.zeros((2, 3, 3, 2)).at[0, 1, 1, 0].set(1.0)
    g = jax.grad(lambda x: global_max_pool(x, ties="first").sum())(x)
    ref = jax.grad(lambda x: nn.max_pool(x, (3, 3), strides=(3, 3)).sum())(x)
    np.testing.assert_array_equal(g, ref)
    assert float(g[1, 0, 0, 0]) == 1.0 and float(g.sum()) == 4.0
    with pytest.raises(ValueError, match="ties"):
        global_max_pool(x, ties="random")


def test_max_pool_jit_and_bad_arguments():
    x = jnp.arange(32.0).reshape(1, 4, 4, 2)
    np.testing.assert_array_equal(jax.jit(lambda x: max_pool(x, 2))(x),
                                  nn.max_pool(x, (2, 2), strides=(2, 2)))
    with pytest.raises(ValueError, match="padding"):
        max_pool(x, 2, 2, "FULL")
    with pytest.raises(ValueError, match="window"):
        max_pool(x, 0)
    with pytest.raises(ValueError, match="larger"):
        max_pool(x, 5)
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        max_pool(x[0], 2)
    with pytest.raises(ValueError, match="ties"):
        max_pool(x, 2, ties="last")


def test_global_max_pool():
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 5, 4, 2))
    np.testing.assert_array_equal(global_max_pool(x),
                                  np.asarray(x).reshape(3, 20, 2).max(axis=1))


# --------------------------------------------------------------------------------- LRN
def test_local_response_normalization_matches_loop():
    x = np.random.default_rng(3).normal(size=(2, 3, 3, 7)).astype(np.float32)
    r, bias, alpha, beta = 2, 1.5, 0.3, 0.75
    ref = np.empty_like(x)
    for c in range(7):
        lo, hi = max(0, c - r), min(7, c + r + 1)
        s = np.sum(x[..., lo:hi] ** 2, axis=-1)
        ref[..., c] = x[..., c] / (bias + alpha * s) ** beta
    out = local_response_normalization(jnp.asarray(x), depth_radius=r, bias=bias,
                                       alpha=alpha, beta=beta)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
