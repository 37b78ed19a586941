"""Input Jacobians of a model function ``logits_fn: x[B, ...] -> logits[B, K]``.

* ``jacobian_top_singular``: per-example power iteration on the input Jacobian (Roth et al.
  2019, eq. 11): forward pass ``J v`` and backward pass ``Jᵀ u``, one batched call each per
  iteration for the whole batch (the batch Jacobian is block diagonal because examples are
  independent). No Jacobian is materialized.
* ``input_jacobian`` / ``jacobian_singular_values``: the materialized per-example Jacobian
  ``[B, K, D]`` and its full SVD spectrum, for diagnostics (Roth et al. 2019, §5.2, Fig. 1),
  either exactly (K backward passes) or by Roth's App. 7.4 linear regression on randomly
  perturbed inputs.

Examples must be independent (BatchNorm in inference mode); otherwise the block-diagonal
structure does not hold and per-example quantities mix examples.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from robustjax.core.power import power_iteration
from robustjax.core.programs import run
from robustjax.core.validation import (
    check_choice,
    check_inputs,
    check_positive,
    check_positive_int,
)

__all__ = [
    "jacobian_operator",
    "jacobian_top_singular",
    "input_jacobian",
    "jacobian_by_regression",
    "jacobian_singular_values",
]

JACOBIAN_METHODS = ("linearize", "jvp_vjp", "vjp_transpose")


def jacobian_operator(logits_fn: Callable, x: jax.Array, *, method: str = "linearize"):
    """``(matvec, rmatvec)`` of the batched input Jacobian of ``logits_fn`` at ``x``.

    ``matvec(v[B, ...]) = J v`` (forward pass), ``rmatvec(u[B, K]) = Jᵀ u`` (backward pass).

    ``method``:
      * ``"linearize"`` (default): ``jax.linearize`` once (one nonlinear forward pass, its
        residuals kept), ``J v`` by the linearized function and ``Jᵀ u`` by its
        ``jax.linear_transpose``: no forward recomputation inside the power loop.
      * ``"jvp_vjp"``: ``jax.jvp`` and ``jax.vjp`` re-evaluated at every call (recomputes the
        forward pass twice per iteration unless XLA hoists it out of the loop).
      * ``"vjp_transpose"``: ``jax.vjp`` once, ``J v`` as the transpose of the VJP.
      ``benchmarks/spectral.py`` measures them; see its output for which is faster.
    """
    check_choice(method, name="method", allowed=JACOBIAN_METHODS)
    if method == "linearize":
        _, jvp_fn = jax.linearize(logits_fn, x)
        vjp_fn = jax.linear_transpose(jvp_fn, x)
        return jvp_fn, lambda u: vjp_fn(u)[0]
    if method == "vjp_transpose":
        _, vjp_fn = jax.vjp(logits_fn, x)
        y_struct = jax.eval_shape(logits_fn, x)
        jvp_fn = jax.linear_transpose(lambda u: vjp_fn(u)[0], y_struct)
        return (lambda v: jvp_fn(v)[0]), (lambda u: vjp_fn(u)[0])

    def matvec(v):
        return jax.jvp(logits_fn, (x,), (v,))[1]

    def rmatvec(u):
        return jax.vjp(logits_fn, x)[1](u)[0]

    return matvec, rmatvec


def jacobian_top_singular(
    logits_fn: Callable,
    x: jax.Array,
    *,
    iters: int,
    key: jax.Array | None = None,
    v0: jax.Array | None = None,
    method: str = "linearize",
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Top singular value and vectors of each example's input Jacobian (Roth et al. 2019, eq. 11).

    Args:
      logits_fn: ``x[B, ...] -> logits[B, K]`` with independent examples.
      x: inputs ``[B, ...]``.
      iters: power iterations (each = one batched ``J v`` and one batched ``Jᵀ u``), ≥ 1.
      key: PRNG key for a Gaussian random start. Exactly one of ``key`` / ``v0``.
      v0: warm start ``[B, ...]`` (e.g. the previous training step's ``v``).
      method: how ``J v``/``Jᵀ u`` are formed, see ``jacobian_operator``.

    Outside a trace, a pytree ``logits_fn`` (``jax.tree_util.Partial(model.apply, variables)``,
    an NNX or Equinox module) runs as one compiled program reused for new parameters
    (``robustjax.core.programs``); a closure runs inline.

    Returns:
      ``(sigma[B], u[B, K], v[B, ...])``: ``sigma = uᵀ J v`` per example, ``u`` the left
      (logit-space) and ``v`` the right (input-space) singular vector, unit norm per example.
      No ``stop_gradient`` is applied; a regularizer that treats ``u, v`` as constants
      (Roth eq. 12) should stop their gradient itself.
    """
    x = check_inputs(x, name="x")
    iters = check_positive_int(iters, name="iters")
    if (key is None) == (v0 is None):
        raise ValueError("exactly one of key (random start) or v0 (warm start) must be given")
    if v0 is not None and tuple(v0.shape) != tuple(x.shape):
        raise ValueError(f"v0 must have the shape of x {x.shape}; got {v0.shape}")
    check_choice(method, name="method", allowed=JACOBIAN_METHODS)
    static = dict(logits_fn=logits_fn, iters=iters, method=method)
    return run(_top_singular_body, (x, key, v0), static, jit_opaque=False)


def _top_singular_body(x, key, v0, *, logits_fn, iters, method):
    if v0 is None:
        v0 = jax.random.normal(key, x.shape, x.dtype)
    matvec, rmatvec = jacobian_operator(logits_fn, x, method=method)
    return power_iteration(matvec, rmatvec, v0.astype(x.dtype), iters=iters)


def input_jacobian(logits_fn: Callable, x: jax.Array) -> jax.Array:
    """Materialized per-example input Jacobian ``[B, K, D]`` (D = prod of the non-batch dims).

    K batched backward passes (one per logit, vmapped), using the block-diagonal structure of
    the batch Jacobian: for diagnostics only (Roth et al. 2019, §5.2).
    """
    x = check_inputs(x, name="x")
    y, vjp_fn = jax.vjp(logits_fn, x)
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"logits_fn must return logits [B, K] with B={x.shape[0]}; got {y.shape}")
    b, k = y.shape
    basis = jnp.broadcast_to(jnp.eye(k, dtype=y.dtype)[:, None, :], (k, b, k))
    (rows,) = jax.vmap(vjp_fn)(basis)  # [K, B, ...]
    return jnp.moveaxis(rows.reshape(k, b, -1), 0, 1)


def jacobian_by_regression(
    logits_fn: Callable,
    x: jax.Array,
    *,
    key: jax.Array,
    num_samples: int | None = None,
    scale: float = 1e-3,
    activations: str = "fixed",
) -> jax.Array:
    """Per-example Jacobian ``[B, K, D]`` by linear regression (Roth et al. 2019, App. 7.4).

    For each example, ``num_samples`` Gaussian perturbations ``δ ~ N(0, scale² I)`` of ``x``
    are run through the network; a least-squares fit of ``f(x + δ) ≈ W δ + b`` (on centered
    data, which is the fit with a free bias ``b``) gives ``W ≈ J``. Roth et al. found this
    more stable than differencing along basis vectors. ``num_samples`` defaults to ``2 D``
    and must be > D for a determined fit. One example at a time (``lax.map``) to bound
    memory.

    ``activations``: ``"fixed"`` (default, the paper's: "we run a set of randomly perturbed
    versions of x through the network (with fixed activation functions)") evaluates the network
    with every activation held at its value's slope at ``x`` — the network linearized at ``x``
    (``jax.linearize``), which for piecewise-linear nets (ReLU, max-pool) is exactly the net with
    its activation pattern frozen — so the fit recovers ``J`` for any ``scale``. ``"live"`` runs
    the network itself: perturbations that cross activation boundaries bias the fit, so keep
    ``scale`` small.
    """
    x = check_inputs(x, name="x")
    check_positive(scale, name="scale")
    check_choice(activations, name="activations", allowed=("fixed", "live"))
    d = int(x[0].size)
    num_samples = 2 * d if num_samples is None else check_positive_int(num_samples, name="num_samples")
    if num_samples <= d:
        raise ValueError(f"num_samples must be > D = {d} for a determined regression; got {num_samples}")
    keys = jax.random.split(key, x.shape[0])

    def one(args):
        xi, ki = args
        delta = scale * jax.random.normal(ki, (num_samples,) + xi.shape, xi.dtype)
        if activations == "live":
            out = logits_fn(xi[None] + delta)  # [N, K]
        else:  # the network with its activations frozen at x: f(x) + J δ
            y0, lin = jax.linearize(logits_fn, xi[None])
            out = y0 + jax.vmap(lambda d: lin(d[None])[0])(delta)
        dc = delta.reshape(num_samples, d)
        dc = dc - dc.mean(0)
        yc = out - out.mean(0)
        w, *_ = jnp.linalg.lstsq(dc, yc)  # [D, K]
        return w.T

    return lax.map(one, (x, keys))


def jacobian_singular_values(
    logits_fn: Callable,
    x: jax.Array,
    *,
    method: str = "exact",
    key: jax.Array | None = None,
    num_samples: int | None = None,
    scale: float = 1e-3,
    compute_uv: bool = False,
):
    """Full singular value spectrum of every example's input Jacobian (Roth et al. 2019, Fig. 1).

    ``method="exact"`` materializes ``J`` by ``input_jacobian``; ``method="regression"``
    uses Roth's App. 7.4 extraction (``jacobian_by_regression``, needs ``key``).
    Returns ``s[B, min(K, D)]`` in descending order, or ``(U[B,K,r], s, Vt[B,r,D])`` when
    ``compute_uv``.
    """
    check_choice(method, name="method", allowed=("exact", "regression"))
    if method == "exact":
        jac = input_jacobian(logits_fn, x)
    else:
        if key is None:
            raise ValueError("method='regression' needs a PRNG key")
        jac = jacobian_by_regression(logits_fn, x, key=key, num_samples=num_samples, scale=scale)
    if compute_uv:
        return jnp.linalg.svd(jac, full_matrices=False)
    return jnp.linalg.svd(jac, compute_uv=False)
