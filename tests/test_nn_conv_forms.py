"""robustjax.nn.conv_forms: every form in which the layer hands a convolution to XLA computes
exactly what ``lax.conv_general_dilated`` and its autodiff compute (float64), and on XLA:CPU the
forms keep a training step's convolutions out of YNNPACK (issue 18)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import robustjax.nn.conv as C
import robustjax.nn.conv_forms as F

DN = ("NHWC", "HWIO", "NHWC")


@pytest.fixture(scope="module", autouse=True)
def x64():
    prev = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", prev)


def _close(a, b):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-10, atol=1e-10)


GEOMETRIES_2D = [  # (strides, dilation, padding): stride/dilation on either axis, crops
    ((1, 1), (1, 1), "VALID"), ((1, 1), (1, 1), "SAME"), ((2, 2), (1, 1), "SAME"),
    ((3, 2), (2, 1), ((1, 2), (0, 1))), ((2, 1), (1, 2), ((2, 0), (1, 1))),
    ((1, 2), (2, 2), ((-1, 2), (3, -1))),
]


def _pads(x_shape, k_shape, strides, dilation, padding):
    if not isinstance(padding, str):
        return tuple(tuple(p) for p in padding)
    dk = tuple((k - 1) * d + 1 for k, d in zip(k_shape, dilation))
    return tuple(tuple(p) for p in lax.padtype_to_pads(x_shape, dk, strides, padding))


@pytest.mark.parametrize("strides, dilation, padding", GEOMETRIES_2D)
def test_ynn_declined_form_equals_the_plain_convolution(strides, dilation, padding):
    # the input dilated by 2 along the first spatial axis, window stride / kernel dilation /
    # low padding doubled, high padding 2p+1: the same products as the plain convolution
    x = jax.random.normal(jax.random.PRNGKey(5), (2, 11, 9, 3), jnp.float64)
    k = jax.random.normal(jax.random.PRNGKey(6), (3, 2, 3, 4), jnp.float64)
    pads = _pads(x.shape[1:3], k.shape[:2], strides, dilation, padding)
    ref = lax.conv_general_dilated(x, k, strides, pads, rhs_dilation=dilation, dimension_numbers=DN)
    ours = F.ynn_declined_conv(x, k, strides, pads, dilation, None)
    assert ours.shape == ref.shape
    _close(ours, ref)


@pytest.mark.parametrize("strides, dilation, padding", GEOMETRIES_2D)
def test_kernel_gradient_of_the_new_form_matches_lax_autodiff(strides, dilation, padding):
    # the parameter gradient through the layer (on CPU: the lhs-dilated kernel-gradient
    # convolution) against jax.grad of lax.conv_general_dilated, float64; plus the input
    # gradient and the forward of a >= 16-channel stride-1 layer (the declined forward form)
    x = jax.random.normal(jax.random.PRNGKey(7), (3, 10, 9, 16), jnp.float64)
    k = jax.random.normal(jax.random.PRNGKey(8), (3, 2, 16, 5), jnp.float64)
    pads = _pads(x.shape[1:3], k.shape[:2], strides, dilation, padding)
    fast = lambda a, b: C.conv(a, b, strides=strides, padding=pads, dilation=dilation)  # noqa: E731
    ref = lambda a, b: lax.conv_general_dilated(  # noqa: E731
        a, b, strides, pads, rhs_dilation=dilation, dimension_numbers=DN)
    g = jax.random.normal(jax.random.PRNGKey(9), ref(x, k).shape, jnp.float64)

    def grads(f):
        return jax.jit(jax.grad(lambda a, b: jnp.vdot(g, f(a, b)), argnums=(0, 1)))(x, k)

    _close(grads(fast), grads(ref))
    hlo = jax.jit(jax.grad(lambda b: jnp.vdot(g, fast(x, b)))).lower(k).as_text()
    if jax.default_backend() == "cpu":
        assert "lhs_dilate = [2, 1]" in hlo  # the kernel gradient took the declined form


def _convolutions_in_ynn_fusions(compiled_text):
    """Convolutions XLA:CPU placed inside YNNPACK fusions (names of the fused computations)."""
    called = set(re.findall(r'calls=%([\w.\-]+)[^\n]*"kind":"__ynn_fusion"', compiled_text))
    comps = re.split(r"\n(?=%?[\w.\-]+ [^\n]*\{\n)", compiled_text)
    found = []
    for comp in comps:
        name = comp.split(" ", 1)[0].lstrip("%")
        if name in called and "convolution(" in comp:
            found.append(name)
    return found


def test_default_compile_options_keep_training_convolutions_out_of_ynnpack():
    # A plain jax.jit parameter gradient of two >= 16-channel stride-1 layers: with the layer,
    # no convolution (forward, input or kernel gradient) reaches YNNPACK under XLA's default
    # options; with plain lax convolutions XLA:CPU gives them to YNNPACK (the test's contrast)
    if jax.default_backend() != "cpu":
        pytest.skip("XLA:CPU only")
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 14, 14, 16), jnp.float32)
    ks = [jax.random.normal(jax.random.PRNGKey(i), (3, 3, 16, 32 if i else 16), jnp.float32)
          for i in range(2)]

    def loss(conv, kk):
        h = jax.nn.relu(conv(x, kk[0]))
        return jnp.sum(conv(h, kk[1]) ** 2)

    ours = jax.jit(jax.grad(lambda kk: loss(lambda a, b: C.conv(a, b, padding="VALID"), kk)))
    plain = jax.jit(jax.grad(lambda kk: loss(
        lambda a, b: lax.conv_general_dilated(a, b, (1, 1), "VALID", dimension_numbers=DN), kk)))
    plain_text = plain.lower(ks).compile().as_text()
    if not _convolutions_in_ynn_fusions(plain_text):
        pytest.skip("this jaxlib's XLA:CPU gives no convolution to YNNPACK; nothing to keep away")
    assert _convolutions_in_ynn_fusions(ours.lower(ks).compile().as_text()) == []
    for a, b in zip(ours(ks), plain(ks)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=1e-3)


@pytest.mark.parametrize("flag, disabled", [
    (None, False),
    ("--xla_cpu_experimental_ynn_fusion_type=", True),
    ("--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT", True),
    ("--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION", False),
    ("--xla_cpu_experimental_ynn_fusion_type=-LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION", True),
    ("--xla_cpu_experimental_ynn_fusion_type=+LIBRARY_FUSION_TYPE_DOT", False),
])
def test_ynn_disabled_reads_xla_flags(monkeypatch, flag, disabled):
    # an explicit list without convolutions, or removing them from the default list, keeps
    # YNNPACK away from convolutions: then the layer emits the plain convolution
    flags = "--xla_backend_optimization_level=0" + (f" {flag}" if flag else "")
    monkeypatch.setenv("XLA_FLAGS", flags)
    assert F.ynn_disabled() is disabled


def test_kernel_gradient_of_a_3d_convolution_matches_lax_autodiff():
    # 3-D kernel gradients keep the plain canonical form (the declined form is 2-D only)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 5, 7, 3), jnp.float64)
    k = jax.random.normal(jax.random.PRNGKey(2), (3, 2, 3, 3, 4), jnp.float64)
    pads = ((1, 0), (0, 1), (2, -1))
    cfg = ((2, 1, 1), pads, (1, 2, 1), None)
    ref = lambda b: lax.conv_general_dilated(  # noqa: E731
        x, b, (2, 1, 1), pads, rhs_dilation=(1, 2, 1), dimension_numbers=("NHWDC", "HWDIO", "NHWDC"))
    g = jax.random.normal(jax.random.PRNGKey(3), ref(k).shape, jnp.float64)
    _close(F.kernel_gradient(g, x, k.shape, cfg), jax.grad(lambda b: jnp.vdot(g, ref(b)))(k))
