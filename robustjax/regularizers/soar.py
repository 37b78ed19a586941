"""Second-Order Adversarial Regularizer, SOAR (Ma, Faghri, Farahmand 2020).

A second-order Taylor expansion of the loss around ``x`` turns the inner maximization over an
ℓ∞ ball of radius ``ε`` (relaxed to the ℓ2 ball of radius ``√d ε`` that encloses it, eq. 5) into
``max_{‖δ'‖₂ ≤ ε'} δ'ᵀ H δ'`` with the augmented ``(d+1) × (d+1)`` matrix

    H = [[∇²ℓ(x), ∇ℓ(x)], [∇ℓ(x)ᵀ, 1]],     δ' = [δ; 1],     ε'² = d ε² + 1     (eq. 6),

bounded by ``ε'² ‖H‖₂ ≤ ε'² ‖H‖_F`` and ``‖H‖_F`` estimated by ``‖H z‖₂`` with
``z ~ N(0, I_{d+1})`` (eq. 7–8). With ``z = [z_d; z₁]``,

    H z = [∇²ℓ(x) z_d + z₁ ∇ℓ(x) ;  ∇ℓ(x)ᵀ z_d + z₁],

and the Hessian-vector product by a finite difference along the normalized direction (eq. 9):
``∇²ℓ(x) z_d ≈ ‖z_d‖ (∇ℓ(x + h z̃_d) − ∇ℓ(x)) / h``, ``z̃_d = z_d/‖z_d‖``, ``h ~ U(0, α)``. The
regularizer (eq. 11) is

    R(x; z, h) = (d ε² + 1)/2 · ‖H z‖₂.

The PDF's eq. 11 shows only the first block of ``H z`` inside the norm (a conversion artefact);
the derivation above it (the display of ``H z``) has both blocks, and both are used here. For
ℓ2 attacks (the paper's Table 2) the ball needs no relaxation, so ``ε'² = ε² + 1``
(``norm=2``). App. C clips "the value of the ℓ2 norm part of the regularizer" at 10: ``‖H z‖₂`` is
clipped to ``[0, norm_clip]`` per example before the factor (its gradient is then 0 for that
example). The objective (eq. 12) is ``ℓ(x', y) + λ R(x'; z, h)`` with ``λ = 0.5``,
``α = 8/255`` (App. C); the evaluation point ``x'`` is chosen by the caller with
:func:`soar_evaluation_point` (zero, random or PGD1 initialization, §4.2, App. A).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from robustjax.core.validation import num_classes_of
from robustjax.attacks.pgd import pgd
from robustjax.core.losses import REDUCTIONS, reduce_batch
from robustjax.core import losses as L
from robustjax.core import norms as N
from robustjax.core import validation as V
from robustjax.core.hvp import input_grad, input_hvp, input_hvp_finite_difference
from robustjax.core.programs import run

HVP_METHODS = ("fd", "exact")
INITS = ("zero", "random", "pgd1")



def _check_model(logits_fn, x, y):
    if not callable(logits_fn):
        raise ValueError(f"logits_fn must be a callable x[B, ...] -> logits[B, K]; got {logits_fn!r}")
    x = V.check_inputs(x, name="x")
    k = num_classes_of(logits_fn, x)
    if y is not None:
        y = V.check_labels(y, x, num_classes=k, name="y")
    return x, y


def _static_float(value: Any) -> Any:
    """A Python float for a concrete scalar (a hashable key of the compiled program)."""
    return value if isinstance(value, jax.core.Tracer) else float(value)


def soar_radius_squared(eps: float, d: int, *, norm: Any = jnp.inf):
    """``ε'² = d ε² + 1`` for ℓ∞ balls (eq. 5–6), ``ε² + 1`` for ℓ2 balls."""
    p = V.check_norm(norm)
    return (d * eps**2 + 1.0) if p == math.inf else (eps**2 + 1.0)


def soar_directions(key: jax.Array, x: jax.Array, *, alpha: float | None = None):
    """The random constants of one SOAR evaluation on ``x[B, ...]`` (Ma et al. eq. 8–9):
    ``z ~ N(0, I_{d+1})`` per example ``[B, d+1]`` and, when ``alpha`` is given, the FD steps
    ``h ~ U(0, α]`` ``[B]`` (never 0), else ``h = None``. :func:`soar_penalty` with ``key``
    draws exactly these; draw them yourself to split a batch into microbatches."""
    b, d = x.shape[0], math.prod(x.shape[1:])
    kz, kh = jax.random.split(key)
    z = jax.random.normal(kz, (b, d + 1), x.dtype)
    if alpha is None:
        return z, None
    # U(0, α) without 0: α·(1 − U[0, 1)) ∈ (0, α].
    return z, alpha * (1.0 - jax.random.uniform(kh, (b,), x.dtype))


def soar_penalty(
    logits_fn: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    y: jax.Array,
    *,
    eps: float,
    alpha: float | None = None,
    key: jax.Array | None = None,
    norm: Any = jnp.inf,
    hvp: str = "fd",
    norm_clip: float | None = 10.0,
    z: jax.Array | None = None,
    h: jax.Array | None = None,
    grad: jax.Array | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """SOAR regularizer ``R(x; z, h) = (dε²+1)/2 · min(‖H z‖₂, norm_clip)`` (Ma et al., eq. 11).

    Args:
      logits_fn: ``x[B, ...] -> logits[B, K]``; ``ℓ`` is the per-example softmax cross-entropy.
      x: the evaluation point ``x'`` (see :func:`soar_evaluation_point`), ``[B, ...]``.
      y: labels ``[B]``.
      eps: attack radius ``ε`` (> 0); ``d`` = features per example.
      alpha: upper end of the FD step ``h ~ U(0, α)`` (> 0; required for ``hvp="fd"``).
        ``h`` is drawn per example from ``(0, α]`` (never 0).
      key: PRNG key for ``z ~ N(0, I_{d+1})`` (one direction per example, which the paper
        found enough, Fig. 2) and ``h``; not needed when ``z`` (and ``h``) are given.
      norm: ``jnp.inf`` (ε'² = dε²+1) or ``2`` (ε'² = ε²+1).
      hvp: ``"fd"`` (eq. 9, the paper's method) or ``"exact"`` (forward-over-reverse
        ``∇²ℓ(x) z_d``, no ``h``).
      norm_clip: clip ``‖H z‖₂`` to ``[0, norm_clip]`` per example (App. C: 10); ``None``: off.
      z: optional ``[B, d+1]`` directions (for reproducibility/tests). h: optional ``[B]`` steps.
      grad: optional ``∇ₓℓ(x)`` ``[B, ...]`` (per-example cross-entropy gradients) when the
        caller has it already, e.g. from the backward pass that gives the cross-entropy's
        parameter gradient at the same ``x`` (the SOAR objective); used as given, and the
        penalty stays differentiable through it. Then only ``∇ℓ(x + h z̃_d)`` is computed.
      reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (``[B]``).

    The whole expression is differentiable in the model parameters (double backprop through
    ``∇ℓ``); ``z`` and ``h`` are random constants. Multiply by ``λ`` in the objective (eq. 12).
    Called outside a trace with a pytree ``logits_fn`` (``jax.tree_util.Partial(model.apply,
    variables)``, an NNX or Equinox module) it runs as one compiled program reused for new
    parameters (``robustjax.core.programs``); a closure runs inline.
    """
    x, y = _check_model(logits_fn, x, y)
    if y is None:
        raise ValueError("y must hold the labels [B] of x; got None")
    V.check_positive(eps, name="eps")
    V.check_choice(hvp, name="hvp", allowed=HVP_METHODS)
    V.check_choice(reduction, name="reduction", allowed=REDUCTIONS)
    p = V.check_norm(norm)
    if norm_clip is not None:
        V.check_positive(norm_clip, name="norm_clip")
    b = x.shape[0]
    d = math.prod(x.shape[1:])
    if hvp == "fd" and h is None:
        if alpha is None:
            raise ValueError("alpha must be given (> 0) for hvp='fd' (h ~ U(0, alpha))")
        V.check_positive(alpha, name="alpha")
    if (z is None or (hvp == "fd" and h is None)) and key is None:
        raise ValueError("key must be a PRNG key to draw z (and h); got None")
    if z is not None and tuple(z.shape) != (b, d + 1):
        raise ValueError(f"z must have shape [B, d+1] = ({b}, {d + 1}); got {tuple(z.shape)}")
    if hvp == "fd" and h is not None:
        h = jnp.asarray(h, x.dtype)
        if h.shape not in ((), (b,)):
            raise ValueError(f"h must be a scalar or a vector [B={b}]; got shape {h.shape}")
    if hvp != "fd":
        h = None
    if grad is not None and tuple(jnp.shape(grad)) != tuple(x.shape):
        raise ValueError(f"grad must have the shape of x {tuple(x.shape)}; got {tuple(jnp.shape(grad))}")
    static = dict(
        logits_fn=logits_fn, eps=_static_float(eps),
        alpha=None if alpha is None or hvp != "fd" else _static_float(alpha),
        norm=p, hvp=hvp, norm_clip=None if norm_clip is None else _static_float(norm_clip),
        reduction=reduction,
    )
    return run(_soar_body, (x, y, key, z, h, grad), static, jit_opaque=False)


def _soar_body(x, y, key, z, h, grad, *, logits_fn, eps, alpha, norm, hvp, norm_clip, reduction):
    b = x.shape[0]
    d = math.prod(x.shape[1:])
    if key is not None:
        z_drawn, h_drawn = soar_directions(key, x, alpha=alpha)
        z = z_drawn if z is None else z
        h = h_drawn if h is None else h
    z = jax.lax.stop_gradient(z).astype(x.dtype)
    z_d = z[:, :d].reshape(x.shape)
    z_1 = z[:, d]

    def loss_fn(xx):
        return L.cross_entropy(logits_fn(xx), y)

    if hvp == "fd":
        h = jax.lax.stop_gradient(jnp.asarray(h, x.dtype))
        hz, g = input_hvp_finite_difference(loss_fn, x, z_d, h=h, return_grad=True, grad=grad)
    else:
        g = input_grad(loss_fn, x) if grad is None else grad.astype(x.dtype)
        hz = input_hvp(loss_fn, x, z_d)
    top = hz + z_1.reshape((b,) + (1,) * (x.ndim - 1)) * g
    last = jnp.sum((g * z_d).reshape(b, -1), axis=1) + z_1
    sq = jnp.sum(jnp.square(top).reshape(b, -1), axis=1) + jnp.square(last)
    positive = sq > 0
    hz_norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)  # NaN-free grad
    if norm_clip is not None:
        hz_norm = jnp.clip(hz_norm, 0.0, norm_clip)
    factor = 0.5 * soar_radius_squared(eps, d, norm=norm)
    return reduce_batch(factor * hz_norm, reduction)


def soar_evaluation_point(
    logits_fn: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    y: jax.Array | None,
    *,
    init: str = "pgd1",
    eps: float,
    key: jax.Array | None = None,
    norm: Any = jnp.inf,
    step_size: float | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
) -> jax.Array:
    """The point ``x'`` where SOAR evaluates loss and regularizer (Ma et al. §4.2, eq. 12, App. A).

    * ``"zero"``: ``x' = x``.
    * ``"random"``: ``x' = x + η``, ``η`` uniform in the ε-ball (ℓ∞: ``η_i ~ U(−ε, ε)``).
    * ``"pgd1"`` (the paper's choice, App. A): one PGD step from the random start,
      ``x' = Π_ε(x + η + step_size · d(∇ℓ(x + η)))`` with ``d = sign`` for ℓ∞, ``g/‖g‖₂`` for ℓ2
      (the PDF prints ``x + η + α∇ℓ(x + η)`` after eq. 11 and ``x + η + ε_step∇ℓ(x + η)`` in
      §4.2; "one step of PGD adversary" with the PGD steepest-ascent direction and projection is
      implemented). The step is the FD parameter α of eq. 11 (App. C: α = 8/255, which happens
      to equal Table 1's ε = 8/255); the SOAR objective passes ``step_size=alpha``. Without a
      ``step_size`` this function steps ``eps``. ``y=None`` uses the predicted labels.

    The result is clipped to ``clip`` and is a constant (``stop_gradient``), as an attack is.
    """
    V.check_choice(init, name="init", allowed=INITS)
    x, y = _check_model(logits_fn, x, y)
    V.check_positive(eps, name="eps")
    clip = V.check_clip(clip)
    p = V.check_norm(norm)
    if init == "zero":
        return x
    if key is None:
        raise ValueError(f"key must be a PRNG key for init={init!r} (random start); got None")
    if init == "random":
        eta = N.sample_uniform_ball(key, x.shape, eps=eps, norm=p, dtype=x.dtype)
        return jax.lax.stop_gradient(N.clip_to_range(x + eta, clip))
    step_size = eps if step_size is None else step_size
    V.check_positive(step_size, name="step_size")
    x_adv = pgd(
        logits_fn, x, y, eps=eps, norm=p, step_size=step_size, steps=1, key=key,
        random_start=True, clip=clip,
    )
    return jax.lax.stop_gradient(x_adv)
