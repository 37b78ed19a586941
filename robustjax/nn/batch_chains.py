"""Differentiated passes of the zoo models as independent batch slices on CPU (issue 18).

Why (measured on the 2-core CPU, SGR MNIST CNN, jax 0.10.2, Adam, interleaved in one process):
the training step ``jax.jit(value_and_grad(loss) + optax.adam)`` at batch 128 took 66-70 ms
when the network ran on the whole batch and 60-61 ms when it ran on two halves of 64 whose
logits were concatenated (batch 512: 370 ms whole, 302 ms as 8 slices of 64; batch 64:
35 vs 32 ms). The gradient alone did not change (62 vs 61 ms): with the whole batch, the Adam
update added 5-8 ms to the step; with two independent chains XLA:CPU overlaps it and the
slices' convolutions on its two threads. A forward pass alone, in contrast, is slower in
slices (14.8 vs 17.0 ms at batch 128, 60 vs 100 ms at 512): XLA runs an undifferentiated
forward pass as one YNNPACK fusion, which splitting breaks up.

What: :func:`chained_call` runs ``module.forward`` on the whole batch when the call is not
differentiated, and on :func:`num_chains` slices under ``jax.jvp`` / ``jax.grad`` /
``jax.linearize`` (a ``jax.custom_jvp`` whose rule is the forward-mode derivative of the
sliced pass). Every example's logits are computed by the same operations either way, and the
derivatives are the same functions; only the order in which a parameter gradient's per-slice
sums are added differs (float rounding; float64 tests compare every derivative to 1e-10).

The slices are used only when that is the same model: no collection is mutable in the call
(BatchNorm statistics, spectral-normalization state and captured intermediates see the
whole batch), no PRNG streams are passed, the module is bound at the top level, the default
backend is CPU with one device (sharded batches keep their layout), and every slice has at
least 32 examples. ``batch_chains=1`` turns it off, e.g. for ``nn.intercept_methods``
interceptors that keep layer inputs (they would otherwise see values from inside the
``custom_jvp`` trace).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

__all__ = ["CHAIN_SIZE", "MAX_CHAINS", "MIN_CHAIN_SIZE", "check_batch_chains", "num_chains",
           "chained_call", "without_chains"]

#: ``"auto"`` aims at slices of this many examples (the best size measured at batch 128-512).
CHAIN_SIZE = 64
#: ``"auto"`` uses at most this many slices.
MAX_CHAINS = 8
#: ``"auto"`` never makes a slice smaller than this (batch < 2 * MIN_CHAIN_SIZE: one slice).
MIN_CHAIN_SIZE = 32


def check_batch_chains(value) -> int | str:
    """Validate a ``batch_chains`` setting: ``"auto"`` or an integer >= 1 (``ValueError``)."""
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"batch_chains must be 'auto' or an integer >= 1; got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"batch_chains must be 'auto' or an integer >= 1; got {value!r}")
    return value


def num_chains(setting: int | str, batch: int) -> int:
    """How many slices a differentiated pass over ``batch`` examples uses.

    An integer ``k`` gives ``min(k, batch)``. ``"auto"`` gives ``clip(batch // CHAIN_SIZE, 2,
    MAX_CHAINS)`` for ``batch >= 2 * MIN_CHAIN_SIZE`` on a single-device CPU backend, and 1
    otherwise.
    """
    setting = check_batch_chains(setting)
    if batch < 1:
        return 1
    if setting != "auto":
        return min(setting, batch)
    if batch < 2 * MIN_CHAIN_SIZE or jax.default_backend() != "cpu" or jax.device_count() != 1:
        return 1
    return max(2, min(MAX_CHAINS, batch // CHAIN_SIZE))


def without_chains(model):
    """``model`` with ``batch_chains=1`` if it has that attribute (e.g. before capturing layer
    values with ``nn.intercept_methods``), else ``model`` itself."""
    if any(f.name == "batch_chains" for f in getattr(model, "__dataclass_fields__", {}).values()):
        return model.clone(batch_chains=1)
    return model


def _slices(x, k):
    n = x.shape[0]
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [x[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _sliced(forward, k):
    def run(variables, x):
        return jnp.concatenate([forward(variables, part) for part in _slices(x, k)], axis=0)
    return run


def chained_call(module, x, *args):
    """``module.forward(x, *args)``, with differentiated passes run as batch slices (see the
    module docstring). ``module`` is a bound zoo model with a ``batch_chains`` attribute."""
    k = num_chains(module.batch_chains, x.shape[0]) if x.ndim else 1
    if k == 1 or module.is_initializing() or not _is_top_level(module):
        return module.forward(x, *args)
    unbound = module.clone(parent=None)

    def whole(variables, z):
        return unbound.apply(variables, z, *args, method="forward")

    return _custom(whole, _sliced(whole, k), module.variables, x)


def _is_top_level(module) -> bool:
    scope = module.scope
    return (scope is not None and not scope.mutable and not scope.rngs
            and scope.parent is None)


def _custom(whole, sliced, variables, x):
    @jax.custom_jvp
    def f(v, z):
        return whole(v, z)

    def rule(primals, tangents):
        leaves, tree = jax.tree.flatten(primals)
        t_leaves = jax.tree.leaves(tangents, is_leaf=lambda t: isinstance(t, SymbolicZero))
        active = [i for i, t in enumerate(t_leaves) if not isinstance(t, SymbolicZero)]

        def g(*vals):
            full = list(leaves)
            for i, a in zip(active, vals):
                full[i] = a
            return sliced(*jax.tree.unflatten(tree, full))

        if not active:
            y = sliced(*primals)
            return y, jnp.zeros_like(y)
        return jax.jvp(g, [leaves[i] for i in active], [t_leaves[i] for i in active])

    f.defjvp(rule, symbolic_zeros=True)
    return f(variables, x)
