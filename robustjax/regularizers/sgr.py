"""Structured Gradient Regularization (SGR) and gradient-norm regularization (GN).

Roth, Nowozin, Lucchi, Hofmann 2018, *Adversarially Robust Training through Structured Gradient
Regularization*. A second-order expansion of the log-likelihood under additive noise ``ξ`` with
raw second moments ``Σ`` (eq. 4–10) gives the regularizer (eq. 11; the display is missing from
the PDF text, it is restated in Algorithm 1 and eq. 13)

    Ω_Σ(φ) = ½ E_P̂[ ∇ₓ log φ_y(x)ᵀ Σ ∇ₓ log φ_y(x) ],

and, for perturbations with mean ``μ`` (eq. 12), ``Ω_{μ,Σ} = −E_P̂[∇ₓ log φ_yᵀ μ] + Ω_Σ``. The
training objective is ``CE + λ Ω`` (Algorithm 1) with ``λ`` the noise-to-signal ratio when ``Σ``
is rescaled to the data variance (``covariance.py``). GN is SGR with ``Σ = I``.

``g = ∇ₓ log φ_y(x)`` is computed per example (one batched backward pass of the summed
log-likelihood; examples independent) and is differentiable in the model parameters, so
``jax.grad`` of the penalty with respect to parameters is double backpropagation. ``Σ`` (and
``μ``) are constants (``stop_gradient``).

Called outside a trace with a pytree ``logits_fn`` (``jax.tree_util.Partial(model.apply,
variables)``, an NNX or Equinox module), each function runs as one compiled program reused for
new parameters (``robustjax.core.programs``); a closure runs inline.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from robustjax.core.validation import num_classes_of
from robustjax.core.losses import REDUCTIONS, reduce_batch
from robustjax.core import losses as L
from robustjax.core import validation as V
from robustjax.core.programs import run
from robustjax.regularizers.covariance import (
    as_covariance_state,
    covariance_apply,
    covariance_mean,
)




def _check(logits_fn, x, y, reduction):
    if not callable(logits_fn):
        raise ValueError(f"logits_fn must be a callable x[B, ...] -> logits[B, K]; got {logits_fn!r}")
    x = V.check_inputs(x, name="x")
    k = num_classes_of(logits_fn, x)
    y = V.check_labels(y, x, num_classes=k, name="y")
    V.check_choice(reduction, name="reduction", allowed=REDUCTIONS)
    return x, y


def log_likelihood_input_gradient(
    logits_fn: Callable[[jax.Array], jax.Array], x: jax.Array, y: jax.Array
) -> jax.Array:
    """``g_i = ∇ₓ log φ_{y_i}(x_i)`` per example, ``[B, ...]`` (SGR eq. 11, Algorithm 1).

    ``log φ_y = −CE(f(x), y)`` with ``φ = softmax(logits_fn(x))``. One backward pass of the
    summed log-likelihood gives every example's gradient (examples are independent). No
    ``stop_gradient``: the result is differentiable with respect to the model's parameters.
    """
    x, y = _check(logits_fn, x, y, "mean")
    return run(_input_gradient_body, (x, y), dict(logits_fn=logits_fn), jit_opaque=False)


def _input_gradient_body(x, y, *, logits_fn):
    def total_log_likelihood(z):
        return -jnp.sum(L.cross_entropy(logits_fn(z), y))

    return jax.grad(total_log_likelihood)(x)


def _per_example_dot(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.sum((a * b).reshape(a.shape[0], -1), axis=1)


def sgr_penalty(
    logits_fn: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    y: jax.Array,
    *,
    covariance: Any,
    uncentered: bool = False,
    mean: jax.Array | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Structured gradient regularizer ``½ gᵀ Σ g`` (SGR eq. 11/13, Algorithm 1), batch mean.

    Args:
      logits_fn: ``x[B, ...] -> logits[B, K]`` (inference mode if it has BatchNorm).
      x, y: the clean training batch and its labels (Algorithm 1 evaluates at the data).
      covariance: a state from ``covariance_init``/``covariance_update`` (applied with its
        rescaling ``σ_t``, Algorithm 1), or a plain ``[D, D]`` matrix / ``[*x_shape]`` diagonal
        used as is. A constant: no gradient flows into it.
      uncentered: add the first-order term ``−gᵀμ`` of eq. 12 with ``μ`` the state's running
        mean of the perturbations (``covariance_mean``), or ``mean`` when given.
      mean: explicit ``μ[*x_shape]`` for the eq. 12 term (implies ``uncentered``).
      reduction: ``"mean"`` (default, the ``1/m Σ_i`` of Algorithm 1), ``"sum"`` or ``"none"``.

    Multiply by ``λ`` in the objective (paper: ``λ ∈ [0.03, 5]``, Tables 3–4).
    """
    x, y = _check(logits_fn, x, y, reduction)
    state = as_covariance_state(covariance, x.shape[1:], name="covariance")
    if mean is not None:
        mean = jnp.asarray(mean)
        if tuple(mean.shape) != tuple(x.shape[1:]):
            raise ValueError(f"mean must have the shape of one example {x.shape[1:]}; got {mean.shape}")
    static = dict(logits_fn=logits_fn, uncentered=bool(uncentered), reduction=reduction)
    return run(_sgr_body, (x, y, state, mean), static, jit_opaque=False)


def _sgr_body(x, y, state, mean, *, logits_fn, uncentered, reduction):
    g = _input_gradient_body(x, y, logits_fn=logits_fn)
    return sgr_penalty_of_gradient(g, covariance=state, uncentered=uncentered, mean=mean,
                                   reduction=reduction)


def sgr_penalty_of_gradient(
    g: jax.Array,
    *,
    covariance: Any,
    uncentered: bool = False,
    mean: jax.Array | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """:func:`sgr_penalty` from a given ``g = ∇ₓ log φ_y(x)`` ``[B, ...]`` (SGR eq. 11–13).

    For callers that already hold the input gradient (e.g. a training objective that gets
    it from the same forward pass as its cross-entropy, see
    ``robustjax.training.objectives.gn``); arguments as in :func:`sgr_penalty`.
    """
    V.check_choice(reduction, name="reduction", allowed=REDUCTIONS)
    state = as_covariance_state(covariance, g.shape[1:], name="covariance")
    per_example = 0.5 * _per_example_dot(g, covariance_apply(state, g))
    if mean is not None or uncentered:
        if mean is None:
            mu = covariance_mean(state)
        else:
            mu = jnp.asarray(mean)
            if tuple(mu.shape) != tuple(g.shape[1:]):
                raise ValueError(f"mean must have the shape of one example {g.shape[1:]}; got {mu.shape}")
            mu = jax.lax.stop_gradient(mu)  # μ is a fixed estimate, like Σ
        per_example = per_example - _per_example_dot(g, jnp.broadcast_to(mu.astype(g.dtype), g.shape))
    return reduce_batch(per_example, reduction)


def gradient_norm_penalty(
    logits_fn: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    y: jax.Array,
    *,
    reduction: str = "mean",
) -> jax.Array:
    """Gradient-norm regularizer GN: SGR with ``Σ = I``, ``½ ‖∇ₓ log φ_y(x)‖₂²`` (SGR §4.1 (iv)).

    Batch mean by default; differentiable in the model parameters (double backprop).
    """
    x, y = _check(logits_fn, x, y, reduction)
    static = dict(logits_fn=logits_fn, reduction=reduction)
    return run(_gradient_norm_body, (x, y), static, jit_opaque=False)


def _gradient_norm_body(x, y, *, logits_fn, reduction):
    g = _input_gradient_body(x, y, logits_fn=logits_fn)
    return gradient_norm_penalty_of_gradient(g, reduction=reduction)


def gradient_norm_penalty_of_gradient(g: jax.Array, *, reduction: str = "mean") -> jax.Array:
    """:func:`gradient_norm_penalty` from a given ``g = ∇ₓ log φ_y(x)`` ``[B, ...]``: ``½‖g‖²``."""
    V.check_choice(reduction, name="reduction", allowed=REDUCTIONS)
    return reduce_batch(0.5 * _per_example_dot(g, g), reduction)
