"""Argument checks and direction handling shared by the path diagnostics of ``robustjax.analysis``.

Direction convention (Roth et al. 2019, §5.3: deviations "as a function of the distance
``‖z‖₂``"): a path diagnostic takes ``directions[B, ...]`` of any length and normalizes each
example to unit ℓ2 norm; the radius ``t`` is then the ℓ2 distance of ``x + t·d̂`` from ``x`` in
pixel units (data in [0, 1]). An all-zero direction stays zero (every point of its path is
``x``), never NaN.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.core import programs as _programs
from robustjax.core.power import normalize_per_example
from robustjax.core.validation import check_inputs

__all__ = [
    "check_callable",
    "check_like",
    "check_radii",
    "unit_directions",
    "per_example_l2",
    "run_compiled",
]


def check_callable(fn: Any, *, name: str, signature: str) -> Callable:
    """Raise unless ``fn`` is callable; ``signature`` describes the expected map."""
    if not callable(fn):
        raise ValueError(f"{name} must be a callable {signature}; got {fn!r}")
    return fn


def check_like(arr: Any, x: jax.Array, *, name: str, x_name: str = "x") -> jax.Array:
    """Raise unless ``arr`` is a finite floating array with the shape of ``x``; cast to x's dtype."""
    arr = check_inputs(arr, name=name)
    if tuple(arr.shape) != tuple(x.shape):
        raise ValueError(f"{name} must have the shape of {x_name} {tuple(x.shape)}; got {tuple(arr.shape)}")
    return jnp.asarray(arr, x.dtype)


def check_radii(radii: Any, *, name: str = "radii", nonnegative: bool = True) -> np.ndarray:
    """A non-empty 1-D vector of finite radii (≥ 0 unless ``nonnegative`` is False), as NumPy."""
    try:
        arr = np.asarray(radii, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D sequence of numbers; got {radii!r}") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got {arr.tolist()}")
    if nonnegative and np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0 (ℓ2 distances in pixel units); got {arr.tolist()}")
    return arr


def unit_directions(directions: jax.Array) -> jax.Array:
    """``d[i] / ‖d[i]‖₂`` per example; an all-zero example stays zero (no NaN)."""
    return normalize_per_example(directions)


def per_example_l2(a: jax.Array) -> jax.Array:
    """ℓ2 norm of every example of ``a[B, ...]`` over its non-batch axes, shape ``[B]``."""
    return jnp.sqrt(jnp.sum(jnp.square(a.reshape(a.shape[0], -1)), axis=1))


def run_compiled(body: Callable, arrays: tuple, **static) -> Any:
    """``body(*arrays, **static)`` as one XLA program (the diagnostics' bodies are many small ops,
    slow op by op), cached by :func:`robustjax.core.programs.run` per ``(body, static)``.

    A model function in ``static`` that is a pytree-callable (``jax.tree_util.Partial(apply,
    variables)``, an NNX/Equinox module) passes its arrays as dynamic arguments, so new
    parameters of the same model reuse the compiled program (ARCHITECTURE "compiled once"); a
    plain function or closure is keyed by (weak) identity, so calling a diagnostic batch after
    batch with the same function object compiles once. Under an outer trace the body runs inline.
    """
    return _programs.run(body, tuple(arrays), static)
