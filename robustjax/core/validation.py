"""Argument checks shared by every public function of robustjax.

Each check raises a ``ValueError`` that names the argument and what is allowed. They run in
Python on static values and on concrete arrays; on traced arrays (inside ``jax.jit``) the
value checks are skipped, the shape and dtype checks still run.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

NORMS = (1, 2, math.inf)


def _is_concrete(a: Any) -> bool:
    return not isinstance(a, jax.core.Tracer)


def check_norm(norm: Any, *, name: str = "norm", allowed=(2, math.inf)) -> float:
    """Return ``norm`` as ``2.0``/``1.0``/``inf``; raise if it is not one of ``allowed``."""
    names = {1: "1", 2: "2", math.inf: "jnp.inf"}
    try:
        value = float(norm)
    except (TypeError, ValueError):
        if isinstance(norm, str) and norm.lower() in ("inf", "linf", "l_inf", "infinity"):
            value = math.inf
        elif isinstance(norm, str) and norm.lower() in ("l2", "2"):
            value = 2.0
        elif isinstance(norm, str) and norm.lower() in ("l1", "1"):
            value = 1.0
        else:
            value = None
    if value not in allowed:
        raise ValueError(
            f"{name} must be one of {', '.join(names[a] for a in allowed)}; got {norm!r}"
        )
    return value


def check_nonnegative(value: Any, *, name: str, allow_zero: bool = True) -> Any:
    """Raise unless ``value`` is a finite scalar ≥ 0 (> 0 when ``allow_zero`` is False)."""
    if _is_concrete(value):
        arr = np.asarray(value)
        if arr.size == 0 or not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite; got {value!r}")
        if allow_zero and np.any(arr < 0):
            raise ValueError(f"{name} must be >= 0; got {value!r}")
        if not allow_zero and np.any(arr <= 0):
            raise ValueError(f"{name} must be > 0; got {value!r}")
    return value


def check_positive(value: Any, *, name: str) -> Any:
    """Raise unless ``value`` is finite and > 0."""
    return check_nonnegative(value, name=name, allow_zero=False)


def check_positive_int(value: Any, *, name: str, minimum: int = 1) -> int:
    """Raise unless ``value`` is a Python/NumPy integer ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def check_positive_ints(value: Any, n: int, *, name: str) -> tuple[int, ...]:
    """``value`` (an int, or a sequence of ``n`` ints; ``None`` means 1) as a tuple of ``n``
    positive ints, e.g. a convolution's strides or dilations."""
    if value is None:
        value = 1
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        out = (int(value),) * n
    else:
        try:
            out = tuple(int(a) for a in value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an int or a sequence of {n} ints; got {value!r}") from None
    if len(out) != n or any(a < 1 for a in out):
        raise ValueError(f"{name} must be a positive int or a sequence of {n} positive ints; got {value!r}")
    return out


def num_classes_of(logits_fn: Callable, x: jax.Array) -> int:
    """Number of classes K of ``logits_fn`` on ``x``, from its output shape (no computation)."""
    out = jax.eval_shape(logits_fn, jax.ShapeDtypeStruct(x.shape, x.dtype))
    if not hasattr(out, "shape") or len(out.shape) != 2 or out.shape[0] != x.shape[0]:
        raise ValueError(
            "logits_fn must map x[B, ...] to logits[B, K]; got output "
            f"{getattr(out, 'shape', type(out))} for x of shape {x.shape}"
        )
    return int(out.shape[1])


def check_inputs(x: Any, *, name: str = "x", min_rank: int = 2) -> jax.Array:
    """Raise unless ``x`` is a floating array of rank ≥ ``min_rank`` with no NaN (when checkable)."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = jnp.asarray(x)
    if x.ndim < min_rank:
        raise ValueError(
            f"{name} must be a batch of shape [B, ...] with rank >= {min_rank}; got shape {x.shape}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"{name} must be a floating-point array (images as float32 in [0, 1]); got dtype "
            f"{x.dtype}. Convert integer images with x.astype('float32') / 255."
        )
    # NumPy, not jnp: a concrete array captured under an outer jit must not become a tracer
    if _is_concrete(x) and not np.isfinite(np.asarray(x)).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_labels(y: Any, x: Any, *, num_classes: int | None = None, name: str = "y") -> jax.Array:
    """Raise unless ``y`` is an integer vector with one label per example of ``x`` in [0, K)."""
    if not hasattr(y, "shape"):
        y = jnp.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a vector of integer labels [B]; got shape {y.shape}")
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"{name} must hold integer class labels; got dtype {y.dtype}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{name} and x must have the same batch size; got {y.shape[0]} labels for "
            f"{x.shape[0]} examples"
        )
    if num_classes is not None and _is_concrete(y) and y.size:
        lo, hi = int(np.min(np.asarray(y))), int(np.max(np.asarray(y)))
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"{name} must be in [0, {num_classes}); got labels in [{lo}, {hi}]"
            )
    return y


def check_clip(clip: Any, *, name: str = "clip") -> tuple[float, float] | None:
    """Raise unless ``clip`` is ``None`` or a pair ``(low, high)`` with low < high."""
    if clip is None:
        return None
    try:
        low, high = clip
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be None or a pair (low, high); got {clip!r}") from None
    if not low < high:
        raise ValueError(f"{name} must satisfy low < high; got {clip!r}")
    return (low, high)


def check_choice(value: Any, *, name: str, allowed) -> Any:
    """Raise unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(map(str, allowed))}; got {value!r}")
    return value
