"""Per-example Hessian-vector products of a loss with respect to the input.

``loss_fn: x[B, ...] -> per-example losses [B]``. Because examples are independent, the
Hessian of ``Σ_i ℓ_i`` is block diagonal and one batched product gives every example's
``∇²ℓ_i(x_i) v_i`` at once. Used by SOAR (Ma et al., eq. 9–12).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from robustjax.core.power import normalize_per_example, per_example_norm
from robustjax.core.validation import check_inputs, check_nonnegative

__all__ = ["input_grad", "input_hvp", "input_hvp_finite_difference"]


def _summed(loss_fn: Callable, x: jax.Array):
    losses = loss_fn(x)
    if losses.shape != (x.shape[0],):
        raise ValueError(
            f"loss_fn must return one loss per example, shape ({x.shape[0]},); got {losses.shape}"
        )
    return jnp.sum(losses)


def input_grad(loss_fn: Callable, x: jax.Array) -> jax.Array:
    """Per-example input gradients ``∇_x ℓ_i(x_i)`` ``[B, ...]`` (one backward pass)."""
    return jax.grad(lambda z: _summed(loss_fn, z))(x)


def _check_v(x, v):
    if tuple(v.shape) != tuple(x.shape):
        raise ValueError(f"v must have the shape of x {x.shape}; got {v.shape}")


def input_hvp(loss_fn: Callable, x: jax.Array, v: jax.Array) -> jax.Array:
    """Exact per-example Hessian-vector products ``∇²ℓ_i(x_i) v_i`` ``[B, ...]``.

    Forward-over-reverse: ``jax.jvp`` of the input gradient (Pearlmutter's trick); the sum
    over the batch decouples, so row ``i`` only involves example ``i`` (SOAR, Ma et al., the
    ``∇²ℓ(x) z`` term of eq. 9, computed exactly).
    """
    x = check_inputs(x, name="x")
    _check_v(x, v)
    grad_fn = lambda z: input_grad(loss_fn, z)  # noqa: E731
    return jax.jvp(grad_fn, (x,), (v.astype(x.dtype),))[1]


def input_hvp_finite_difference(
    loss_fn: Callable,
    x: jax.Array,
    v: jax.Array,
    *,
    h,
    return_grad: bool = False,
    grad: jax.Array | None = None,
):
    """Finite-difference Hessian-vector product (SOAR, Ma et al., eq. 9).

    ``∇²ℓ(x) v ≈ ‖v‖ (∇ℓ(x + h v̂) − ∇ℓ(x)) / h`` with ``v̂ = v / ‖v‖`` per example, so the step
    in input space has length ``h`` whatever ``‖v‖``. ``h`` is a scalar or a per-example
    vector ``[B]`` (SOAR draws ``h ~ U(0, α)``), > 0. A zero ``v_i`` gives a zero row.
    Two backward passes (``loss_fn`` may close over per-example labels, so the two points
    are not stacked into one batch), run one after the other: XLA:CPU otherwise runs them side
    by side and holds both passes' temporaries (SGR MNIST CNN, batch 128: 82 → 44 MiB, and
    ``soar_penalty`` 111 → 85 ms = 2 input gradients, no longer above the 64 MiB where glibc
    maps the buffer afresh each call; ``robustjax.core.host_memory``).

    ``grad``: ``∇ℓ(x)`` ``[B, ...]`` when the caller already has it (e.g. from the backward pass
    that also gave the loss's parameter gradient); it is used as given (and stays
    differentiable in whatever it depends on), so only ``∇ℓ(x + h v̂)`` is computed.

    Returns the products ``[B, ...]``, or ``(products, ∇ℓ(x))`` when ``return_grad``.
    """
    x = check_inputs(x, name="x")
    _check_v(x, v)
    check_nonnegative(h, name="h", allow_zero=False)
    v = v.astype(x.dtype)
    norm = per_example_norm(v)
    v_hat = normalize_per_example(v)
    h = jnp.asarray(h, x.dtype)
    if h.ndim not in (0, 1) or (h.ndim == 1 and h.shape[0] != x.shape[0]):
        raise ValueError(f"h must be a scalar or a vector [B={x.shape[0]}]; got shape {h.shape}")
    hb = jnp.reshape(h, h.shape + (1,) * (x.ndim - h.ndim)) if h.ndim else h
    if grad is None:
        g0 = input_grad(loss_fn, x)
    else:
        if tuple(grad.shape) != tuple(x.shape):
            raise ValueError(f"grad must have the shape of x {x.shape}; got {tuple(grad.shape)}")
        g0 = grad.astype(x.dtype)
    # each example's x + h v̂ is made to depend on its own g0 (by a zero): XLA then runs the two
    # gradients one after the other, and they share one set of temporaries instead of holding
    # two (issue 18); a non-finite g0 row stays in its own row
    x1 = x + hb * v_hat
    if x.size:
        first = g0.reshape(g0.shape[0], -1)[:, :1].reshape((g0.shape[0],) + (1,) * (x.ndim - 1))
        x1 = x1 + jax.lax.stop_gradient(jnp.zeros((), x.dtype) * first)
    g1 = input_grad(loss_fn, x1)
    scale = norm / jnp.broadcast_to(h, norm.shape)
    hv = (g1 - g0) * jnp.reshape(scale, scale.shape + (1,) * (x.ndim - 1))
    return (hv, g0) if return_grad else hv
