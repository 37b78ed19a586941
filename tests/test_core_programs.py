"""robustjax.core.programs: compiled programs keyed by a callable's structure, not its arrays.

Every public function that compiles is called twice with *new* parameters of a pytree
``logits_fn``; the second call must compile nothing (counted with ``jax.monitoring`` events) and
return what a fresh computation (a closure over the same parameters, run inline or compiled
anew) returns.
"""

import gc
import math
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.tree_util import Partial

from robustjax import attacks, evaluation, regularizers
from robustjax.core import jacobian_top_singular, power_iteration, programs

B, SHAPE, K = 4, (6, 6, 1), 3


def mlp(params, x):
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ params["w1"] + params["b1"])
    return h @ params["w2"]


def make_params(seed):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return {"w1": jax.random.normal(k1, (36, 8)) / 4.0,
            "b1": 0.1 * jax.random.normal(k2, (8,)),
            "w2": jax.random.normal(k3, (8, K)) / 2.0}


X = jax.random.uniform(jax.random.key(10), (B,) + SHAPE)
Y = jnp.array([0, 1, 2, 0])
KEY = jax.random.key(11)
SUITE = [evaluation.AttackSpec("FGSM", "fgsm", eps=(0.1,), norm=math.inf)]

CALLS = {  # the four functions of the benchmark rows (the others: tests/test_interop.py)
    "pgd": lambda f: attacks.pgd(f, X, Y, eps=0.1, norm=jnp.inf, step_size=0.03, steps=3, key=KEY),
    "jacobian_top_singular": lambda f: jacobian_top_singular(f, X, iters=5, key=KEY),
    "soar_penalty": lambda f: regularizers.soar_penalty(f, X, Y, eps=0.1, alpha=0.05, key=KEY),
    "evaluate": lambda f: evaluation.evaluate(
        f, (np.asarray(X), np.asarray(Y)), suite=SUITE, batch_size=4, key=0, progress=False,
        checks=False).per_example(),
}


def _close(a, b, name):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(u, np.float64), np.asarray(v, np.float64),
                                   rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_second_call_with_new_parameters_compiles_nothing(name):
    call = CALLS[name]
    call(Partial(mlp, make_params(0)))  # compiles
    new = make_params(1)
    with programs.compile_stats() as stats:
        got = jax.block_until_ready(call(Partial(mlp, new)))
    assert stats.compiles == 0, f"{name}: {stats.compiles} compilations with new parameters"
    if name == "evaluate":  # an opaque closure: programs of its own
        want = call(lambda x: mlp(new, x))
    else:  # under the test's jit, parameters traced: everything inlined in a fresh program
        want = jax.jit(lambda p: call(Partial(mlp, p)))(new)
    _close(got, want, name)


def test_power_iteration_with_pytree_operators_is_reused():
    def matvec(a, v):
        return jnp.einsum("bij,bj->bi", a, v)

    def rmatvec(a, u):
        return jnp.einsum("bij,bi->bj", a, u)

    mats = [jax.random.normal(jax.random.key(s), (3, 5, 4)) for s in (0, 1)]
    v0 = jnp.ones((3, 4))
    power_iteration(Partial(matvec, mats[0]), Partial(rmatvec, mats[0]), v0, iters=30)
    with programs.compile_stats() as stats:
        sigma, _, _ = power_iteration(Partial(matvec, mats[1]), Partial(rmatvec, mats[1]), v0,
                                      iters=30)
    assert stats.compiles == 0
    np.testing.assert_allclose(sigma, np.linalg.svd(np.asarray(mats[1]), compute_uv=False)[:, 0],
                               rtol=1e-4)


def test_split_callable_separates_arrays_from_structure():
    p0, p1 = make_params(0), make_params(1)
    s0, a0 = programs.split_callable(Partial(mlp, p0))
    s1, a1 = programs.split_callable(Partial(mlp, p1))
    assert s0 == s1 and hash(s0) == hash(s1) and len(a0) == 3
    assert not any(isinstance(v, jax.Array) for _, v in s0.static_leaves)
    np.testing.assert_allclose(s0.rebuild(a1)(X), mlp(p1, X))
    # Python scalars and functions are static: a different value is a different structure.
    sa, arrays = programs.split_callable(Partial(lambda p, c, x: mlp(p, x) * c, p0, 2.0))
    assert len(arrays) == 3 and any(v == 2.0 for _, v in sa.static_leaves)
    assert programs.split_callable(lambda x: mlp(p0, x)) == (None, [])
    assert programs.is_pytree_callable(Partial(mlp, p0))
    assert not programs.is_pytree_callable(mlp)


def test_a_cache_entry_keeps_no_arrays_alive():
    params = make_params(2)
    leaf_ref = weakref.ref(params["w1"])
    attacks.fgm(Partial(mlp, params), X, Y, eps=0.3)
    closure_params = make_params(3)
    closure_ref = weakref.ref(closure_params["w1"])
    fn = lambda x: mlp(closure_params, x)  # noqa: E731
    attacks.fgm(fn, X, Y, eps=0.3)
    size = programs.cache_info()["size"]
    del params, closure_params, fn
    gc.collect()
    assert leaf_ref() is None, "the cached program of a Partial holds its parameters"
    assert closure_ref() is None, "the cached program of a closure holds its parameters"
    assert programs.cache_info()["size"] == size - 1  # the closure's entry went with it


def test_same_opaque_callable_is_reused_and_bound_methods_key_on_their_object():
    params = make_params(4)

    class Model:
        def __init__(self, p):
            self.p = p

        def logits(self, x):
            return mlp(self.p, x)

    model = Model(params)
    fn = lambda x: mlp(params, x)  # noqa: E731
    for f in (fn, model.logits):
        attacks.fgm(f, X, Y, eps=0.1)
        with programs.compile_stats() as stats:
            attacks.fgm(f, X, Y, eps=0.1)
        assert stats.compiles == 0
    with programs.compile_stats() as stats:  # a bound method is created anew at each access
        attacks.fgm(model.logits, X, Y, eps=0.1)
    assert stats.compiles == 0


def test_under_grad_the_arrays_of_a_partial_are_traced_and_run_inline():
    params = make_params(5)

    def via_partial(p):
        return regularizers.gradient_norm_penalty(Partial(mlp, p), X, Y)

    def via_closure(p):
        return regularizers.gradient_norm_penalty(lambda x: mlp(p, x), X, Y)

    # jax.jit(jax.grad(...)): the Partial's arrays are tracers, so the penalty is inlined into
    # the test's program, as a closure's is (an eager jax.grad takes the same path, op by op)
    _close(jax.jit(jax.grad(via_partial))(params), jax.jit(jax.grad(via_closure))(params), "grad")


def test_compile_stats_counts_a_new_program():
    v = jnp.arange(7.0)
    with programs.compile_stats() as stats:
        jax.jit(lambda v: v * 3.0 + 1.0)(v).block_until_ready()
    assert stats.compiles == 1 and stats.seconds > 0


def test_partial_of_a_method_keys_on_an_equal_object_not_the_same_one():
    import flax.linen as linen

    class Net(linen.Module):
        width: int = 3

        @linen.compact
        def __call__(self, x, train=True):
            return linen.Dense(self.width)(x.reshape(x.shape[0], -1))

    variables = Net().init(jax.random.key(0), X)
    a, b = (Partial(Net().apply, variables, train=False) for _ in range(2))  # two Net objects
    (sa, arrays), (sb, _) = programs.split_callable(a), programs.split_callable(b)
    assert sa == sb and len(arrays) == 2
    np.testing.assert_allclose(sa.rebuild(arrays)(X), a(X))
    assert programs.split_callable(Partial(Net(width=4).apply, variables))[0] != sa
