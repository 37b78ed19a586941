"""Data-dependent spectral norm regularization (Roth, Kilcher, Hofmann 2019, §4.1).

The regularizer penalizes, for every training example, the largest singular value of the input
Jacobian ``J_f(x)`` of the logits ``f`` (the paper's "log-odds"). The dominant singular vectors
``u`` (logit space) and ``v`` (input space) come from the per-example power iteration of eq. 11
(forward pass = jvp, backward pass = vjp) and are **constants** of the penalty: they pass through
``jax.lax.stop_gradient``, so the parameter gradient flows through ``J_f(x)`` (eq. 12) or through
``f`` (eq. 13) only, exactly as in the paper where ``u, v`` are "computed via Equation 11" and
then plugged into the objective.

Two forms:

* :func:`jacobian_spectral_penalty` — eq. 12, ``(uᵀ J_f(x) v)²``.
* :func:`sos_spectral_penalty` — eq. 13, ``‖f(x + ε v) − f(x)‖₂²``, the sum-of-squares form the
  paper trained with (Table 1: ``λ = 1e-2``, ``ε = 1.75``, ``ITERS = 10``). Note there is no
  division by ``ε²``: ``λ`` absorbs it, and the value is ≈ ``ε² σ²`` for small ``ε``.

Both return ``(penalty, v)``. ``v0`` is a start of the power iteration (the paper: "Let v0 be a
random vector or an approximation to the dominant right singular vector"): a random vector, or
*this* example's vector from earlier. A previous batch's ``v`` belongs to other examples after
shuffling and is no better than a random start (measured: ``robustjax.training.objectives.snr``).
The model is called as ``logits_fn``; when it contains BatchNorm, pass its inference-mode
function so that examples stay independent. Called outside a trace with a pytree ``logits_fn``
(``jax.tree_util.Partial(model.apply, variables)``, an NNX or Equinox module), each penalty runs
as one compiled program reused for new parameters (``robustjax.core.programs``); a closure runs
inline.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from robustjax.core.losses import REDUCTIONS, reduce_batch
from robustjax.core import validation as V
from robustjax.core.jacobian import jacobian_top_singular
from robustjax.core.programs import run




def _check_common(logits_fn: Callable, x: Any, iters: Any, key: Any, v0: Any, reduction: str):
    if not callable(logits_fn):
        raise ValueError(f"logits_fn must be a callable x[B, ...] -> logits[B, K]; got {logits_fn!r}")
    x = V.check_inputs(x, name="x")
    iters = V.check_positive_int(iters, name="iters")
    if v0 is None and key is None:
        raise ValueError("key must be a PRNG key when v0 is None (the power iteration needs a start)")
    if v0 is not None:
        v0 = jnp.asarray(v0)
        if v0.shape != x.shape:
            raise ValueError(f"v0 must have the shape of x {x.shape}; got {v0.shape}")
    V.check_choice(reduction, name="reduction", allowed=REDUCTIONS)
    return x, iters, v0


def _singular_vectors(logits_fn, x, *, iters, key, v0):
    """Dominant singular vectors of every example's ``J_f(x)`` (eq. 11), as constants."""
    # A warm start v0 takes precedence over key (the shared helper wants exactly one).
    _, u, v = jacobian_top_singular(
        logits_fn, x, iters=iters, key=None if v0 is not None else key, v0=v0
    )
    # Deliberate stop_gradient: u and v are the power-iteration estimates "computed via
    # Equation 11" and enter eq. 12/13 as constants; no gradient flows through the iteration.
    return jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)


def jacobian_spectral_penalty(
    logits_fn: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    *,
    iters: int,
    key: jax.Array | None = None,
    v0: jax.Array | None = None,
    reduction: str = "mean",
) -> tuple[jax.Array, jax.Array]:
    """Jacobian-based data-dependent spectral norm penalty (Roth et al. 2019, eq. 12).

    Per example ``(uᵀ J_f(x) v)²`` where ``u[B, K]``, ``v[B, ...]`` are the dominant left/right
    singular vectors of ``J_f(x)`` from ``iters`` steps of the power iteration (eq. 11), started
    at ``v0`` (warm start) or at a Gaussian vector drawn with ``key``. ``u`` and ``v`` are held
    constant (``stop_gradient``): the parameter gradient of the penalty is that of
    ``(uᵀ J_f(x) v)²`` through ``J`` only. ``J v`` is one batched jvp.

    Returns ``(penalty, v)``: the penalty averaged over the batch (``reduction="mean"``;
    ``"sum"`` or ``"none"`` for ``[B]``) and the new ``v`` to pass as ``v0`` next time.
    Multiply by ``λ`` (Table 1) in the objective.
    """
    x, iters, v0 = _check_common(logits_fn, x, iters, key, v0, reduction)
    static = dict(logits_fn=logits_fn, iters=iters, reduction=reduction)
    return run(_jacobian_penalty_body, (x, key, v0), static, jit_opaque=False)


def _jacobian_penalty_body(x, key, v0, *, logits_fn, iters, reduction):
    u, v = _singular_vectors(logits_fn, x, iters=iters, key=key, v0=v0)
    _, jv = jax.jvp(logits_fn, (x,), (v.astype(x.dtype),))
    per_example = jnp.square(jnp.sum(u * jv, axis=-1))
    return reduce_batch(per_example, reduction), v


def sos_spectral_penalty(
    logits_fn: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    *,
    eps: float,
    iters: int,
    key: jax.Array | None = None,
    v0: jax.Array | None = None,
    reduction: str = "mean",
) -> tuple[jax.Array, jax.Array]:
    """Sum-of-squares data-dependent spectral norm penalty (Roth et al. 2019, eq. 13).

    Per example ``‖f(x + ε v) − f(x)‖₂²`` with ``f = logits_fn`` (the logits / log-odds) and
    ``v[B, ...]`` the unit-norm dominant right singular vector of ``J_f(x)`` from ``iters``
    power-iteration steps (eq. 11), held constant (``stop_gradient``). By linearization it is
    ``≈ ε² (uᵀ J v)² = ε² σ²``. Both ``f(x + εv)`` and ``f(x)`` carry parameter gradients.
    The paper's setting (Table 1): ``eps = 1.75``, ``iters = 10``, ``λ = 1e-2``.

    Returns ``(penalty, v)`` as :func:`jacobian_spectral_penalty`.
    """
    x, iters, v0 = _check_common(logits_fn, x, iters, key, v0, reduction)
    V.check_positive(eps, name="eps")
    static = dict(logits_fn=logits_fn, iters=iters, reduction=reduction)
    return run(_sos_penalty_body, (x, eps, key, v0), static, jit_opaque=False)


def _sos_penalty_body(x, eps, key, v0, *, logits_fn, iters, reduction):
    _, v = _singular_vectors(logits_fn, x, iters=iters, key=key, v0=v0)
    diff = logits_fn(x + eps * v.astype(x.dtype)) - logits_fn(x)
    per_example = jnp.sum(jnp.square(diff), axis=-1)
    return reduce_batch(per_example, reduction), v
