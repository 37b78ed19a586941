"""Clean and attacked logits over a dataset, in chunks, for the Wen/Farnia diagnostics.

The diagnostics that measure a model under attack (``generalization_gaps``,
``max_loss_variation``, ``adversarial_margin_loss``) take an ``attack`` argument, resolved by
:func:`resolve_attack` into one :class:`AttackRun` per strength. Accepted forms:

* a :class:`robustjax.evaluation.AttackSpec` (or a mapping of its fields, e.g.
  ``{"name": "PGD-10", "attack": "pgd", "eps": "8/255", "norm": "inf",
  "params": {"steps": 10, "step_size": 2/255}}``): every strength of ``spec.eps``, each run
  through the evaluator's registry (``robustjax.evaluation.registry.attack_call``), so an
  attack means the same thing here as in ``robustjax evaluate``; ε relative to the data
  (``eps_scale="mean_l2_norm"``, Farnia et al.) is resolved on the data being attacked;
* a callable ``attack(logits_fn, x, y, key) -> x_adv`` (one strength, treated as random).

Randomness follows the evaluator: a random attack is ``vmap``-ed over examples with the key
``fold_in(fold_in(key, crc32(label)), global_index)``, so every example's draw depends on the
example (its index in the dataset) and the attack only, not on the chunk or the other examples.
Chunks are padded to ``batch_size`` (one compilation) and the padding is dropped.
"""

from __future__ import annotations

import collections
import dataclasses
import zlib
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.core.validation import check_positive_int
from robustjax.evaluation.evaluator import as_arrays, mean_l2_norm
from robustjax.evaluation.registry import attack_call, is_random, is_traced
from robustjax.evaluation.suites import MINIMAL_KINDS, SPATIAL_LEVELS, AttackSpec, format_strength, parse_eps

__all__ = ["AttackRun", "resolve_attack", "as_key", "check_logits_fn", "data_arrays", "logits_over_data"]


@dataclasses.dataclass(frozen=True)
class AttackRun:
    """One attack at one strength: ``label`` (e.g. ``"PGD-10 eps=8/255"``), ``eps`` (the
    resolved strength as a float: ε, WRM's γ, σ; ``None`` for DeepFool, spatial and callables),
    ``call(logits_fn, x, y, key, strength) -> x_adv``, ``strength`` (its last argument),
    ``random`` (draws random numbers: run per example with its own key)."""

    label: str
    eps: float | None
    call: Callable
    strength: Any
    random: bool
    cache_key: Any = None  # identifies ``call`` for reusing compiled programs (None: never)


def as_key(key: Any) -> jax.Array:
    """A PRNG key from a key or an int seed; ``ValueError`` naming ``key`` otherwise."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if key is None or not hasattr(key, "dtype"):
        raise ValueError(f"key must be a jax.random key or an int seed; got {key!r}")
    return key


def check_logits_fn(logits_fn: Any) -> Callable:
    if not callable(logits_fn):
        raise ValueError(f"logits_fn must be a callable x[B, ...] -> logits[B, K]; got {logits_fn!r}")
    return logits_fn


def data_arrays(data: Any, *, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of a pair, mapping or dataset object (``evaluation.as_arrays``), with
    the argument's name in the error message."""
    try:
        return as_arrays(data)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def resolve_attack(attack: Any, *, images: np.ndarray | None = None, name: str = "attack") -> list[AttackRun]:
    """One :class:`AttackRun` per strength of ``attack`` (see the module docstring).

    ``images`` (the data to be attacked) resolve ε given relative to ``E‖x‖₂``.
    """
    if isinstance(attack, Mapping):
        try:
            attack = AttackSpec(**attack)
        except TypeError as error:
            raise ValueError(f"{name} mapping must hold AttackSpec fields: {error}") from None
    if isinstance(attack, AttackSpec):
        return _spec_runs(attack, images)
    if callable(attack):
        label = getattr(attack, "__name__", "custom")

        def call(logits_fn, x, y, key, _strength=None):
            return attack(logits_fn, x, y, key)

        return [AttackRun(label, None, call, None, True, ("callable", attack))]
    raise ValueError(
        f"{name} must be an AttackSpec, a mapping of its fields or a callable "
        f"attack(logits_fn, x, y, key) -> x_adv; got {type(attack).__name__}"
    )


def _spec_runs(spec: AttackSpec, images) -> list[AttackRun]:
    random = is_random(spec)
    ident = ("spec", repr(spec))
    if spec.kind in MINIMAL_KINDS:
        return [AttackRun(spec.name, None, attack_call(spec, None), None, random, ident)]
    scale = None
    if spec.eps_scale == "mean_l2_norm":
        if images is None:
            raise ValueError(f"attack {spec.name!r} has eps relative to E‖x‖₂; the data is needed")
        scale = mean_l2_norm(images)
    runs = []
    for nominal in spec.eps:
        label = f"{spec.name} {spec.strength_name}={format_strength(spec, nominal)}"
        if spec.kind == "spatial":
            level = SPATIAL_LEVELS[nominal] if isinstance(nominal, str) else (float(nominal[0]), float(nominal[1]))
            runs.append(AttackRun(label, None, attack_call(spec, level), None, random, ident + (level,)))
            continue
        eps = parse_eps(nominal) * (scale if scale is not None else 1.0)
        if is_traced(spec):
            runs.append(AttackRun(label, eps, attack_call(spec, None), eps, random, ident))
        else:  # custom callables take ε when built
            runs.append(AttackRun(label, eps, attack_call(spec, eps), None, random, ident + (eps,)))
    return runs


# Compiled programs per (model, attack identity), so the train and test splits, every traced
# strength and repeated calls on the same model compile once. A model that is a pytree-callable
# (``jax.tree_util.Partial``, an NNX/Equinox module, ``robustjax.analyze.ModelFunction``) is a
# dynamic argument keyed by its tree structure: every model of one architecture shares the
# program (ARCHITECTURE "compiled once"); a plain function is static, keyed by identity. A small
# LRU: it holds references to the model functions.
_PROGRAMS: "collections.OrderedDict[tuple, Callable]" = collections.OrderedDict()
_PROGRAMS_MAX = 32


def _is_pytree_model(logits_fn: Callable) -> bool:
    leaves = jax.tree_util.tree_leaves(logits_fn)
    return bool(leaves) and not (len(leaves) == 1 and leaves[0] is logits_fn)


def _program(logits_fn: Callable, run: AttackRun | None) -> Callable:
    """Jitted ``(logits_fn, x, y, gidx, key, strength) -> (clean logits, attacked logits or None)``."""
    dynamic = _is_pytree_model(logits_fn)
    ident = ("clean",) if run is None else run.cache_key
    model = jax.tree_util.tree_structure(logits_fn) if dynamic else logits_fn
    key = None if ident is None else (model, ident, None if run is None else run.random)
    try:
        hash(key)
    except TypeError:
        key = None
    if key is not None and key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    program = _build_program(run, dynamic)
    if key is not None:
        _PROGRAMS[key] = program
        while len(_PROGRAMS) > _PROGRAMS_MAX:
            _PROGRAMS.popitem(last=False)
    return program


def _build_program(run: AttackRun | None, dynamic: bool) -> Callable:

    def program(logits_fn, x, y, gidx, key, strength):
        clean = logits_fn(x)
        if run is None:
            return clean, None
        if run.random:
            keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(gidx)
            x_adv = jax.vmap(lambda xi, yi, ki: run.call(logits_fn, xi[None], yi[None], ki, strength)[0])(x, y, keys)
        else:
            x_adv = run.call(logits_fn, x, y, key, strength)
        return clean, logits_fn(x_adv)

    return jax.jit(program) if dynamic else jax.jit(program, static_argnums=0)


def logits_over_data(
    logits_fn: Callable,
    images: np.ndarray,
    labels: np.ndarray,
    runs: list[AttackRun] | None,
    *,
    key: jax.Array,
    batch_size: int,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(clean logits [N, K], [attacked logits [N, K] per run])`` over the data, float64.

    Runs with a traced strength (the registry's ε/γ/σ kinds) share one compiled program, and
    programs are cached per (``logits_fn``, attack) across calls.
    """
    batch_size = check_positive_int(batch_size, name="batch_size")
    runs = list(runs or [])
    n = images.shape[0]
    clean, advs = None, []
    for run in runs or [None]:
        program = _program(logits_fn, run)
        label = "clean" if run is None else run.label
        base = jax.random.fold_in(key, zlib.crc32(label.encode()) & 0x7FFFFFFF)
        strength = None if run is None or run.strength is None else jnp.asarray(run.strength, jnp.float32)
        c_parts, a_parts = [], []
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(start + batch_size, n))
            pad = np.concatenate([idx, np.full(batch_size - idx.size, idx[-1])]) if idx.size < batch_size else idx
            x = jnp.asarray(np.asarray(images[pad], np.float32))
            y = jnp.asarray(np.asarray(labels[pad], np.int32))
            c, a = program(logits_fn, x, y, jnp.asarray(pad, jnp.int32), base, strength)
            c_parts.append(np.asarray(c, np.float64)[: idx.size])
            if a is not None:
                a_parts.append(np.asarray(a, np.float64)[: idx.size])
        if clean is None:
            clean = np.concatenate(c_parts)
            if clean.ndim != 2:
                raise ValueError(f"logits_fn must return logits [B, K]; got shape {clean.shape[1:]} per example")
        if run is not None:
            advs.append(np.concatenate(a_parts))
    return clean, advs
