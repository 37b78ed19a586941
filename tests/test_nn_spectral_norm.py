"""Tests of robustjax.nn.spectral_norm against explicit operator matrices and numpy SVD."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.core.power import conv_apply
from robustjax.nn.spectral_norm import (
    SpectralNormConv,
    SpectralNormDense,
    conv_operator_norm,
    conv_singular_values_fft,
    dense_operator_norm,
    reshaped_kernel_norm,
    spectral_normalized,
)


def explicit_conv_matrix(kernel, input_shape, **kw):
    """The convolution as a matrix [D_out, D_in], by applying it to every basis vector."""
    d = int(np.prod(input_shape))
    basis = jnp.eye(d, dtype=jnp.float32).reshape((d,) + tuple(input_shape))
    cols = conv_apply(basis, jnp.asarray(kernel), **kw).reshape(d, -1)
    return np.asarray(cols, np.float64).T


def _kernel(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


PADDINGS = ["SAME", "VALID", ((1, 0), (2, 1)), 1, "CIRCULAR"]


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("strides", [1, 2])
def test_conv_operator_norm_matches_explicit_svd(padding, strides):
    k = _kernel((3, 3, 3, 4), seed=strides)
    shape = (8, 7, 3)
    mat = explicit_conv_matrix(k, shape, strides=strides, padding=padding)
    ref = np.linalg.svd(mat, compute_uv=False)[0]
    sigma = conv_operator_norm(k, shape, strides=strides, padding=padding, iters=1000)
    np.testing.assert_allclose(sigma, ref, rtol=1e-3)


def test_conv_operator_norm_dilation_and_groups():
    k = _kernel((3, 3, 2, 4), seed=5)
    shape = (8, 8, 4)
    kw = dict(strides=(2, 1), padding="SAME", dilation=2, feature_group_count=2)
    mat = explicit_conv_matrix(k, shape, **kw)
    ref = np.linalg.svd(mat, compute_uv=False)[0]
    np.testing.assert_allclose(conv_operator_norm(k, shape, iters=1000, **kw), ref, rtol=1e-3)


@pytest.mark.parametrize("kshape,hw", [((3, 3, 3, 4), (6, 5)), ((2, 3, 2, 2), (4, 4)), ((5, 5, 1, 2), (3, 3))])
def test_conv_singular_values_fft_matches_circular_svd(kshape, hw):
    k = _kernel(kshape, seed=7)
    # circular convolution with a kernel no larger than the input: wrap-pad then VALID
    if kshape[0] <= hw[0] and kshape[1] <= hw[1]:
        mat = explicit_conv_matrix(k, hw + kshape[2:3], padding="CIRCULAR")
    else:  # kernel wraps around: build the circulant operator directly
        d_in = hw[0] * hw[1] * kshape[2]
        mat = np.zeros((hw[0] * hw[1] * kshape[3], d_in))
        kk = np.asarray(k, np.float64)
        for p in np.ndindex(*hw):
            for q in np.ndindex(*kshape[:2]):
                src = ((p[0] + q[0]) % hw[0], (p[1] + q[1]) % hw[1])
                for c in range(kshape[2]):
                    for o in range(kshape[3]):
                        mat[(p[0] * hw[1] + p[1]) * kshape[3] + o, (src[0] * hw[1] + src[1]) * kshape[2] + c] += kk[q][c, o]
    ref = np.sort(np.linalg.svd(mat, compute_uv=False))[::-1]
    s = np.asarray(conv_singular_values_fft(k, hw))
    assert s.shape == ref.shape
    np.testing.assert_allclose(s, ref, rtol=1e-4, atol=1e-4 * ref[0])


def test_reshaped_kernel_norm_is_not_the_operator_norm():
    k = _kernel((3, 3, 3, 4), seed=11)
    true = conv_operator_norm(k, (8, 8, 3), padding="SAME", iters=500)
    reshaped = reshaped_kernel_norm(k)
    np.testing.assert_allclose(reshaped, np.linalg.svd(np.asarray(k).reshape(-1, 4), compute_uv=False)[0], rtol=1e-5)
    assert abs(float(true) - float(reshaped)) / float(true) > 0.05


def test_dense_operator_norm():
    k = _kernel((7, 5), seed=3)
    np.testing.assert_allclose(dense_operator_norm(k, iters=500), np.linalg.norm(np.asarray(k), 2), rtol=1e-4)


def test_bad_arguments():
    k = _kernel((3, 3, 3, 4))
    with pytest.raises(ValueError, match="iters"):
        conv_operator_norm(k, (8, 8, 3), iters=0)
    with pytest.raises(ValueError, match="iters"):
        dense_operator_norm(k[0, 0], iters=0)
    with pytest.raises(ValueError, match="input_shape"):
        conv_operator_norm(k, (8, 8), iters=1)
    with pytest.raises(ValueError, match="input_shape"):
        conv_operator_norm(k, (1, 8, 8, 3), iters=1)
    with pytest.raises(ValueError, match="padding"):
        conv_operator_norm(k, (8, 8, 3), padding="FULL", iters=1)
    with pytest.raises(ValueError, match="input_hw"):
        conv_singular_values_fft(k, (8,))
    x = jnp.ones((1, 8, 8, 3))
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="beta"):
            SpectralNormConv(4, (3, 3), beta=bad).init(jax.random.PRNGKey(0), x)
        with pytest.raises(ValueError, match="beta"):
            SpectralNormDense(4, beta=bad).init(jax.random.PRNGKey(0), x)
    with pytest.raises(ValueError, match="mode"):
        SpectralNormConv(4, (3, 3), mode="exact").init(jax.random.PRNGKey(0), x)
    with pytest.raises(ValueError, match="iters"):
        SpectralNormConv(4, (3, 3), iters=0).init(jax.random.PRNGKey(0), x)
    with pytest.raises(ValueError, match="padding"):
        SpectralNormConv(4, (3, 3), padding="FULL").init(jax.random.PRNGKey(0), x)
    with pytest.raises(ValueError, match="beta"):
        spectral_normalized("sgr_cnn", 10, beta=0.0)


# ---------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------

CONV_CASES = [
    dict(kernel_size=(3, 3), strides=1, padding="SAME"),
    dict(kernel_size=(3, 3), strides=2, padding="VALID"),
    dict(kernel_size=(2, 3), strides=(2, 1), padding=((1, 0), (0, 2))),
    dict(kernel_size=(3, 3), strides=1, padding="CIRCULAR", kernel_dilation=2),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_sn_conv_is_drop_in_for_nn_conv_and_bounds_sigma(case):
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 8, 3))
    ref = nn.Conv(5, **case)
    sn_big = SpectralNormConv(5, beta=1e6, **case)
    v_sn = sn_big.init(jax.random.PRNGKey(1), x)
    assert jax.tree.map(jnp.shape, v_sn["params"]) == jax.tree.map(jnp.shape, ref.init(jax.random.PRNGKey(1), x)["params"])
    params = {"params": v_sn["params"]}
    np.testing.assert_allclose(sn_big.apply(v_sn, x), ref.apply(params, x), rtol=1e-5, atol=1e-5)
    # a small beta bounds the operator norm of the kernel actually used
    beta = 0.5
    sn = SpectralNormConv(5, beta=beta, init_iters=200, **case)
    v = sn.init(jax.random.PRNGKey(1), x)
    y, inter = sn.apply(v, x, mutable=["intermediates"])
    (bounded,) = inter["intermediates"]["bounded_kernel"]
    conv_kw = dict(strides=case.get("strides", 1), padding=case["padding"], dilation=case.get("kernel_dilation", 1))
    true = np.linalg.svd(explicit_conv_matrix(v["params"]["kernel"], (8, 8, 3), **conv_kw), compute_uv=False)[0]
    got = np.linalg.svd(explicit_conv_matrix(bounded, (8, 8, 3), **conv_kw), compute_uv=False)[0]
    assert true > beta
    np.testing.assert_allclose(got, beta, rtol=1e-3)
    np.testing.assert_allclose(y, ref.apply({"params": {"kernel": bounded, "bias": v["params"]["bias"]}}, x), rtol=1e-5, atol=1e-5)


def test_sn_dense_is_drop_in_and_bound_not_normalization():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 6))  # extra batch dim like nn.Dense
    ref = nn.Dense(4)
    sn = SpectralNormDense(4, beta=1e6)
    v = sn.init(jax.random.PRNGKey(1), x)
    np.testing.assert_allclose(sn.apply(v, x), ref.apply({"params": v["params"]}, x), rtol=1e-5, atol=1e-6)
    k = v["params"]["kernel"]
    s = np.linalg.norm(np.asarray(k), 2)
    for beta in (0.5 * s, 2.0 * s):  # bound: shrink only when sigma > beta (Farnia eq. 9)
        out, inter = SpectralNormDense(4, beta=beta).apply(v, x, mutable=["intermediates"])
        (bounded,) = inter["intermediates"]["bounded_kernel"]
        np.testing.assert_allclose(np.linalg.norm(np.asarray(bounded), 2), min(s, beta), rtol=1e-4)


def test_reshape_mode_bounds_the_reshaped_kernel():
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 8, 3))
    sn = SpectralNormConv(4, (3, 3), beta=0.3, mode="reshape", init_iters=200)
    v = sn.init(jax.random.PRNGKey(1), x)
    _, inter = sn.apply(v, x, mutable=["intermediates"])
    (bounded,) = inter["intermediates"]["bounded_kernel"]
    np.testing.assert_allclose(reshaped_kernel_norm(bounded), 0.3, rtol=1e-3)
    assert v["spectral"]["v"].shape == (1, 3 * 3 * 3)


def test_vector_updates_only_when_collection_mutable():
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 8, 3))
    sn = SpectralNormConv(4, (3, 3), beta=0.5, init_iters=1)
    v = sn.init(jax.random.PRNGKey(1), x)
    v0 = v["spectral"]["v"]
    y_frozen = sn.apply(v, x)  # not mutable: read only, no error
    _, upd = sn.apply(v, x, mutable=["spectral"])
    assert not np.allclose(upd["spectral"]["v"], v0)
    _, same = sn.apply(v, x, mutable=["spectral"], update_stats=False)
    np.testing.assert_array_equal(same["spectral"]["v"], v0)
    _, same2 = SpectralNormConv(4, (3, 3), beta=0.5, update_stats=False).apply(v, x, mutable=["spectral"])
    np.testing.assert_array_equal(same2["spectral"]["v"], v0)
    # frozen output is a deterministic function of (params, spectral): attacks see one function
    np.testing.assert_array_equal(sn.apply(v, x), y_frozen)
    # a different spatial size than at init is refused with a clear message
    with pytest.raises(ValueError, match="re-initialize"):
        sn.apply(v, jnp.ones((1, 6, 6, 3)))


@pytest.mark.parametrize("grad_through_sigma", [True, False])
def test_gradient_through_sigma_option(grad_through_sigma):
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 6))
    beta = 0.3
    sn = SpectralNormDense(4, beta=beta, use_bias=False, init_iters=300, grad_through_sigma=grad_through_sigma)
    v = sn.init(jax.random.PRNGKey(1), x)
    g = jax.grad(lambda p: jnp.sum(jnp.sin(sn.apply({"params": p, "spectral": v["spectral"]}, x))))(v["params"])

    def reference(k):  # independent: sigma by SVD (differentiable), optionally constant
        s = jnp.linalg.svd(k, compute_uv=False)[0]
        if not grad_through_sigma:
            s = jax.lax.stop_gradient(s)
        return jnp.sum(jnp.sin(x @ (k / jnp.maximum(1.0, s / beta))))

    np.testing.assert_allclose(g["kernel"], jax.grad(reference)(v["params"]["kernel"]), rtol=2e-3, atol=1e-5)


class TinyNet(nn.Module):
    conv: type = nn.Conv
    dense: type = nn.Dense

    @nn.compact
    def __call__(self, x, train=False):
        x = nn.relu(self.conv(features=6, kernel_size=(3, 3), strides=2, padding="SAME")(x))
        x = nn.elu(self.conv(features=6, kernel_size=(3, 3), padding="VALID")(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
        return self.dense(features=3)(x.reshape(x.shape[0], -1))


def _train_and_check(model, x, beta, steps=5, lr=0.02):
    y = jnp.arange(x.shape[0]) % model_classes(model)
    variables = model.init(jax.random.PRNGKey(0), x)
    params, spectral = variables["params"], variables["spectral"]

    @jax.jit
    def step(params, spectral):
        def loss(p):
            logits, upd = model.apply({"params": p, "spectral": spectral}, x, mutable=["spectral"])
            return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y]), upd["spectral"]
        (l, spectral), g = jax.value_and_grad(loss, has_aux=True)(params)
        return jax.tree.map(lambda a, b: a - lr * b, params, g), spectral, l

    for _ in range(steps):
        params, spectral, _ = step(params, spectral)
    # evaluation mode: vectors frozen; record each layer's input shape and bounded kernel
    shapes = {}

    def interceptor(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and isinstance(context.module, SpectralNormConv):
            shapes[context.module.name] = args[0].shape[1:]
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(interceptor):
        jax.eval_shape(lambda: model.apply({"params": params, "spectral": spectral}, x))
    _, inter = jax.jit(lambda p, s: model.apply({"params": p, "spectral": s}, x, mutable=["intermediates"]))(
        params, spectral)
    sigmas = []
    flat = jax.tree_util.tree_flatten_with_path(inter["intermediates"])[0]
    mods = _conv_modules(model)
    for path, kernel in flat:
        name = [p.key for p in path if hasattr(p, "key")][-2]
        if kernel.ndim == 2:
            sigmas.append(np.linalg.norm(np.asarray(kernel, np.float64), 2))
        elif np.prod(shapes[name]) <= 2000:  # explicit operator matrix and SVD
            mat = explicit_conv_matrix(kernel, shapes[name], **mods[name])
            sigmas.append(np.linalg.svd(mat, compute_uv=False)[0])
        else:  # conv_operator_norm is itself checked against explicit SVDs above
            sigmas.append(float(conv_operator_norm(kernel, shapes[name], iters=500, **mods[name])))
    assert len(sigmas) >= 3
    assert max(sigmas) <= beta * (1 + 1e-2), sigmas
    assert max(sigmas) >= 0.9 * beta  # the bound is active (the unnormalized layers exceed beta)
    return sigmas


def model_classes(model):
    return getattr(model, "num_classes", 3)


def _conv_modules(model):
    """name -> (strides, padding) of every conv of the model, read from a bound module tree."""
    out = {}

    def interceptor(next_fun, args, kwargs, context):
        m = context.module
        if context.method_name == "__call__" and isinstance(m, SpectralNormConv):
            out[m.name] = dict(strides=m.strides, padding=m.padding, dilation=m.kernel_dilation)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(interceptor):
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), _conv_modules.x))
    return out


@pytest.mark.parametrize("beta", [1.0, 1.6])
def test_trained_sn_model_respects_bound(beta):
    sn = dict(beta=beta, init_iters=100)
    model = TinyNet(conv=functools.partial(SpectralNormConv, **sn), dense=functools.partial(SpectralNormDense, **sn))
    x = 3.0 * jax.random.uniform(jax.random.PRNGKey(1), (8, 10, 10, 3))
    _conv_modules.x = x
    _train_and_check(model, x, beta)


@pytest.mark.slow  # ~70 s on the shared 2-core machine
def test_spectral_normalized_zoo_model():
    pytest.importorskip("robustjax.nn.zoo")
    beta = 1.0
    model = spectral_normalized("sgr_cnn", 10, beta=beta, init_iters=100)
    x = 5.0 * jax.random.uniform(jax.random.PRNGKey(1), (4, 16, 16, 1))
    _conv_modules.x = x
    sigmas = _train_and_check(model, x, beta, steps=3, lr=0.02)
    assert len(sigmas) == 7
