"""Zoo models run differentiated passes as batch slices (robustjax.nn.batch_chains, issue 18).

The reference is the same network with ``batch_chains=1`` (one pass over the whole batch), in
float64: every derivative must agree to rounding, and the sliced form must really be the one
traced (jaxpr structure), or the speed-up would be silently lost.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.nn import batch_chains as bc
from robustjax.nn import SGRCNN, create

B = 130  # "auto" -> 2 slices of 65 (traced only; values are checked on small batches)
SMALL = 7  # with batch_chains=2 or 3: uneven slices


@pytest.fixture(scope="module", autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _setup(name="sgr_cnn", batch=B, shape=None, **kw):
    if shape is None:  # small images keep float64 XLA:CPU fast (the SGR CNN needs >= 16x16)
        shape = (8, 8, 3) if name == "resnet" else (16, 16, 1)
    model = create(name, 10, **kw)
    x = jax.random.uniform(jax.random.PRNGKey(1), (batch,) + shape, dtype=jnp.float64)
    v = model.init(jax.random.PRNGKey(0), x[:1])
    v = jax.tree.map(lambda a: a.astype(jnp.float64), v)
    y = jax.random.randint(jax.random.PRNGKey(2), (batch,), 0, 10)
    return model, v, x, y


def _loss(model, v, x, y):
    logp = jax.nn.log_softmax(model.apply(v, x))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def _close(a, b, tol=1e-12):
    for p, q in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        scale = float(jnp.max(jnp.abs(q))) + 1e-300
        assert float(jnp.max(jnp.abs(p - q))) <= tol * scale


def _n_conv(jaxpr_text):
    return jaxpr_text.count("robustjax_conv[") + jaxpr_text.count("conv_general_dilated[")


@pytest.mark.parametrize("batch, expected", [(1, 1), (63, 1), (64, 2), (130, 2), (256, 4),
                                             (512, 8), (4096, 8)])
def test_auto_rule(batch, expected, monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")  # whatever runs the tests
    monkeypatch.setattr(jax, "device_count", lambda: 1)
    assert bc.num_chains("auto", batch) == expected


def test_integer_setting_and_bounds():
    assert bc.num_chains(3, 130) == 3
    assert bc.num_chains(5, 2) == 2
    assert bc.num_chains(1, 4096) == 1


@pytest.mark.parametrize("bad", ["two", "Auto", 0, -1, True, 1.5, None])
def test_bad_setting_raises(bad):
    with pytest.raises(ValueError, match="batch_chains"):
        bc.check_batch_chains(bad)
    with pytest.raises(ValueError, match="batch_chains"):
        create("sgr_cnn", 10, batch_chains=bad)


def test_auto_is_off_on_other_backends_and_several_devices(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert bc.num_chains("auto", 512) == 1
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    monkeypatch.setattr(jax, "device_count", lambda: 8)
    assert bc.num_chains("auto", 512) == 1
    assert bc.num_chains(4, 512) == 4  # an explicit number is honoured


@pytest.mark.parametrize("name, kw", [("sgr_cnn", {}), ("mlp", {}),
                                      ("resnet", {"normalization": "none", "depth": 8})])
def test_derivatives_match_one_pass(name, kw):
    model, v, x, y = _setup(name, batch=SMALL, batch_chains=2, **kw)
    one = model.clone(batch_chains=1)
    t = jax.random.normal(jax.random.PRNGKey(3), x.shape, dtype=x.dtype)
    u = jax.random.normal(jax.random.PRNGKey(4), (x.shape[0], 10), dtype=x.dtype)

    @jax.jit
    def derivatives(v, x, t, u):
        def all_of(m):
            def logits(z):
                return m.apply(v, z)

            def penalty(params):  # double backprop of an input-gradient penalty (SGR, GN)
                gx = jax.grad(lambda z: _loss(m, {**v, "params": params}, z, y))(x)
                return jnp.sum(gx ** 2)
            return dict(
                grads=jax.grad(_loss, (1, 2))(m, v, x, y),              # reverse mode
                jvp=jax.jvp(logits, (x,), (t,)),                        # power iteration J v
                vjp=jax.vjp(logits, x)[1](u),                           # J^T u
                hvp=jax.jvp(jax.grad(lambda z: _loss(m, v, z, y)), (x,), (t,))[1],  # SOAR
                penalty=jax.grad(penalty)(v["params"]),
            )
        return all_of(model), all_of(one)
    two, ref = derivatives(v, x, t, u)
    for key in ref:
        _close(two[key], ref[key], 1e-10)


def test_vmap_of_per_example_gradients_matches():
    model, v, x, y = _setup(batch=SMALL, batch_chains=2)
    one = model.clone(batch_chains=1)

    @jax.jit
    def per_example(x):
        # per-example input gradients of the whole batch under vmap (batched slices), and of
        # pairs: each vmapped call sees a batch of 2, which batch_chains=2 splits
        def one_pair(m):
            return jax.vmap(lambda a, b: jax.grad(lambda z: _loss(m, v, z, b))(a))(
                x[:6].reshape(3, 2, *x.shape[1:]), y[:6].reshape(3, 2))
        return [(one_pair(m), jax.vmap(jax.grad(lambda z, m=m: _loss(m, v, z, y)), (0,))(x[None]))
                for m in (model, one)]
    two, ref = per_example(x)
    _close(two, ref)


def test_sliced_only_when_differentiated():
    model, v, x, y = _setup()
    one = model.clone(batch_chains=1)
    fwd = str(jax.make_jaxpr(lambda z: model.apply(v, z))(x))
    assert "concatenate" not in fwd and _n_conv(fwd) == 4
    grad = str(jax.make_jaxpr(jax.grad(lambda p: _loss(model, {"params": p}, x, y)))(v["params"]))
    grad_one = str(jax.make_jaxpr(jax.grad(lambda p: _loss(one, {"params": p}, x, y)))(v["params"]))
    # 2 slices: every convolution of the forward and backward pass appears twice
    assert _n_conv(grad) == 2 * _n_conv(grad_one) > 0
    three = str(jax.make_jaxpr(jax.grad(
        lambda p: _loss(model.clone(batch_chains=3), {"params": p}, x, y)))(v["params"]))
    assert _n_conv(three) == 3 * _n_conv(grad_one)
    # values: the logits of each slice are the logits of the whole batch
    _close(jax.jit(lambda z: jax.jvp(lambda a: model.apply(v, a), (z,), (z,))[0])(x),
           jax.jit(lambda z: one.apply(v, z))(x), 1e-13)


def test_batchnorm_training_sees_the_whole_batch():
    model, v, x, y = _setup("resnet", batch=SMALL, depth=8, batch_chains=2)  # BatchNorm

    def loss(m, params):
        out, upd = m.apply({**v, "params": params}, x, train=True, mutable=["batch_stats"])
        return jnp.mean(out ** 2), upd
    step = jax.jit(jax.value_and_grad(loss, 1, has_aux=True), static_argnums=0)
    (l2, u2), g2 = step(model, v["params"])
    (l1, u1), g1 = step(model.clone(batch_chains=1), v["params"])
    _close((l2, u2, g2), (l1, u1, g1), 0.0)  # the same program: no slices were made
    text = str(jax.make_jaxpr(lambda p: jax.grad(lambda q: loss(model, q)[0])(p))(v["params"]))
    assert "concatenate" not in text


def test_not_sliced_inside_a_parent_module_or_with_rngs():
    model, v, x, y = _setup()

    class Wrapper(nn.Module):
        @nn.compact
        def __call__(self, z):
            return SGRCNN(num_classes=10, name="inner")(z)

    w = Wrapper()
    wv = w.init(jax.random.PRNGKey(0), x[:1])
    text = str(jax.make_jaxpr(jax.grad(lambda z: w.apply(wv, z).sum()))(x))
    assert "concatenate" not in text
    text = str(jax.make_jaxpr(jax.grad(
        lambda z: model.apply(v, z, rngs={"dropout": jax.random.PRNGKey(0)}).sum()))(x))
    assert "concatenate" not in text


def test_without_chains():
    model, *_ = _setup()
    assert bc.without_chains(model).batch_chains == 1
    dense = nn.Dense(3)
    assert bc.without_chains(dense) is dense


def test_intercepted_features_cover_the_whole_batch():
    from robustjax.analyze.models import ModelFunction

    model, v, x, y = _setup(batch=SMALL, batch_chains=2)
    f = ModelFunction(model, v, output="features")
    feats = jax.jit(lambda z: f(z))(x)
    assert feats.shape == (SMALL, 200)  # the penultimate layer of every example
    g = jax.jit(jax.grad(lambda z: f(z).sum()))(x)
    g_one = jax.jit(jax.grad(
        lambda z: ModelFunction(model.clone(batch_chains=1), v, "features")(z).sum()))(x)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_one), rtol=0, atol=1e-12)
