"""Structured gradient regularization (SGR) and gradient-norm regularization (GN) objectives
(Roth, Nowozin, Lucchi & Hofmann 2018, eq. 11–13, Algorithm 1)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from robustjax import regularizers
from robustjax.core import norms as N
from robustjax.core.validation import check_choice, check_nonnegative, check_positive
from robustjax.regularizers.sgr import (
    gradient_norm_penalty_of_gradient,
    sgr_penalty_of_gradient,
)
from robustjax.training.objectives.base import (
    Objective,
    classification_metrics,
    inference_logits_fn,
    logits_and_input_gradient,
    single_mode_logits_fn,
    train_mode_logits,
)

SGR_SOURCES = ("gradient", "sign", "fgsm", "pgd")


def sgr(
    model,
    *,
    lam: float = 1.0,
    kind: str = "function",
    source: str = "fgsm",
    eps: float = 32 / 255,
    beta: float = 0.1,
    max_distance: int | None = None,
    psd: bool = True,
    steps: int = 10,
    uncentered: bool = False,
) -> Objective:
    """ERM + λ · SGR ½ gᵀ Σ̂ g with a running covariance of adversarial perturbations (SGR Alg. 1).

    Every step: perturbations ξ from ``source`` (loss gradient, its sign, FGSM or PGD at
    radius ``eps``, crafted on the predicted labels — no label leaking), the EMA update
    Σ̂ ← (1 − β) Σ̂ + β Cov(ξ) (β = 0.1), then the penalty with Σ̂ rescaled to the data's mean
    variance and held constant (``stop_gradient``); λ is the noise-to-signal ratio. ``kind``:
    ``function`` (covariance function of rounded pixel displacement, eq. 16; a convolution
    of the gradient image), ``full`` (dense D×D) or ``diagonal``. ``psd`` (``function`` only,
    default on): apply the covariance function's nearest PSD stationary kernel — the raw
    rounded-distance function has negative eigenvalues, along which ½ gᵀΣg would reward large
    gradients (see ``robustjax.regularizers.covariance``). ``uncentered``: add eq. 12's
    first-order term ``−gᵀμ`` with μ the running mean of the perturbations (rescaled with Σ;
    the paper "observed this correction to be small").

    For a model without mutable state (see :func:`single_mode_logits_fn`) the CE, ``g`` and
    (sources gradient/sign/fgsm) the perturbation's gradient come from one forward pass, so the
    parameter gradient needs one reverse sweep of it (issue 7; same values as the general path).
    """
    check_nonnegative(lam, name="method_kwargs.lam")
    check_choice(source, name="method_kwargs.source", allowed=SGR_SOURCES)
    check_choice(kind, name="method_kwargs.kind", allowed=("function", "full", "diagonal"))
    check_positive(eps, name="method_kwargs.eps")

    def objective(params, state, batch, key):
        x, y = batch
        shared_fn = single_mode_logits_fn(model, params, state.model_state, x)
        if shared_fn is None:
            logits, model_state = train_mode_logits(model, params, state.model_state, x)
            logits_fn = inference_logits_fn(model, lax.stop_gradient(params), state.model_state)
            xi = regularizers.perturbations(logits_fn, x, None, source=source, eps=eps, key=key,
                                            steps=steps)
        else:
            # one forward pass for CE, g and (gradient/sign/fgsm sources) the perturbation
            logits, g, vjp_fn = logits_and_input_gradient(shared_fn, x, y)
            model_state = state.model_state
            frozen_fn = inference_logits_fn(model, lax.stop_gradient(params), state.model_state)
            xi = _shared_perturbation(frozen_fn, vjp_fn, logits, x, source=source, eps=eps,
                                      key=key, steps=steps)
        metrics = classification_metrics(logits, y)
        covariance = regularizers.covariance_update(state.method_state, lax.stop_gradient(xi), beta=beta)
        covariance = jax.tree_util.tree_map(lax.stop_gradient, covariance)
        if shared_fn is None:
            live_fn = inference_logits_fn(model, params, state.model_state)
            penalty = regularizers.sgr_penalty(live_fn, x, y, covariance=covariance,
                                               uncentered=uncentered)
        else:
            penalty = sgr_penalty_of_gradient(g, covariance=covariance, uncentered=uncentered)
        loss = metrics["loss"] + lam * penalty
        metrics = {**metrics, "ce_loss": metrics["loss"], "loss": loss, "penalty": penalty}
        return loss, {"metrics": metrics, "model_state": model_state, "method_state": covariance}

    return objective


def _shared_perturbation(frozen_fn, vjp_fn, logits, x, *, source, eps, key, steps):
    """``regularizers.perturbations(..., y=None)`` reusing the clean forward pass (a constant).

    gradient / sign / fgsm: the loss gradient at the predicted labels is the vjp of
    ``softmax − onehot(ŷ)`` through the forward pass the objective already made; fgsm then
    steps as ``attacks.fgm`` does (sign step, clip to [0, 1], ε-ball rounding fix). pgd
    starts elsewhere and keeps the general path on ``frozen_fn`` (parameters held constant).
    """
    if source == "pgd":
        return regularizers.perturbations(frozen_fn, x, None, source=source, eps=eps, key=key,
                                          steps=steps)
    z = lax.stop_gradient(logits)
    predicted = jnp.argmax(z, axis=-1)
    cotangent = jax.nn.softmax(z) - jax.nn.one_hot(predicted, z.shape[-1], dtype=z.dtype)
    (grad,) = vjp_fn(cotangent)
    grad = lax.stop_gradient(grad)
    if source == "gradient":
        return grad
    if source == "sign":
        return eps * jnp.sign(grad)
    x_adv = N.clip_to_range(x + eps * N.steepest_ascent_direction(grad, norm=jnp.inf), (0.0, 1.0))
    return lax.stop_gradient(N.round_into_ball(x, x_adv, eps=eps, norm=math.inf) - x)


def _sgr_state(*, input_shape, data_variance, kind="function", max_distance=None, psd=True, **_):
    return regularizers.covariance_init(kind, tuple(input_shape), data_variance=data_variance,
                                        max_distance=max_distance, psd=psd)


def gn(model, *, lam: float = 1.0) -> Objective:
    """ERM + λ · ½‖∇ₓ log φ_y(x)‖² (gradient-norm regularization, SGR with Σ = I; SGR §4.1 (iv)).

    For a model without mutable state (see :func:`single_mode_logits_fn`) CE and ``g`` come
    from one forward pass and its ``jax.vjp`` (one reverse sweep for both in the parameter
    gradient, issue 7); otherwise CE in train mode and the penalty in inference mode.
    """
    check_nonnegative(lam, name="method_kwargs.lam")

    def objective(params, state, batch, key):
        del key
        x, y = batch
        shared_fn = single_mode_logits_fn(model, params, state.model_state, x)
        if shared_fn is None:
            logits, model_state = train_mode_logits(model, params, state.model_state, x)
            penalty = regularizers.gradient_norm_penalty(
                inference_logits_fn(model, params, state.model_state), x, y)
        else:  # one forward pass (and one reverse sweep of it) for CE and g
            logits, g, _ = logits_and_input_gradient(shared_fn, x, y)
            model_state = state.model_state
            penalty = gradient_norm_penalty_of_gradient(g)
        metrics = classification_metrics(logits, y)
        loss = metrics["loss"] + lam * penalty
        metrics = {**metrics, "ce_loss": metrics["loss"], "loss": loss, "penalty": penalty}
        return loss, {"metrics": metrics, "model_state": model_state, "method_state": state.method_state}

    return objective
