"""Singular values of strided/padded convolutions against explicit operator matrices + numpy SVD.

The reference matrix is built by applying ``flax.linen.Conv`` (the layer itself, float64) to
every basis vector of the input space; ``numpy.linalg.svd`` gives the ground truth.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.nn.conv_spectrum import (
    conv_frobenius_norm,
    conv_singular_values,
    conv_singular_values_exact,
    conv_singular_values_polyphase,
)


def layer_matrix(kernel, input_shape, *, strides=1, padding="SAME", dilation=1, input_dilation=1, groups=1):
    """``[D_out, D_in]`` matrix of ``nn.Conv`` (no bias) on inputs of ``input_shape``."""
    kernel = np.asarray(kernel, np.float64)
    n = kernel.ndim - 2
    conv = nn.Conv(kernel.shape[-1], kernel.shape[:n], strides=strides, padding=padding,
                   kernel_dilation=dilation, input_dilation=input_dilation,
                   feature_group_count=groups, use_bias=False, dtype=jnp.float64, param_dtype=jnp.float64)
    d = int(np.prod(input_shape))
    with jax.enable_x64(True):
        basis = jnp.eye(d, dtype=jnp.float64).reshape((d,) + tuple(input_shape))
        out = conv.apply({"params": {"kernel": jnp.asarray(kernel)}}, basis)
    return np.asarray(out, np.float64).reshape(d, -1).T


def svd(mat):
    return np.linalg.svd(mat, compute_uv=False)


def kernel(shape, seed):
    return np.random.default_rng(seed).normal(size=shape)


EXACT_CASES = [
    # (kernel shape, input shape, geometry)
    ((3, 3, 2, 3), (7, 9, 2), dict(strides=(2, 3), padding="SAME")),
    ((3, 3, 1, 4), (8, 8, 1), dict(strides=2, padding="VALID")),
    ((2, 3, 3, 2), (6, 7, 3), dict(strides=2, padding=((1, 0), (2, 1)))),
    ((3, 3, 2, 2), (8, 8, 2), dict(strides=2, padding="CIRCULAR")),
    ((3, 3, 2, 2), (6, 6, 2), dict(strides=1, padding="REFLECT")),
    ((3, 3, 2, 4), (8, 8, 4), dict(strides=2, padding="SAME", dilation=2, groups=2)),
    ((3, 3, 3, 8), (5, 5, 3), dict(strides=1, padding="SAME")),  # D_in < D_out
    ((3, 3, 4, 1), (6, 6, 4), dict(strides=3, padding="SAME")),  # D_in > D_out
    ((3, 3, 2, 2), (4, 4, 2), dict(strides=1, padding=((1, 1), (2, 0)), input_dilation=2)),
    ((3, 2, 1), (10, 2), dict(strides=2, padding="SAME")),  # 1-D
]


def _geom(g):
    g = dict(g)
    return dict(strides=g.get("strides", 1), padding=g["padding"], dilation=g.get("dilation", 1),
                input_dilation=g.get("input_dilation", 1), feature_group_count=g.get("groups", 1))


@pytest.mark.parametrize("kshape,shape,g", EXACT_CASES)
def test_exact_matrix_spectrum_matches_explicit_svd(kshape, shape, g):
    k = kernel(kshape, seed=len(shape) + kshape[-1])
    ref = svd(layer_matrix(k, shape, **g))
    got = conv_singular_values_exact(k, shape, **_geom(g), chunk=48)  # chunk: exercises the padding
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-9 * ref[0])
    spec = conv_singular_values(k, shape, **_geom(g))
    assert spec.method == "exact-matrix" and spec.exact
    np.testing.assert_allclose(spec.std, np.std(ref), rtol=1e-9, atol=1e-12 * ref[0])
    np.testing.assert_allclose(spec.frobenius, np.linalg.norm(layer_matrix(k, shape, **g)), rtol=1e-9)


CIRCULAR_CASES = [
    ((3, 3, 2, 3), (8, 8, 2), dict(strides=2)),
    ((3, 3, 2, 5), (6, 9, 2), dict(strides=(2, 3))),
    ((4, 4, 3, 2), (8, 8, 3), dict(strides=2, dilation=2)),
    ((3, 3, 2, 4), (8, 8, 4), dict(strides=2, groups=2)),
    ((5, 5, 1, 2), (4, 4, 1), dict(strides=2)),  # kernel wider than the input: taps wrap around
    ((3, 3, 3, 4), (6, 5, 3), dict(strides=1)),
    ((3, 4, 1), (12, 4), dict(strides=3)),  # 1-D
]


@pytest.mark.parametrize("kshape,shape,g", CIRCULAR_CASES)
def test_circular_spectrum_matches_explicit_svd(kshape, shape, g):
    k = kernel(kshape, seed=kshape[0] + kshape[-1])
    g = dict(g, padding="CIRCULAR")
    mat = layer_matrix(k, shape, **g)
    ref = svd(mat)
    geo = _geom(g)
    got = conv_singular_values_polyphase(k, shape[:-1], strides=geo["strides"], dilation=geo["dilation"],
                                         feature_group_count=geo["feature_group_count"])
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-9 * ref[0])
    spec = conv_singular_values(k, shape, **geo, max_dim=1)  # force the circular path
    strided = any(s > 1 for s in np.broadcast_to(geo["strides"], (len(shape) - 1,)))
    assert spec.method == ("polyphase-circular" if strided else "fft-circular") and spec.exact
    np.testing.assert_allclose(spec.values, ref, atol=1e-9 * ref[0])
    if max(kshape[:-2]) * geo["dilation"] <= min(shape[:-1]):  # otherwise taps collide
        np.testing.assert_allclose(spec.frobenius, np.linalg.norm(mat), rtol=1e-9)


def test_circular_approximation_of_zero_padding_is_flagged():
    k = kernel((3, 3, 2, 3), seed=3)
    shape = (8, 8, 2)
    approx = conv_singular_values(k, shape, strides=2, padding="SAME", max_dim=1)
    assert approx.method == "polyphase-circular" and not approx.exact
    circ = svd(layer_matrix(k, shape, strides=2, padding="CIRCULAR"))
    np.testing.assert_allclose(approx.values, circ, atol=1e-9 * circ[0])
    # ... and it differs from the exact zero-padded spectrum, which the Frobenius norm still is
    zero = layer_matrix(k, shape, strides=2, padding="SAME")
    assert abs(approx.std - np.std(svd(zero))) > 1e-3
    np.testing.assert_allclose(approx.frobenius, np.linalg.norm(zero), rtol=1e-9)
    assert conv_singular_values(k, (9, 8, 2), strides=2, max_dim=1).method == "unavailable"


@pytest.mark.parametrize("g", [dict(strides=2, padding="VALID"), dict(strides=(1, 2), padding=((2, 0), (0, 1)), dilation=2),
                               dict(strides=1, padding=((1, 1), (2, 0)), input_dilation=2)])
def test_frobenius_norm_zero_padding(g):
    k = kernel((3, 3, 2, 3), seed=11)
    shape = (7, 8, 2)
    np.testing.assert_allclose(conv_frobenius_norm(k, shape, **_geom(g)),
                               np.linalg.norm(layer_matrix(k, shape, **g)), rtol=1e-9)


def test_zero_kernel_and_bad_input():
    z = np.zeros((3, 3, 2, 2))
    assert np.all(conv_singular_values_exact(z, (4, 4, 2)) == 0)
    assert np.all(conv_singular_values_polyphase(z, (4, 4), strides=2) == 0)
    with pytest.raises(ValueError, match="max_dim"):
        conv_singular_values_exact(kernel((3, 3, 2, 2), 0), (8, 8, 2), max_dim=10)
    with pytest.raises(ValueError, match="strides"):
        conv_singular_values_polyphase(z, (5, 4), strides=2)
    with pytest.raises(ValueError, match="input_shape"):
        conv_singular_values(z, (4, 4, 3))
    with pytest.raises(ValueError, match="input_hw"):
        conv_singular_values_polyphase(z, (4,), strides=2)
