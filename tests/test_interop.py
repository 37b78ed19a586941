"""The core API on one network written in four frameworks: Flax Linen, Flax NNX (the module
itself and ``nnx.split``/``nnx.merge``), Equinox and plain JAX.

The same float64 weights are loaded into each; every function must return the same numbers
(to float64 rounding) as a reference computed by a different route: the plain-JAX network under
the test's own ``jax.jit`` (everything inlined, parameters traced). Each variant is a pytree
callable, so its *second* call, with new weights, must reuse the compiled program (no
compilation) and still give the reference's numbers for the new weights.
"""

import math

import equinox as eqx
import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.tree_util import Partial

from robustjax import attacks, evaluation, regularizers
from robustjax.core import jacobian_top_singular, programs

B, H, C_IN, C_MID, K = 4, 6, 1, 2, 3
FLAT = (H - 2) * (H - 2) * C_MID


def canonical_params(seed):
    """Weights in the plain/Linen layout: conv HWIO, dense [in, out]."""
    ks = jax.random.split(jax.random.key(seed), 4)
    return {
        "conv": {"kernel": jax.random.normal(ks[0], (3, 3, C_IN, C_MID), jnp.float64) / 2.0,
                 "bias": 0.1 * jax.random.normal(ks[1], (C_MID,), jnp.float64)},
        "dense": {"kernel": jax.random.normal(ks[2], (FLAT, K), jnp.float64) / 3.0,
                  "bias": 0.1 * jax.random.normal(ks[3], (K,), jnp.float64)},
    }


# --- plain JAX ---------------------------------------------------------------------------------


def plain_apply(params, x):
    h = jax.lax.conv_general_dilated(x, params["conv"]["kernel"], (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    h = jnp.tanh(h + params["conv"]["bias"])
    return h.reshape(h.shape[0], -1) @ params["dense"]["kernel"] + params["dense"]["bias"]


# --- Flax Linen --------------------------------------------------------------------------------


class LinenNet(linen.Module):
    @linen.compact
    def __call__(self, x):
        h = jnp.tanh(linen.Conv(C_MID, (3, 3), padding="VALID", name="conv")(x))
        return linen.Dense(K, name="dense")(h.reshape(h.shape[0], -1))


LINEN_NET = LinenNet()  # one model object: the bound method ``apply`` is part of the structure


def linen_fn(params):
    return Partial(LINEN_NET.apply, {"params": params})


# --- Flax NNX ----------------------------------------------------------------------------------


class NNXNet(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(C_IN, C_MID, (3, 3), padding="VALID", rngs=rngs)
        self.dense = nnx.Linear(FLAT, K, rngs=rngs)

    def __call__(self, x):
        h = jnp.tanh(self.conv(x))
        return self.dense(h.reshape(h.shape[0], -1))


def nnx_module(params):
    net = NNXNet(nnx.Rngs(0))
    for layer in ("conv", "dense"):
        for name in ("kernel", "bias"):
            setattr(getattr(net, layer), name, nnx.Param(params[layer][name]))
    return net


def nnx_merge_apply(graphdef, state, x):
    return nnx.merge(graphdef, state)(x)


def nnx_split_fn(params):
    graphdef, state = nnx.split(nnx_module(params))
    return Partial(nnx_merge_apply, graphdef, state)


# --- Equinox -----------------------------------------------------------------------------------


class EqxNet(eqx.Module):
    conv: eqx.nn.Conv2d
    dense: eqx.nn.Linear

    def __call__(self, x):  # x [B, H, W, C]; Equinox layers act on one CHW example
        def one(xi):
            h = jnp.tanh(self.conv(jnp.transpose(xi, (2, 0, 1))))
            return self.dense(jnp.transpose(h, (1, 2, 0)).reshape(-1))

        return jax.vmap(one)(x)


def eqx_module(params):
    k1, k2 = jax.random.split(jax.random.key(0))
    net = EqxNet(eqx.nn.Conv2d(C_IN, C_MID, 3, key=k1), eqx.nn.Linear(FLAT, K, key=k2))
    return eqx.tree_at(
        lambda n: (n.conv.weight, n.conv.bias, n.dense.weight, n.dense.bias), net,
        (jnp.transpose(params["conv"]["kernel"], (3, 2, 0, 1)),
         params["conv"]["bias"].reshape(C_MID, 1, 1),
         params["dense"]["kernel"].T, params["dense"]["bias"]))


VARIANTS = {
    "plain": lambda p: Partial(plain_apply, p),
    "linen": linen_fn,
    "nnx_module": nnx_module,
    "nnx_split_merge": nnx_split_fn,
    "equinox": eqx_module,
}

# --- the functions -------------------------------------------------------------------------------

KEY = jax.random.key(7)


def _data():
    x = jax.random.uniform(jax.random.key(3), (B, H, H, C_IN), jnp.float64)
    return x, jnp.array([0, 1, 2, 1])


CALLS = {
    "fgm": lambda f, x, y: attacks.fgm(f, x, y, eps=0.5, norm=2),
    "pgd": lambda f, x, y: attacks.pgd(f, x, y, eps=0.1, norm=math.inf, step_size=0.04,
                                       steps=3, key=KEY, unroll=False),
    "deepfool": lambda f, x, y: attacks.deepfool(f, x, max_iter=4),
    "jacobian_top_singular": lambda f, x, y: jacobian_top_singular(f, x, iters=4, key=KEY),
    "jacobian_spectral_penalty": lambda f, x, y: regularizers.jacobian_spectral_penalty(
        f, x, iters=3, key=KEY),
    "sos_spectral_penalty": lambda f, x, y: regularizers.sos_spectral_penalty(
        f, x, eps=0.5, iters=3, key=KEY),
    "sgr_penalty": lambda f, x, y: regularizers.sgr_penalty(
        f, x, y, covariance=jnp.linspace(0.5, 1.5, H * H * C_IN)),
    "gradient_norm_penalty": lambda f, x, y: regularizers.gradient_norm_penalty(f, x, y),
    "soar_penalty": lambda f, x, y: regularizers.soar_penalty(f, x, y, eps=0.1, alpha=0.05,
                                                              key=KEY),
}
# Two functions run in the default suite; the others (each compiles once per variant, ~1-2 s of
# CPU per function) in the slow suite: python -m pytest -m slow tests/test_interop.py. The
# compile-free second call of pgd, jacobian_top_singular, soar_penalty and evaluate is also
# checked in the default suite on the plain-JAX variant (tests/test_core_programs.py).
FAST = ("fgm", "sgr_penalty")


@pytest.fixture(autouse=True, scope="module")
def _float64():
    with jax.enable_x64(True):
        yield


def _assert_close(got, want, msg):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-7, atol=1e-9,
                                   err_msg=msg)


def _check_function(name):
    x, y = _data()
    call = CALLS[name]
    first, second = canonical_params(0), canonical_params(1)
    reference = jax.jit(lambda p: call(Partial(plain_apply, p), x, y))  # traced: inlined
    want_first, want_second = reference(first), reference(second)
    for variant, make in VARIANTS.items():
        _assert_close(call(make(first), x, y), want_first, f"{name} / {variant}")
        fn = make(second)
        with programs.compile_stats() as stats:
            got = jax.block_until_ready(call(fn, x, y))
        assert stats.compiles == 0, f"{name} / {variant}: new weights compiled again"
        _assert_close(got, want_second, f"{name} / {variant}, new weights")


@pytest.mark.parametrize("name", FAST)
def test_every_framework_gives_the_same_numbers(name):
    _check_function(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(CALLS) - set(FAST)))
def test_every_framework_gives_the_same_numbers_slow(name):
    _check_function(name)


@pytest.mark.slow
def test_evaluate_on_every_framework():
    x, y = _data()
    data = (np.asarray(x, np.float32), np.asarray(y))  # evaluate feeds float32 chunks

    def params_of(seed):
        return jax.tree.map(lambda a: a.astype(jnp.float32), canonical_params(seed))

    suite = [evaluation.AttackSpec("FGSM", "fgsm", eps=(0.1,), norm=math.inf),
             evaluation.AttackSpec("PGD", "pgd", eps=(0.1,), norm=math.inf,
                                   params={"steps": 2, "step_size": 0.05})]

    def run(fn):
        report = evaluation.evaluate(fn, data, suite=suite, batch_size=B, key=0, progress=False,
                                     checks=False)
        return report.per_example()

    params = params_of(1)
    want = run(lambda v: plain_apply(params, v))  # an opaque closure: its own programs
    for variant, make in VARIANTS.items():
        run(make(params_of(0)))
        with programs.compile_stats() as stats:
            got = run(make(params))
        assert stats.compiles == 0, f"evaluate / {variant}: new weights compiled again"
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_allclose(np.asarray(got[k], np.float64),
                                       np.asarray(want[k], np.float64), rtol=1e-5, atol=1e-6,
                                       err_msg=f"evaluate / {variant} / {k}")


def test_the_variants_are_the_same_function():
    x, _ = _data()
    params = canonical_params(2)
    want = plain_apply(params, x)
    for variant, make in VARIANTS.items():
        fn = make(params)
        assert programs.is_pytree_callable(fn), variant
        _assert_close(fn(x), want, variant)
