"""robustjax.nn.conv: the custom-derivative convolution equals lax.conv_general_dilated under
every transformation the library uses (reference: plain JAX autodiff of the lax convolution,
compared in float64 so that only a wrong formula, not rounding, can make a test fail)."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import robustjax.nn.conv as C
from robustjax.nn import create

DN = ("NHWC", "HWIO", "NHWC")

# (H, W, C_in, C_out, kernel, strides, padding, dilation): every geometry of the zoo (3x3 VALID
# and SAME, explicit (1, 1) pads, strided ResNet/ELU-Net convs, 1x1 shortcut-like convs, large
# kernels) plus asymmetric pads and dilation; C_in >= 16 exercises the YNNPACK-declined forward form (conv_forms).
CASES = [
    (9, 8, 3, 4, (3, 3), (1, 1), "VALID", (1, 1)),
    (9, 8, 16, 5, (3, 3), (1, 1), "VALID", (1, 1)),
    (8, 7, 16, 4, (3, 3), (1, 1), "SAME", (1, 1)),
    (9, 9, 3, 4, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),
    (9, 8, 17, 4, (3, 2), (1, 1), ((2, 1), (0, 3)), (2, 1)),
    (10, 10, 16, 4, (3, 3), (2, 1), "VALID", (1, 2)),
    (8, 8, 4, 6, (1, 1), (2, 2), "VALID", (1, 1)),
    (12, 12, 2, 4, (8, 8), (2, 2), "SAME", (1, 1)),
]


@pytest.fixture(scope="module", autouse=True)
def x64():
    prev = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", prev)


def _data(case, seed=0):
    h, w, c, o, k, *_ = case
    ks = jax.random.split(jax.random.PRNGKey(seed), 6)
    x = jax.random.normal(ks[0], (2, h, w, c), jnp.float64)
    kern = jax.random.normal(ks[1], k + (c, o), jnp.float64)
    return ks, x, kern


def _fns(case):
    *_, strides, padding, dilation = case
    fast = lambda x, k: C.conv(x, k, strides=strides, padding=padding, dilation=dilation)  # noqa: E731
    ref = lambda x, k: lax.conv_general_dilated(  # noqa: E731
        x, k, strides, padding, rhs_dilation=dilation, dimension_numbers=DN)
    return fast, ref


def _close(a, b):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CASES)
def test_value_jvp_vjp_linearize(case):
    ks, x, k = _data(case)
    fast, ref = _fns(case)
    y = ref(x, k)
    _close(fast(x, k), y)
    _close(jax.jit(fast)(x, k), y)
    ct = jax.random.normal(ks[2], y.shape, jnp.float64)
    tx = jax.random.normal(ks[3], x.shape, jnp.float64)
    tk = jax.random.normal(ks[4], k.shape, jnp.float64)
    vjp = lambda f: jax.jit(lambda x, k, ct: jax.vjp(f, x, k)[1](ct))(x, k, ct)  # noqa: E731
    jvp = lambda f: jax.jit(lambda x, k: jax.jvp(f, (x, k), (tx, tk)))(x, k)  # noqa: E731
    _close(vjp(fast), vjp(ref))
    _close(jvp(fast), jvp(ref))
    # linearize + linear_transpose (the power iteration's Jᵀu)
    def lin_t(f):
        _, lin = jax.linearize(lambda z: f(z, k), x)
        return lin(tx), jax.linear_transpose(lin, x)(ct)[0]
    _close(jax.jit(lambda: lin_t(fast))(), jax.jit(lambda: lin_t(ref))())


@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[4], CASES[5], CASES[6]])
def test_second_order(case):
    ks, x, k = _data(case, seed=1)
    fast, ref = _fns(case)
    ct = jax.random.normal(ks[2], ref(x, k).shape, jnp.float64)
    tx = jax.random.normal(ks[3], x.shape, jnp.float64)

    def gn(f):  # grad w.r.t. (kernel, input) of ‖∇ₓ loss‖² (GN / SGR double backprop)
        def pen(k, x):
            gx = jax.grad(lambda z: jnp.sum(jnp.tanh(f(z, k)) * ct))(x)
            return jnp.sum(gx ** 2)
        return jax.jit(jax.grad(pen, (0, 1)))(k, x)

    def hvp(f):  # forward-over-reverse (core/hvp.py)
        g = jax.grad(lambda z: jnp.sum(jnp.tanh(f(z, k)) * ct))
        return jax.jvp(g, (x,), (tx,))[1]

    def rev_rev(f):  # reverse-over-reverse Hessian-vector product
        return jax.grad(lambda z: jnp.vdot(jax.grad(lambda u: jnp.sum(jnp.tanh(f(u, k)) * ct))(z), tx))(x)

    _close(gn(fast), gn(ref))
    _close(hvp(fast), hvp(ref))
    _close(rev_rev(fast), rev_rev(ref))


@pytest.mark.parametrize("case", [CASES[1], CASES[4]])
def test_vmap(case):
    ks, x, k = _data(case, seed=2)
    fast, ref = _fns(case)
    xs = jnp.stack([x, 2.0 * x, -x])
    kk = jnp.stack([k, 0.5 * k, -k])
    _close(jax.vmap(fast, (0, None))(xs, k), jax.vmap(ref, (0, None))(xs, k))
    _close(jax.vmap(fast, (1, None), 1)(xs.swapaxes(0, 1), k),
           jax.vmap(ref, (1, None), 1)(xs.swapaxes(0, 1), k))
    _close(jax.vmap(fast)(xs, kk), jax.vmap(ref)(xs, kk))
    loss = lambda f: lambda k: jnp.sum(jnp.sin(jax.vmap(f, (0, None))(xs, k)))  # noqa: E731
    _close(jax.grad(loss(fast))(k), jax.grad(loss(ref))(k))
    # per-example input gradients under vmap(grad)
    g = lambda f: jax.vmap(jax.grad(lambda z: jnp.sum(jnp.sin(f(z[None], k)))))(x)  # noqa: E731
    _close(g(fast), g(ref))


def test_derivatives_use_the_custom_rules():
    """The input-cotangent is the primitive with the flipped, transposed kernel (not lax's)."""
    x = jnp.ones((2, 9, 9, 16))
    k = jnp.ones((3, 3, 16, 4))
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda x: jnp.sum(C.conv(x, k, padding="VALID") ** 2)))(x))
    assert jaxpr.count("robustjax_conv[") == 1 and jaxpr.count("robustjax_conv_transpose[") == 1
    assert "conv_general_dilated" not in jaxpr
    assert "conv_general_dilated" in str(jax.make_jaxpr(lambda x: C.conv(x, k, padding="VALID"))(x))


def test_fallbacks_match_lax():
    ks, x, k = _data(CASES[1])
    # lhs dilation, feature groups and channels-first layouts go to lax unchanged
    pads = ((1, 1), (1, 1))
    y = C.conv_general_dilated(x, k, (1, 1), pads, lhs_dilation=(2, 2), dimension_numbers=DN)
    _close(y, lax.conv_general_dilated(x, k, (1, 1), pads, lhs_dilation=(2, 2), dimension_numbers=DN))
    kg = k[:, :, :8, :4]
    _close(C.conv_general_dilated(x, kg, (1, 1), "VALID", dimension_numbers=DN, feature_group_count=2),
           lax.conv_general_dilated(x, kg, (1, 1), "VALID", dimension_numbers=DN, feature_group_count=2))
    xc, kc = x.transpose(0, 3, 1, 2), k.transpose(3, 2, 0, 1)
    _close(C.conv_general_dilated(xc, kc, (1, 1), "VALID"), lax.conv_general_dilated(xc, kc, (1, 1), "VALID"))


def test_bad_arguments():
    x = jnp.ones((1, 5, 5, 3))
    with pytest.raises(ValueError, match="channels"):
        C.conv(x, jnp.ones((3, 3, 2, 4)))
    with pytest.raises(ValueError, match="rank"):
        C.conv(x[0], jnp.ones((3, 3, 3, 4)))
    with pytest.raises(ValueError, match="padding"):
        C.conv(x, jnp.ones((3, 3, 3, 4)), padding=((1, 1),))
    with pytest.raises(ValueError, match="strides"):
        C.conv(x, jnp.ones((3, 3, 3, 4)), strides=0)


@pytest.mark.parametrize("kw", [
    dict(features=6, kernel_size=(3, 3), padding="VALID"),
    dict(features=6, kernel_size=(3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), use_bias=False),
    dict(features=6, kernel_size=(3, 3), padding="CIRCULAR", kernel_dilation=(2, 1)),
    dict(features=6, kernel_size=(3, 3), padding="SAME", feature_group_count=2),
])
def test_flax_module_is_a_drop_in(kw):
    x = jax.random.normal(jax.random.PRNGKey(3), (2, 3, 9, 9, 16), jnp.float32)  # 2 batch dims
    ours, flax_conv = C.Conv(**kw), nn.Conv(**kw)
    v_ours = ours.init(jax.random.PRNGKey(4), x)
    v_flax = flax_conv.init(jax.random.PRNGKey(4), x)
    assert jax.tree.structure(v_ours) == jax.tree.structure(v_flax)
    _close(v_ours, v_flax)  # same names, shapes and initialization
    _close(ours.apply(v_flax, x), flax_conv.apply(v_flax, x))
    g = lambda m: jax.jit(jax.grad(lambda p, z: jnp.sum(jnp.sin(m.apply(p, z))), (0, 1)))(v_flax, x)  # noqa: E731
    _close(g(ours), g(flax_conv))


@pytest.mark.parametrize("double_backprop", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_zoo_default_matches_flax_conv_model(double_backprop):
    x = jax.random.uniform(jax.random.PRNGKey(5), (2, 20, 20, 1), jnp.float64)
    ours = create("sgr_cnn", 10, width="mnist")
    plain = create("sgr_cnn", 10, width="mnist", conv=nn.Conv)
    assert ours.conv is C.Conv
    v = plain.init(jax.random.PRNGKey(6), x)
    v = jax.tree.map(lambda a: a.astype(jnp.float64), v)
    _close(jax.jit(ours.apply)(v, x), jax.jit(plain.apply)(v, x))
    y = jnp.arange(2) % 10

    def gn_grad(m):
        def loss(p, z):
            lg = m.apply(p, z)
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(lg), y[:, None], 1))
        def obj(p):
            pen = jnp.sum(jax.grad(loss, argnums=1)(p, x) ** 2) if double_backprop else 0.0
            return loss(p, x) + pen
        return jax.jit(lambda v: (jax.grad(obj)(v), jax.grad(loss, argnums=1)(v, x)))(v)

    _close(gn_grad(ours), gn_grad(plain))


@pytest.mark.parametrize("strides, dilation, padding", [
    ((1, 1), (1, 1), "VALID"), ((2, 2), (1, 1), "SAME"), ((3, 2), (2, 1), ((1, 2), (0, 1))),
    ((2, 1), (1, 2), ((2, 0), (1, 1))),  # high padding cropped in the kernel-gradient conv
])
def test_kernel_gradient_conv_matches_jax_transpose(strides, dilation, padding):
    # the kernel gradient is emitted as one canonical convolution between explicit transposes;
    # reference: JAX's own transpose rule of lax.conv_general_dilated (float64)
    x = jax.random.normal(jax.random.PRNGKey(3), (3, 9, 8, 2), jnp.float64)
    w_shape = (3, 2, 2, 4)
    dk = tuple((k - 1) * d + 1 for k, d in zip(w_shape[:2], dilation))
    pads = lax.padtype_to_pads(x.shape[1:3], dk, strides, padding) if isinstance(padding, str) else padding
    cfg = (strides, tuple(map(tuple, pads)), dilation, None)
    g = jax.random.normal(jax.random.PRNGKey(4), C._lax_conv(x, jnp.zeros(w_shape), cfg).shape, jnp.float64)
    ref = jax.linear_transpose(lambda k: C._lax_conv(x, k, cfg), jax.ShapeDtypeStruct(w_shape, jnp.float64))(g)[0]
    _close(C._kernel_grad(g, x, w_shape, cfg), ref)


def test_kernel_gradient_inside_a_loop_stays_canonical():
    # XLA:CPU runs a kernel-gradient convolution with JAX's non-canonical dimension labels as a
    # naive loop inside while bodies; ours must reach XLA as NHWC x HWIO (b01f_01io->b01f)
    x = jnp.ones((4, 2, 10, 10, 3), jnp.float32)
    kern = jnp.ones((3, 3, 3, 8), jnp.float32)

    def grads(k):
        def body(acc, xb):
            return acc + jax.grad(lambda kk: jnp.sum(C.conv(xb, kk) ** 2))(k), None
        return lax.scan(body, jnp.zeros_like(k), x)[0]

    hlo = jax.jit(grads).lower(kern).compile().as_text()
    labels = set(re.findall(r"dim_labels=([\w>\-]+)", hlo))
    assert labels and labels <= {"b01f_01io->b01f"}, labels

