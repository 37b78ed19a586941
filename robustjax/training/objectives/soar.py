"""The SOAR objective (Ma, Faghri & Farahmand 2020, eq. 11–12, App. C): cross-entropy at the
PGD1 evaluation point plus the second-order regularizer, its gradient clipped and computed in
microbatches."""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import optax
from jax import lax

from robustjax import regularizers
from robustjax.core.validation import (
    check_nonnegative,
    check_positive,
    check_positive_int,
)
from robustjax.training.objectives.base import (
    Objective,
    classification_metrics,
    inference_logits_fn,
    single_mode_logits_fn,
    train_mode_logits,
)


def soar_penalty_and_grad(
    model,
    params,
    model_state,
    x_eval: jax.Array,
    y: jax.Array,
    z: jax.Array,
    h: jax.Array | None,
    *,
    eps: float,
    alpha: float | None,
    norm: float,
    hvp: str,
    norm_clip: float | None,
    microbatches: int = 1,
):
    """SOAR's batch-mean penalty (Ma et al. eq. 11) and its gradient with respect to ``params``,
    one microbatch at a time (``lax.scan``): peak memory is that of one microbatch's double
    backprop. The random constants ``z``, ``h`` (:func:`robustjax.regularizers.soar_directions`)
    are drawn for the whole batch and split, so the result is the full-batch value and gradient
    for any ``microbatches`` dividing the batch (up to float summation order)."""

    def penalty(p, xb, yb, zb, hb):
        return regularizers.soar_penalty(
            inference_logits_fn(model, p, model_state), xb, yb, eps=eps, alpha=alpha, norm=norm,
            hvp=hvp, norm_clip=norm_clip, z=zb, h=hb)

    return _microbatched(jax.value_and_grad(penalty), params, (x_eval, y, z, h), microbatches)


def soar_loss_penalty_and_grads(
    logits_fn_of,
    params,
    x_eval: jax.Array,
    y: jax.Array,
    z: jax.Array,
    h: jax.Array | None,
    *,
    eps: float,
    alpha: float | None,
    norm: float,
    hvp: str,
    norm_clip: float | None,
    microbatches: int = 1,
):
    """``((ce, penalty), (∇ce, ∇penalty), logits)``: the batch-mean cross-entropy at ``x_eval``
    and SOAR's penalty (Ma et al. eq. 11–12) with their parameter gradients, from one forward
    pass at ``x_eval``.

    ``logits_fn_of(params)`` is the model function (one function in train and inference mode,
    see ``single_mode_logits_fn``). The backward pass of ``Σᵢ ℓᵢ`` with respect to parameters
    and input gives ``∇ce`` and ``∇ₓℓ(x_eval)``, which is the penalty's ``g`` (its finite
    difference then needs only ``∇ℓ(x_eval + h z̃)``); the double backprop reuses that forward
    pass. Same values as the cross-entropy's and :func:`soar_penalty_and_grad`'s gradients
    computed apart (tested), with one forward and one input-gradient pass fewer. Microbatched like
    :func:`soar_penalty_and_grad`."""

    def one(p, xb, yb, zb, hb):
        nb = xb.shape[0]

        def ce_sum(q, xx):
            logits = logits_fn_of(q)(xx)
            return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, yb)), logits

        def penalty(q):
            (ce, logits), (g_ce, g_x) = jax.value_and_grad(ce_sum, argnums=(0, 1), has_aux=True)(q, xb)
            value = regularizers.soar_penalty(
                logits_fn_of(q), xb, yb, eps=eps, alpha=alpha, norm=norm, hvp=hvp,
                norm_clip=norm_clip, z=zb, h=hb, grad=g_x)
            return value, (ce / nb, jax.tree_util.tree_map(lambda t: t / nb, g_ce), logits)

        value, vjp_fn, (ce, g_ce, logits) = jax.vjp(penalty, p, has_aux=True)
        (g_pen,) = vjp_fn(jnp.ones_like(value))
        return (ce, value), (g_ce, g_pen), logits

    values, grads, logits = _microbatched(one, params, (x_eval, y, z, h), microbatches)
    return values, grads, logits.reshape((x_eval.shape[0],) + logits.shape[-1:])


def _microbatched(fn, params, args, microbatches):
    """``fn(params, *args)`` on the whole batch, or summed over ``microbatches`` slices of every
    array in ``args`` (``lax.scan``) and divided by their number; ``fn`` returns
    ``(values, grads)`` or ``(values, grads, per_example)``, and per-example outputs come back
    stacked ``[microbatches, B / microbatches, ...]``."""
    if microbatches == 1:
        return fn(params, *args)

    def split(a):
        return None if a is None else a.reshape((microbatches, -1) + a.shape[1:])

    def body(acc, mb):
        out = fn(params, *mb)
        return jax.tree_util.tree_map(jnp.add, acc, out[:2]), out[2:]

    shapes = jax.eval_shape(fn, params, *(None if a is None else a[: a.shape[0] // microbatches]
                                          for a in args))
    init = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes[:2])
    acc, rest = lax.scan(body, init, tuple(split(a) for a in args))
    acc = jax.tree_util.tree_map(lambda t: t / microbatches, acc)
    return acc + tuple(rest)


def _default_microbatches(batch: int) -> int:
    return next(m for m in (4, 2, 1) if batch % m == 0 and (batch // m >= 32 or m == 1))


def soar(
    model,
    *,
    lam: float = 0.5,
    eps: float = 8 / 255,
    alpha: float = 8 / 255,
    init: str = "pgd1",
    norm: float | str = "inf",
    norm_clip: float = 10.0,
    reg_grad_clip: float = 30.0,
    hvp: str = "fd",
    clip: tuple[float, float] | None = (0.0, 1.0),
    microbatches: int | None = None,
) -> Objective:
    """Loss at x' + λ · SOAR R(x'; z, h) (Ma et al. eq. 11–12, App. A and C).

    x' is the evaluation point (``init``: zero = x, random = x + η, pgd1 = one PGD step of size
    α from x + η, the paper's choice: "x' = x + η + α∇ₓℓ(x + η)", §4.2); R's norm term is clipped to [0, ``norm_clip``] and, as App. C says ("a
    gradient clipping of 30 on the ℓ2 norm of regularizer gradient"), the gradient of λR with
    respect to the parameters is clipped to global norm ``reg_grad_clip`` before it joins the
    loss gradient. The paper fine-tunes a standard model: set ``init_from`` in the config.

    The penalty's parameter gradient is computed inside the forward pass (a ``custom_vjp``,
    :func:`soar_penalty_and_grad`) over ``microbatches`` sequential slices of the batch: the
    same value and gradient, with the peak memory of one slice's double backprop. For a model
    without mutable state (``single_mode_logits_fn``: no BatchNorm statistics, no spectral
    normalization vectors) the cross-entropy at x' comes from the same pass
    (:func:`soar_loss_penalty_and_grads`): its backward pass also gives the penalty's ``∇ₓℓ(x')``,
    which saves one forward and one input-gradient pass per step (issue 18: SGR MNIST CNN,
    batch 128, 2-core CPU, 4 slices, interleaved in one process: 306–312 ms against 376–377 ms,
    5.1 against 6.2 × ERM).

    ``microbatches=None`` (default): the largest of 4, 2, 1 that divides the batch into slices
    of ≥ 32 examples. Measured with the shared pass as above (÷ ERM, XLA temporaries; ERM
    58 MiB): 8 slices 5.19 (42 MiB), 4 slices 5.06 (45 MiB), 2 slices 5.49 (85 MiB), 1 slice
    5.80 (169 MiB). Above 64 MiB the temporaries are mapped afresh in every step
    (``robustjax.core.host_memory``), which is what the 1- and 2-slice steps pay for.
    """
    check_nonnegative(lam, name="method_kwargs.lam")
    check_positive(eps, name="method_kwargs.eps")
    check_positive(alpha, name="method_kwargs.alpha")
    check_positive(reg_grad_clip, name="method_kwargs.reg_grad_clip")
    if microbatches is not None:
        microbatches = check_positive_int(microbatches, name="method_kwargs.microbatches")
    norm_value = math.inf if str(norm).lower() in ("inf", "linf") else float(norm)
    static = dict(eps=eps, alpha=alpha if hvp == "fd" else None, norm=norm_value, hvp=hvp,
                  norm_clip=norm_clip)
    max_norm = reg_grad_clip / max(lam, 1e-12)  # ‖λ ∇R‖ ≤ reg_grad_clip

    def clipped(g):
        scale = jnp.minimum(1.0, max_norm / jnp.maximum(optax.tree.norm(g), 1e-12))
        return jax.tree_util.tree_map(lambda t: t * scale, g)

    @partial(jax.custom_vjp, nondiff_argnums=(6,))
    def penalty_term(params, model_state, x_eval, y, z, h, m):
        return soar_penalty_and_grad(model, params, model_state, x_eval, y, z, h, **static,
                                     microbatches=m)[0]

    def penalty_fwd(params, model_state, x_eval, y, z, h, m):
        value, g = soar_penalty_and_grad(model, params, model_state, x_eval, y, z, h,
                                         **static, microbatches=m)
        return value, clipped(g)

    def penalty_bwd(m, g, ct):
        del m
        return (jax.tree_util.tree_map(lambda t: ct * t, g),) + (None,) * 5

    penalty_term.defvjp(penalty_fwd, penalty_bwd)

    def logits_fn_of(params):
        return lambda xx: model.apply({"params": params}, xx, train=False)

    @partial(jax.custom_vjp, nondiff_argnums=(5,))
    def shared_terms(params, x_eval, y, z, h, m):
        return shared_fwd(params, x_eval, y, z, h, m)[0]

    def shared_fwd(params, x_eval, y, z, h, m):
        (ce, value), (g_ce, g_pen), logits = soar_loss_penalty_and_grads(
            logits_fn_of, params, x_eval, y, z, h, **static, microbatches=m)
        return (ce, value, logits), (g_ce, clipped(g_pen))

    def shared_bwd(m, grads, ct):
        del m
        g_ce, g_pen = grads
        ct_ce, ct_pen, _ = ct  # the logits are returned for the metrics only (stop_gradient)
        return (jax.tree_util.tree_map(lambda a, b: (ct_ce * a + ct_pen * b).astype(a.dtype),
                                       g_ce, g_pen), None, None, None, None)

    shared_terms.defvjp(shared_fwd, shared_bwd)

    def objective(params, state, batch, key):
        point_key, reg_key = jax.random.split(key)
        x, y = batch
        b = x.shape[0]
        m = microbatches if microbatches is not None else _default_microbatches(b)
        if b % m:
            raise ValueError(f"method_kwargs.microbatches ({m}) must divide the batch size ({b})")
        frozen = inference_logits_fn(model, lax.stop_gradient(params), state.model_state)
        x_eval = lax.stop_gradient(regularizers.soar_evaluation_point(
            frozen, x, y, init=init, eps=eps, key=point_key, norm=norm_value, clip=clip,
            step_size=alpha))
        z, h = regularizers.soar_directions(reg_key, x_eval, alpha=static["alpha"])
        if single_mode_logits_fn(model, params, state.model_state, x_eval) is None:
            logits, model_state = train_mode_logits(model, params, state.model_state, x_eval)
            ce = None
            penalty = penalty_term(params, lax.stop_gradient(state.model_state), x_eval, y, z, h, m)
        else:  # one forward pass at x_eval for the cross-entropy and the penalty's ∇ₓℓ
            ce, penalty, logits = shared_terms(params, x_eval, y, z, h, m)
            logits, model_state = lax.stop_gradient(logits), state.model_state
        metrics = classification_metrics(logits, y)
        ce = metrics["loss"] if ce is None else ce
        loss = ce + lam * penalty
        metrics = {**metrics, "ce_loss": ce, "loss": loss, "penalty": penalty}
        return loss, {"metrics": metrics, "model_state": model_state, "method_state": state.method_state}

    return objective
