"""Shared plumbing of the attacks: API-edge validation, label handling, loss gradients, jit.

Validation runs in Python before tracing. Under an outer ``jax.jit`` the value checks are skipped
for traced arrays (see ``core/validation.py``) while shape, dtype and static-argument checks still
run. Each public attack calls ``run_jitted``: when its input is concrete it runs the attack body as
one ``jax.jit`` program, cached by ``robustjax.core.programs`` per structure of ``logits_fn`` (its
arrays are dynamic arguments) and static hyper-parameters; when it is already being traced the
body is inlined into the caller's program.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from robustjax.core import losses as _losses
from robustjax.core import programs as _programs
from robustjax.core import validation as V
from robustjax.core.validation import num_classes_of


def validate_common(
    logits_fn: Callable,
    x: Any,
    y: Any,
    *,
    targeted: bool = False,
    loss: str | None = None,
    clip: Any = None,
) -> tuple[jax.Array, jax.Array | None, tuple[float, float] | None, int]:
    """Check ``logits_fn``, ``x``, ``y``, ``loss``, ``clip``; return ``(x, y, clip, K)``."""
    if not callable(logits_fn):
        raise ValueError(f"logits_fn must be a callable x[B, ...] -> logits[B, K]; got {logits_fn!r}")
    x = V.check_inputs(x, name="x")
    k = num_classes_of(logits_fn, x)
    if y is None:
        if targeted:
            raise ValueError("y must hold the target labels when targeted=True; got None")
    else:
        y = V.check_labels(y, x, num_classes=k, name="y")
    if loss is not None:
        V.check_choice(loss, name="loss", allowed=_losses.LOSSES)
    clip = V.check_clip(clip)
    return x, y, clip, k


def labels_or_predictions(logits_fn: Callable, x: jax.Array, y: jax.Array | None) -> jax.Array:
    """``y`` itself, or the model's predicted labels ``argmax f(x)`` when ``y`` is None (the
    label-leak-free choice of Roth et al. 2018 (SGR) §7.2 and Farnia et al. 2019)."""
    if y is not None:
        return y.astype(jnp.int32)
    return jnp.argmax(jax.lax.stop_gradient(logits_fn(x)), axis=1).astype(jnp.int32)


def objective_and_grad(
    logits_fn: Callable,
    x_adv: jax.Array,
    y: jax.Array,
    *,
    loss: str,
    targeted: bool,
    beta: float = 1.0,
    target_logits: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Per-example attack objective ``[B]`` and its input gradient, from one forward and one
    backward pass: the batch Jacobian is block diagonal, so the gradient of the batch *sum* is
    every example's own gradient."""

    def total(xa):
        obj = _losses.adversarial_objective(
            logits_fn(xa), y, loss=loss, targeted=targeted, beta=beta, target_logits=target_logits
        )
        return jnp.sum(obj), obj

    (_, obj), g = jax.value_and_grad(total, has_aux=True)(x_adv)
    return obj, g


def is_traced(*arrays: Any) -> bool:
    return any(isinstance(a, jax.core.Tracer) for a in arrays)


def run_jitted(body: Callable, arrays: tuple, static: dict) -> Any:
    """Run ``body(*arrays, **static)`` as one jit program (inline if already under a trace).

    ``robustjax.core.programs.run``: the arrays of a pytree ``logits_fn`` (``Partial``, NNX or
    Equinox module) are dynamic arguments of a program keyed by its structure, so new
    parameters reuse it; an opaque ``logits_fn`` (a lambda) is keyed by weak identity. The other
    ``static`` values are hashable hyper-parameters (an unhashable one compiles uncached).
    """
    return _programs.run(body, arrays, static)


#: ``unroll=None`` (the attacks' default) fully unrolls loops of at most this many steps and
#: keeps longer ones rolled. With ``robustjax.nn.Conv`` (the zoo's convolution) both forms run
#: equally fast on XLA:CPU (idle 2-core machine, SGR MNIST CNN, batch 128, PGD ℓ∞: 10 steps
#: 0.56 s unrolled / 0.49 s rolled, 20 steps 0.97 / 0.95 s), but a rolled loop compiles once
#: (0.6–0.7 s for 10, 20 or 100 steps) while an unrolled one compiles in time linear in
#: ``steps``. With plain ``flax.linen.Conv`` a rolled loop is ~8x slower than an unrolled one
#: (XLA lays out the flipped kernel of JAX's conv transpose badly inside a while loop), so the
#: short attacks of adversarial training stay unrolled for users' own models.
UNROLL_MAX_STEPS = 20


def check_unroll(unroll: Any) -> None:
    """``unroll`` must be None, a bool or an integer ≥ 1 (``lax.fori_loop``'s unroll factor)."""
    if unroll is None or isinstance(unroll, bool):
        return
    if not isinstance(unroll, int) or unroll < 1:
        raise ValueError(f"unroll must be None, True, False or an integer >= 1; got {unroll!r}")


def resolve_unroll(unroll: Any, steps: int) -> bool | int:
    """The ``lax.fori_loop`` unroll of a ``steps``-step loop: ``unroll`` itself, or for ``None``
    full unrolling up to ``UNROLL_MAX_STEPS`` steps and a rolled loop beyond."""
    check_unroll(unroll)
    if unroll is None:
        return steps <= UNROLL_MAX_STEPS
    return unroll


def check_eps(eps: Any, name: str = "eps") -> Any:
    return V.check_nonnegative(eps, name=name)


def as_static_float(value: Any) -> Any:
    """Python float for concrete scalars (hashable static args), the array itself otherwise."""
    if isinstance(value, jax.core.Tracer):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def norm_value(norm: Any) -> float:
    v = V.check_norm(norm)
    return math.inf if v == math.inf else 2.0
