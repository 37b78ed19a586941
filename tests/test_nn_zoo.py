"""Tests for the model zoo (robustjax.nn.convnets, robustjax.nn.resnet, robustjax.nn.zoo).

What is checked, and against what:
* parameter counts: against the numbers the papers state (Zhang et al. 2017 Table 1 for the
  small AlexNet and the 1x512 MLP on 28x28x3 crops; He et al. 2016 Table 6 for ResNet-20/56),
  otherwise against a count computed here layer by layer from the paper's description;
* forward passes of sgr_cnn / soar_cnn / elu_net / alexnet_small against a second
  implementation written here directly with ``lax.conv_general_dilated`` and
  ``lax.reduce_window`` from the same parameters (checks paddings, strides, pool placement,
  activations, flatten order);
* BatchNorm: eval mode deterministic and batch-independent, train mode couples examples and
  updates the running mean by the PyTorch-momentum formula;
* Standardize folded into the model; layer injection; argument errors.
"""

import functools
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import robustjax.nn as rnn

KEY = jax.random.PRNGKey(0)
MNIST = (28, 28, 1)
CIFAR = (32, 32, 3)


def _count(tree):
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))


def _abstract_init(model, shape):
    return jax.eval_shape(lambda: model.init(KEY, jnp.zeros((1,) + shape)))


def _conv(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def _dense(din, dout):
    return din * dout + dout


def _init(model, x, seed=0):
    """Variables with the structure of ``model.init`` filled from NumPy (fan-in scaled kernels,
    small random biases, unit BN variances). Compiling Flax's threefry initializers takes tens
    of seconds per model on a loaded 2-core CPU; the real ``init`` runs in one test only."""
    abstract = jax.eval_shape(lambda: model.init(KEY, x))
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        last = getattr(path[-1], "key", None)
        if last == "kernel":
            value = rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
        elif last in ("var", "scale"):
            value = 1.0 + 0.1 * rng.uniform(size=leaf.shape)
        else:  # bias, running mean
            value = 0.1 * rng.normal(size=leaf.shape)
        return jnp.asarray(value, dtype=leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, abstract)


@functools.lru_cache(maxsize=None)
def _jitted_apply(model, train):
    if train:
        return jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
    return jax.jit(lambda v, x: model.apply(v, x))


def _apply(model, variables, x, train=False):
    return _jitted_apply(model, train)(variables, x)


def _images(shape, batch=4, seed=0):
    return jax.random.uniform(jax.random.PRNGKey(seed), (batch,) + shape)


# --------------------------------------------------------------------- shapes and counts
SMALL_CASES = [  # (name, kwargs, input shape) run with a real forward pass
    ("mlp", {}, MNIST), ("mlp", {"hidden_layers": 2}, CIFAR), ("mlp", {}, (784,)),
    ("sgr_cnn", {"width": "mnist"}, MNIST), ("sgr_cnn", {"width": "cifar"}, CIFAR),
    ("soar_cnn", {}, CIFAR), ("soar_cnn", {}, MNIST),
    ("cnn7", {"width": 4}, CIFAR), ("cnn7", {"width": 4}, MNIST),
    ("alexnet_small", {}, CIFAR), ("alexnet_small", {"activation": "elu", "lrn": True}, MNIST),
    ("elu_net", {}, MNIST), ("elu_net", {}, CIFAR),
    ("resnet", {"depth": 8}, CIFAR), ("resnet", {"depth": 8, "normalization": "none"}, MNIST),
]


@pytest.mark.parametrize("name,kw,shape", SMALL_CASES)
def test_forward_shape_finite_and_eval_deterministic(name, kw, shape):
    model = rnn.create(name, 7, **kw)
    x = _images(shape, batch=3)
    variables = _init(model, x)
    out, out_default = jax.jit(
        lambda v, x: (model.apply(v, x, train=False), model.apply(v, x)))(variables, x)
    assert out.shape == (3, 7) and out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))
    np.testing.assert_array_equal(out, out_default)  # train=False is the default
    np.testing.assert_array_equal(out, _apply(model, variables, x))  # deterministic


def test_real_init_runs_and_matches_abstract_structure():
    model = rnn.create("resnet", 10, depth=8, normalization="none")
    x = _images(CIFAR, batch=2)
    variables = jax.jit(model.init)(jax.random.key(0, impl="rbg"), x)
    abstract = jax.eval_shape(lambda: model.init(KEY, x))
    assert jax.tree_util.tree_structure(variables) == jax.tree_util.tree_structure(abstract)
    # Fixup (normalization="none"): the last conv of every residual branch starts at zero,
    # so at init each block is the identity on its (zero-padded, subsampled) input.
    params = variables["params"]
    for block in ("stage1_block1", "stage2_block1", "stage3_block1"):
        assert not np.any(np.asarray(params[block]["conv2"]["kernel"]))
        assert np.any(np.asarray(params[block]["conv1"]["kernel"]))
    assert bool(jnp.all(jnp.isfinite(_apply(model, variables, x))))


@pytest.mark.parametrize("name,kw,shape", [
    ("cnn7", {}, CIFAR), ("cnn7", {}, MNIST), ("resnet", {"depth": 56}, CIFAR),
    ("resnet", {"depth": 20}, CIFAR), ("alexnet_small", {"pool_padding": "VALID"}, CIFAR),
])
def test_full_size_output_shapes_abstract(name, kw, shape):
    model = rnn.create(name, 10, **kw)
    variables = _abstract_init(model, shape)
    out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((5,) + shape)), variables)
    assert out.shape == (5, 10)


def test_counts_stated_in_papers():
    # Zhang et al. (2017), Table 1, CIFAR-10 cropped to 28x28x3: "Alexnet 1,387,786",
    # "MLP 1x512 1,209,866".
    assert _count(_abstract_init(rnn.create("alexnet_small", 10), (28, 28, 3))["params"]) \
        == 1_387_786
    assert _count(_abstract_init(rnn.create("mlp", 10), (28, 28, 3))["params"]) == 1_209_866
    # He et al. (2016), Table 6 (CIFAR-10): ResNet-20 0.27M, ResNet-56 0.85M parameters.
    for depth, millions in ((20, 0.27), (56, 0.85)):
        p = _abstract_init(rnn.create("resnet", 10, depth=depth), CIFAR)["params"]
        assert round(_count(p) / 1e6, 2) == millions


def test_counts_by_hand():
    def params(name, shape, **kw):
        return _count(_abstract_init(rnn.create(name, 10, **kw), shape)["params"])

    # SGR Table 5, VALID 3x3 convs, 2x2 pools: MNIST 28-26-24-12-10-8-4 -> 4*4*64.
    assert params("sgr_cnn", MNIST) == (
        _conv(3, 1, 32) + _conv(3, 32, 32) + _conv(3, 32, 64) + _conv(3, 64, 64)
        + _dense(4 * 4 * 64, 200) + _dense(200, 200) + _dense(200, 10))
    # CIFAR 32-30-28-14-12-10-5 -> 5*5*128.
    assert params("sgr_cnn", CIFAR, width="cifar") == (
        _conv(3, 3, 64) + _conv(3, 64, 64) + _conv(3, 64, 128) + _conv(3, 128, 128)
        + _dense(5 * 5 * 128, 256) + _dense(256, 256) + _dense(256, 10))
    # SOAR App. C conv stack + our 200-200 head; CIFAR 32 -> 5*5*64.
    assert params("soar_cnn", CIFAR) == (
        _conv(3, 3, 32) + _conv(3, 32, 32) + _conv(3, 32, 64) + _conv(3, 64, 64)
        + _dense(5 * 5 * 64, 200) + _dense(200, 200) + _dense(200, 10))
    # Sinha et al. ELU net: 28 -SAME/2-> 14 -VALID 6/2-> 5 -VALID 5-> 1.
    assert params("elu_net", MNIST) == (
        _conv(8, 1, 64) + _conv(6, 64, 128) + _conv(5, 128, 128) + _dense(128, 10))
    # Farnia's code variant of the AlexNet: VALID pools, 28 -> 13 -> 6.
    assert params("alexnet_small", (28, 28, 3), pool_padding="VALID") == (
        _conv(5, 3, 64) + _conv(5, 64, 64) + _dense(6 * 6 * 64, 384) + _dense(384, 192)
        + _dense(192, 10))
    # Farnia MLPs on MNIST.
    assert params("mlp", MNIST, hidden_layers=2) == (
        _dense(784, 512) + _dense(512, 512) + _dense(512, 10))
    # CNN7: 7 biased 3x3 convs 128-128-256-256-512-512-1024, BN without affine, dense.
    w = [3, 128, 128, 256, 256, 512, 512, 1024]
    assert params("cnn7", CIFAR) == sum(_conv(3, a, b) for a, b in zip(w, w[1:])) \
        + _dense(1024, 10)
    # BN-free ResNet-20: convs with bias, no BN parameters.
    n, widths = 3, (16, 16, 32, 64)
    convs = _conv(3, 3, 16)
    for s in range(3):
        cin = widths[s]
        for b in range(n):
            convs += _conv(3, cin, widths[s + 1]) + _conv(3, widths[s + 1], widths[s + 1])
            cin = widths[s + 1]
    assert params("resnet", CIFAR, normalization="none") == convs + _dense(64, 10)
    # With BN: no conv biases, 2 params per channel per BN (2 per block + final).
    # (bn1 of a block normalizes its input channels, bn2 its output channels).
    bn, cin = 0, 16
    for w_ in (16, 32, 64):
        bn += 2 * (cin + w_) + (n - 1) * 2 * (2 * w_)
        cin = w_
    bn += 2 * 64
    convs_nobias = convs - (16 + sum(2 * w_ * n for w_ in (16, 32, 64)))
    assert params("resnet", CIFAR) == convs_nobias + bn + _dense(64, 10)


# ------------------------------------------------- second implementation of the forward
def _ref_conv(x, p, stride, padding):
    y = lax.conv_general_dilated(x, p["kernel"], (stride, stride), padding,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + p["bias"]


def _ref_pool(x, k, s, padding):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, k, k, 1), (1, s, s, 1), padding)


def _ref_dense(x, p):
    return x @ p["kernel"] + p["bias"]


def _ref_sgr(p, x):
    h = x
    for i in range(1, 5):
        h = jax.nn.relu(_ref_conv(h, p[f"conv{i}"], 1, "VALID"))
        if i in (2, 4):
            h = _ref_pool(h, 2, 2, "VALID")
    h = h.reshape(h.shape[0], -1)
    h = jax.nn.relu(_ref_dense(h, p["dense1"]))
    h = jax.nn.relu(_ref_dense(h, p["dense2"]))
    return _ref_dense(h, p["logits"])


def _ref_elu(p, x):
    h = jax.nn.elu(_ref_conv(x, p["conv1"], 2, "SAME"))
    h = jax.nn.elu(_ref_conv(h, p["conv2"], 2, "VALID"))
    h = jax.nn.elu(_ref_conv(h, p["conv3"], 1, "VALID"))
    return _ref_dense(h.reshape(h.shape[0], -1), p["logits"])


def _ref_alexnet(p, x, pool_padding):
    h = x
    for i in (1, 2):
        h = _ref_pool(jax.nn.relu(_ref_conv(h, p[f"conv{i}"], 1, "SAME")), 3, 2, pool_padding)
    h = h.reshape(h.shape[0], -1)
    h = jax.nn.relu(_ref_dense(h, p["dense1"]))
    h = jax.nn.relu(_ref_dense(h, p["dense2"]))
    return _ref_dense(h, p["logits"])


@pytest.mark.parametrize("name,kw,shape,ref", [
    ("sgr_cnn", {"width": "mnist"}, MNIST, _ref_sgr),
    ("sgr_cnn", {"width": "cifar"}, CIFAR, _ref_sgr),
    ("soar_cnn", {}, CIFAR, _ref_sgr),
    ("elu_net", {}, MNIST, _ref_elu),
    ("alexnet_small", {}, CIFAR, partial(_ref_alexnet, pool_padding="SAME")),
    ("alexnet_small", {"pool_padding": "VALID"}, (28, 28, 3),
     partial(_ref_alexnet, pool_padding="VALID")),
])
def test_forward_matches_independent_implementation(name, kw, shape, ref):
    mean, std = 0.3, 0.7
    model = rnn.create(name, 10, mean=mean, std=std, **kw)
    x = _images(shape, batch=2, seed=1)
    variables = _init(model, x)
    np.testing.assert_allclose(_apply(model, variables, x),
                               ref(variables["params"], (x - mean) / std),
                               rtol=2e-4, atol=2e-5)


# ------------------------------------------------------------------------- BatchNorm
@pytest.mark.parametrize("name,kw,shape", [
    ("cnn7", {"width": 4}, CIFAR), ("resnet", {"depth": 8}, CIFAR),
])
def test_batchnorm_eval_independent_train_coupled(name, kw, shape):
    model = rnn.create(name, 5, **kw)
    x = _images(shape, batch=4, seed=2)
    variables = _init(model, x)
    assert "batch_stats" in variables
    # Make the running statistics non-trivial first (one train step's worth of update).
    _, upd = _apply(model, variables, x, train=True)
    variables = {**variables, **upd}
    x2 = x.at[1].set(1.0 - x[1])  # change example 1 only

    ev1, ev2 = _apply(model, variables, x), _apply(model, variables, x2)
    ev1, ev2 = np.asarray(ev1), np.asarray(ev2)
    np.testing.assert_allclose(ev1[[0, 2, 3]], ev2[[0, 2, 3]], rtol=1e-6, atol=1e-6)
    assert not np.allclose(ev1[1], ev2[1])
    # Example 0 alone gives the same eval logits as inside a batch.
    np.testing.assert_allclose(_apply(model, variables, x[:1]), ev1[:1], rtol=1e-5, atol=1e-6)

    tr1, _ = _apply(model, variables, x, train=True)
    tr2, _ = _apply(model, variables, x2, train=True)
    assert not np.allclose(tr1[0], tr2[0], atol=1e-6)  # batch statistics couple examples
    assert not np.allclose(tr1, ev1, atol=1e-6)


def test_batchnorm_running_mean_update_formula():
    # First BN of CNN7 sees conv1(standardize(x)); after one train step its running stats
    # must be 0.9 * old + 0.1 * batch statistic (PyTorch momentum 0.1; biased batch variance).
    model = rnn.create("cnn7", 3, width=4, mean=0.5, std=0.25)
    x = _images(CIFAR, batch=6, seed=3)
    variables = _init(model, x)
    _, upd = _apply(model, variables, x, train=True)
    h = np.asarray(_ref_conv((x - 0.5) / 0.25, variables["params"]["conv1"], 1, "SAME"))
    old = variables["batch_stats"]["bn1"]
    new = upd["batch_stats"]["bn1"]
    np.testing.assert_allclose(new["mean"], 0.9 * old["mean"] + 0.1 * h.mean(axis=(0, 1, 2)),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new["var"], 0.9 * old["var"] + 0.1 * h.var(axis=(0, 1, 2)),
                               rtol=1e-4)
    assert "bn1" not in variables["params"]  # BN without affine parameters (bn_affine=False)


# ----------------------------------------------------------------------- Standardize
@pytest.mark.parametrize("name,kw", [("sgr_cnn", {"width": "cifar"}),
                                     ("resnet", {"depth": 8}), ("mlp", {})])
def test_standardize_is_first_layer(name, kw):
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    x = _images(CIFAR, batch=2, seed=4)
    plain = rnn.create(name, 10, **kw)
    scaled = rnn.create(name, 10, mean=mean, std=std, **kw)
    variables = _init(plain, x)
    xs = (x - jnp.asarray(mean)) / jnp.asarray(std)
    np.testing.assert_allclose(_apply(scaled, variables, x), _apply(plain, variables, xs),
                               rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- layer injection
ALL_SMALL = [("mlp", {"hidden_layers": 2}, MNIST), ("sgr_cnn", {}, MNIST),
             ("soar_cnn", {}, CIFAR), ("cnn7", {"width": 2}, CIFAR),
             ("alexnet_small", {"features": (4, 4), "hidden": (8, 8)}, CIFAR),
             ("elu_net", {"filters": 4}, MNIST), ("resnet", {"depth": 8}, CIFAR),
             ("resnet", {"depth": 8, "normalization": "none"}, CIFAR)]


def _kernel_paths(params, prefix=()):
    out = set()
    for k, v in params.items():
        if isinstance(v, dict):
            out |= _kernel_paths(v, prefix + (k,))
        elif k == "kernel":
            out.add(prefix)
    return out


@pytest.mark.parametrize("name,kw,shape", ALL_SMALL)
def test_layer_injection_sees_every_dense_and_conv(name, kw, shape):
    seen = []

    def counting(base, kind):
        def factory(**kwargs):
            module = base(**kwargs)
            seen.append((kind, kwargs["name"]))
            return module
        return factory

    model = rnn.create(name, 10, conv=counting(nn.Conv, "conv"),
                       dense=counting(nn.Dense, "dense"), **kw)
    variables = jax.eval_shape(lambda: model.init(KEY, jnp.zeros((2,) + shape)))
    kernels = _kernel_paths(variables["params"])
    assert len(seen) == len(kernels) > 0
    assert sorted(name for _, name in seen) == sorted(path[-1] for path in kernels)
    assert ("dense", "logits") in seen
    if name != "mlp":
        assert any(kind == "conv" for kind, _ in seen)


def test_injected_layer_changes_the_network():
    # A factory that swaps in a different layer is used in the forward pass: a conv without
    # bias removes every conv bias, a dense scaled to zero makes the logits zero.
    class ZeroDense(nn.Dense):
        @nn.compact
        def __call__(self, x):
            return 0.0 * super().__call__(x)

    model = rnn.create("sgr_cnn", 10, conv=partial(nn.Conv, use_bias=False), dense=ZeroDense)
    x = _images(MNIST, batch=2)
    variables = _init(model, x)
    assert "bias" not in variables["params"]["conv1"]
    np.testing.assert_array_equal(_apply(model, variables, x), 0.0)


# -------------------------------------------------------------------------- errors
def test_registry_names_and_errors():
    assert rnn.model_names() == ("alexnet_small", "cnn7", "elu_net", "mlp", "resnet",
                                 "sgr_cnn", "soar_cnn")
    with pytest.raises(ValueError, match="sgr_cnn") as err:
        rnn.create("vgg16", 10)
    assert "resnet" in str(err.value) and "vgg16" in str(err.value)
    for bad in (1, 0, -3, 2.0, True, "10"):
        with pytest.raises(ValueError, match="num_classes"):
            rnn.create("mlp", bad)
    with pytest.raises(ValueError, match="unknown keyword.*depht"):
        rnn.create("resnet", 10, depht=56)


@pytest.mark.parametrize("name,kw,match", [
    ("sgr_cnn", {"width": "imagenet"}, "width"),
    ("resnet", {"depth": 21}, "depth"),
    ("resnet", {"normalization": "layer"}, "normalization"),
    ("alexnet_small", {"activation": "tanh"}, "activation"),
    ("alexnet_small", {"pool_padding": "FULL"}, "pool_padding"),
    ("mlp", {"hidden_layers": 0}, "hidden_layers"),
    ("cnn7", {"width": 0}, "width"),
    ("mlp", {"std": 0.0}, "std"),
])
def test_bad_hyperparameters(name, kw, match):
    with pytest.raises(ValueError, match=match):
        rnn.create(name, 10, **kw)


def test_direct_construction_validates_num_classes():
    with pytest.raises(ValueError, match="num_classes"):
        rnn.SGRCNN(num_classes=1)


def test_pool_ties_first_gives_flax_max_pool_input_gradient(monkeypatch):
    """``pool_ties="first"``: the zoo CNN's input gradient on MNIST digits (flat black background,
    many tied 2x2 windows) equals that of the same network built on ``flax.linen.max_pool`` —
    the PyTorch rule — while the default ``"split"`` rule differs on these inputs."""
    from robustjax.data import load
    from robustjax.nn import convnets

    x = jnp.asarray(load("mnist-5k", "test").images[:2, 6:22, 6:22])  # 16x16 centre crops
    model = rnn.create("sgr_cnn", 10, pool_ties="first", mean=0.1311, std=0.3083)
    params = model.init(KEY, x)

    def grad(m=model):
        return jax.jit(jax.grad(lambda x: jnp.sum(m.apply(params, x)[:, 3])))(x)

    g_first = grad()
    g_split = grad(model.clone(pool_ties="split"))
    monkeypatch.setattr(convnets, "max_pool", lambda x, window, strides, padding, ties:
                        nn.max_pool(x, window, strides=strides, padding=padding))
    g_flax = grad()
    np.testing.assert_allclose(g_first, g_flax, rtol=1e-5, atol=1e-7)
    assert float(jnp.mean(jnp.sign(g_split) != jnp.sign(g_flax))) > 0.01
    with pytest.raises(ValueError, match="pool_ties"):
        rnn.create("sgr_cnn", 10, pool_ties="last")
