"""Compiled programs keyed by the *structure* of a model function, not by its parameters.

robustjax's public functions take a model function ``logits_fn`` and, when called outside a
trace, run as one ``jax.jit`` program. A new ``jax.jit`` of a function that closes over its
parameters is a new program: evaluating ten checkpoints, or attacking after each epoch, would
compile ten times (issue 15: PGD-10 on the SGR MNIST CNN, 4.4 s per new set of parameters
against 1.1 s for a compiled call). This module removes that cost for **pytree callables**:

* a ``jax.tree_util.Partial(model.apply, variables)`` (Flax Linen),
* a Flax NNX module (``nnx.Module`` is a pytree in flax ≥ 0.11), or
  ``Partial(apply, graphdef, state)`` over ``nnx.split``,
* an Equinox module,
* any registered pytree with a ``__call__``.

:func:`split_callable` flattens such a callable with ``jax.tree_util.tree_flatten`` into its array
leaves and a hashable :class:`Structure` (the tree definition, which holds the function and
static fields, plus the non-array leaves). The arrays become *dynamic arguments* of the jitted
program and only the structure keys the cache, so new parameters of the same shapes reuse the
compiled program (jit's own cache handles new shapes and dtypes). A cache entry holds no arrays.

Opaque callables (a ``lambda``, a closure, a ``functools.partial``) cannot be split. Attacks still
compile them, keyed by the object's identity through a *weak* reference: the entry disappears
with the function and never keeps its closure (and parameters) alive; calling again with the
same object reuses the program, a new lambda compiles anew. Core functions and regularizers run
opaque callables inline (op by op, as plain JAX code), because they are mostly called with a
closure rebuilt at every step, often under ``jax.grad``, where compiling per call costs more
than it saves. Wrap the model as ``jax.tree_util.Partial(model.apply, variables)`` to get a
compiled, reusable program everywhere.

Under a trace (inside the user's ``jax.jit``, ``jax.grad`` with respect to the parameters held by
the callable, ``vmap``...), every function runs inline: the outer program is the compiled one.

:func:`compile_stats` counts compilations (a ``jax.monitoring`` listener); the tests and
``python -m benchmarks`` use it to show that a second call with new parameters compiles nothing.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import inspect
import threading
import types
import weakref
from typing import Any, Callable, Hashable, Iterator, Sequence

import jax
import numpy as np

__all__ = [
    "CACHE_SIZE",
    "CompileStats",
    "Opaque",
    "Structure",
    "cache_info",
    "clear_cache",
    "compile_stats",
    "compiled",
    "has_tracer",
    "is_pytree_callable",
    "run",
    "split_callable",
]

#: Maximum number of compiled programs kept (least recently used evicted first).
CACHE_SIZE = 128


# ---------------------------------------------------------------------------------------------
# Splitting a callable into (structure, arrays)
# ---------------------------------------------------------------------------------------------


def _is_array(leaf: Any) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic))


@dataclasses.dataclass(frozen=True)
class Structure:
    """The static part of a pytree callable: its tree definition and its non-array leaves.

    Hashable and free of arrays; :meth:`rebuild` puts arrays (or tracers) back in."""

    treedef: Any
    static_leaves: tuple  # ((position, value), ...) of the non-array leaves, in leaf order
    num_leaves: int

    def rebuild(self, arrays: Sequence[Any]) -> Any:
        leaves = [None] * self.num_leaves
        static = dict(self.static_leaves)
        it = iter(arrays)
        for i in range(self.num_leaves):
            leaves[i] = static[i] if i in static else next(it)
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


class Opaque:
    """A callable that cannot be split, keyed by identity through a weak reference.

    Equal only to an ``Opaque`` of the same live object. A bound method is referenced through
    its ``__self__`` (a bound method object is created anew at each attribute access)."""

    __slots__ = ("_ref", "_func", "_hash", "__weakref__")

    def __init__(self, fn: Any, callback: Callable | None = None):
        if inspect.ismethod(fn):
            owner, self._func = fn.__self__, fn.__func__
        else:
            owner, self._func = fn, None
        self._ref = weakref.ref(owner, callback)  # TypeError if owner has no weak references
        self._hash = hash((id(owner), self._func))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: Any) -> bool:
        if self is other:
            return True
        if not isinstance(other, Opaque):
            return False
        mine = self._ref()
        return mine is not None and mine is other._ref() and self._func is other._func

    @property
    def alive(self) -> bool:
        return self._ref() is not None

    def rebuild(self, arrays: Sequence[Any] = ()) -> Any:
        owner = self._ref()
        if owner is None:  # pragma: no cover - the caller holds the function while it runs
            raise RuntimeError("the function of this compiled program has been garbage collected")
        return types.MethodType(self._func, owner) if self._func is not None else owner


def is_pytree_callable(fn: Any) -> bool:
    """Whether ``fn`` is a callable pytree node (``Partial``, NNX or Equinox module, ...)."""
    if not callable(fn):
        return False
    leaves, treedef = jax.tree_util.tree_flatten(fn)
    return not (treedef.num_nodes == 1 and len(leaves) == 1 and leaves[0] is fn)


def _unbind_partial(fn: Any) -> Any:
    """``Partial(obj.method, *args)`` as the equivalent ``Partial(method, obj, *args)``.

    A bound method compares equal only to a method of the *same* object (Python ≥ 3.8), so
    ``Partial(model.apply, variables)`` over an equal but new model object (a checkpoint loaded
    again, a model rebuilt from its config) would be a new structure. As an argument, ``obj``
    is compared by value if it is a leaf (a Flax Linen module is a frozen dataclass) and
    flattened if it is a pytree.
    """
    if isinstance(fn, jax.tree_util.Partial) and inspect.ismethod(fn.func):
        return jax.tree_util.Partial(fn.func.__func__, fn.func.__self__, *fn.args, **fn.keywords)
    return fn


def split_callable(fn: Any) -> tuple[Structure | None, list]:
    """``(structure, arrays)`` of a pytree callable; ``(None, [])`` for an opaque one.

    ``structure.rebuild(arrays)`` is ``fn`` again (with the given arrays; a ``Partial`` of a
    bound method comes back as the equivalent ``Partial`` of its function). Array leaves
    (``jax.Array``, NumPy arrays and scalars) are the dynamic part; every other leaf (Python
    numbers, strings, functions) is static and part of the structure. A structure that cannot be
    hashed (an unhashable static field) counts as opaque.
    """
    fn = _unbind_partial(fn)
    leaves, treedef = jax.tree_util.tree_flatten(fn)
    if treedef.num_nodes == 1 and len(leaves) == 1 and leaves[0] is fn:
        return None, []
    arrays = [leaf for leaf in leaves if _is_array(leaf)]
    static = tuple((i, leaf) for i, leaf in enumerate(leaves) if not _is_array(leaf))
    structure = Structure(treedef, static, len(leaves))
    try:
        hash(structure)
    except Exception:  # unhashable aux data or static leaf
        return None, []
    return structure, arrays


def has_tracer(*trees: Any) -> bool:
    """Whether any leaf of ``trees`` is a JAX tracer (we are inside a transformation)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(trees))


# ---------------------------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------------------------

_CACHE: "collections.OrderedDict[Hashable, Callable]" = collections.OrderedDict()
_LOCK = threading.Lock()
_STATS = {"hits": 0, "misses": 0, "uncached": 0}
_DEAD: list = []  # set by weak-reference callbacks; the cache is pruned at the next lookup


def _note_dead(ref: Any) -> None:
    """Weak-reference callback: drop the dead function's programs now (their jaxprs hold the
    function's closed-over arrays as constants), or at the next lookup if the cache is busy
    (the garbage collector can run this in the middle of a cache operation)."""
    _DEAD.append(ref)
    if _LOCK.acquire(blocking=False):
        try:
            _prune()
        finally:
            _LOCK.release()


def _prune() -> None:
    """Drop the entries whose opaque functions have been garbage collected (lock held)."""
    if not _DEAD:
        return
    _DEAD.clear()
    for key in [k for k in _CACHE if any(not p.alive for p in _opaque_parts(k))]:
        del _CACHE[key]


def _opaque_parts(key: Hashable) -> list[Opaque]:
    parts = key[1] if isinstance(key, tuple) and len(key) == 2 else ()
    return [p for p in parts if isinstance(p, Opaque)]


def clear_cache() -> None:
    """Forget every compiled program (their executables are freed with the jitted functions)."""
    with _LOCK:
        _CACHE.clear()


def cache_info() -> dict[str, int]:
    """``{"size", "hits", "misses", "uncached"}`` of the program cache."""
    with _LOCK:
        _prune()
        return {"size": len(_CACHE), **_STATS}


def _lookup(key: Hashable, make: Callable[[], Callable]) -> Callable:
    with _LOCK:
        _prune()
        try:
            found = _CACHE.get(key)
        except Exception:  # a static value whose __eq__ fails (e.g. holds an array)
            _STATS["uncached"] += 1
            return make()
        if found is not None:
            _CACHE.move_to_end(key)
            _STATS["hits"] += 1
            return found
        _STATS["misses"] += 1
        fn = make()
        _CACHE[key] = fn
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
        return fn


def _part_of(fn: Any, jit_opaque: bool) -> tuple[Structure | Opaque | None, list]:
    structure, arrays = split_callable(fn)
    if structure is not None:
        return structure, arrays
    if not jit_opaque:
        return None, []
    try:
        return Opaque(fn, _note_dead), []
    except TypeError:  # no weak references to this object: compile without caching
        return None, []


def compiled(build: Callable[[], Callable], fns: Sequence[Any], *, key: Hashable,
             jit_opaque: bool = True, **jit_kwargs) -> Callable | None:
    """``call(*args) = build()(*fns, *args)`` as a cached ``jax.jit`` program.

    The array leaves of each pytree callable in ``fns`` are dynamic arguments; the cache key is
    ``(key, structures of fns)``, so equal ``key`` must mean an equivalent ``build``. Opaque
    callables are keyed by weak identity (``jit_opaque=True``) or make this return ``None``
    (``jit_opaque=False``: the caller runs inline). ``jit_kwargs`` go to ``jax.jit``.
    """
    parts, leaves = [], []
    for fn in fns:
        part, arrays = _part_of(fn, jit_opaque)
        if part is None:
            if not jit_opaque:
                return None
            body = build()
            _STATS["uncached"] += 1
            return jax.jit(functools.partial(body, *fns), **jit_kwargs)
        parts.append(part)
        leaves.append(arrays)
    parts = tuple(parts)

    def make() -> Callable:
        body = build()

        def program(dynamic, *args):
            rebuilt = [p.rebuild(d) for p, d in zip(parts, dynamic)]
            return body(*rebuilt, *args)

        return jax.jit(program, **jit_kwargs)

    try:
        full_key = (key, parts)
        hash(full_key)
    except TypeError:
        _STATS["uncached"] += 1
        return functools.partial(make(), tuple(leaves))
    return functools.partial(_lookup(full_key, make), tuple(leaves))


def run(body: Callable, args: tuple, static: dict, *, jit_opaque: bool = True) -> Any:
    """``body(*args, **static)`` as one cached jit program, or inline under a trace.

    ``static`` holds the hyper-parameters (hashable: they key the program) and the callables
    (``logits_fn``, a sampler, operators), which are split by :func:`split_callable`. Runs
    inline when an argument, a static value or an array of a callable is a tracer, and when an
    opaque callable meets ``jit_opaque=False``. An unhashable hyper-parameter compiles a fresh
    program (not cached).
    """
    names = tuple(k for k, v in static.items() if callable(v) and not isinstance(v, type))
    fns = tuple(static[k] for k in names)
    if has_tracer(args, list(static.values())):  # an opaque callable is its own single leaf
        return body(*args, **static)
    others = tuple(sorted((k, v) for k, v in static.items() if k not in names))

    def build():
        def bound(*fns_then_args):
            kwargs = dict(others)
            kwargs.update(zip(names, fns_then_args[: len(names)]))
            return body(*fns_then_args[len(names):], **kwargs)

        return bound

    try:
        hash(others)
        key = (body, names, others)
    except TypeError:
        return jax.jit(functools.partial(body, **static))(*args)
    program = compiled(build, fns, key=key, jit_opaque=jit_opaque)
    if program is None:
        return body(*args, **static)
    return program(*args)


# ---------------------------------------------------------------------------------------------
# Counting compilations
# ---------------------------------------------------------------------------------------------

#: ``jax.monitoring`` duration events of one compilation: tracing to a jaxpr, lowering to
#: StableHLO, and the XLA backend compile.
TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
LOWER_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"
BACKEND_EVENT = "/jax/core/compile/backend_compile_duration"


@dataclasses.dataclass
class CompileStats:
    """What :func:`compile_stats` counted: XLA compilations and the seconds spent tracing,
    lowering and compiling (the rest of a call's wall time is running)."""

    compiles: int = 0
    traces: int = 0
    trace_seconds: float = 0.0
    lower_seconds: float = 0.0
    backend_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        """Total compile-side seconds (trace + lower + backend compile)."""
        return self.trace_seconds + self.lower_seconds + self.backend_seconds


@contextlib.contextmanager
def compile_stats() -> Iterator[CompileStats]:
    """Count the compilations inside the ``with`` block (any thread of this process)::

        with compile_stats() as stats:
            attacks.pgd(Partial(model.apply, new_variables), x, y, ...)
        assert stats.compiles == 0
    """
    stats = CompileStats()

    def listener(event: str, duration: float, **_: Any) -> None:
        if event == BACKEND_EVENT:
            stats.compiles += 1
            stats.backend_seconds += duration
        elif event == TRACE_EVENT:
            stats.traces += 1
            stats.trace_seconds += duration
        elif event == LOWER_EVENT:
            stats.lower_seconds += duration

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield stats
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
