"""Projected gradient descent/ascent (PGD, PGM, PGA) in ℓ∞ and ℓ2.

Madry et al. 2018 (ℓ∞ PGD with uniform random start); Kurakin et al. 2016 / Farnia et al. 2019,
eq. 6 (PGM: steepest-ascent step then projection, no random start); Roth et al. 2019, eq. 15–16
(ℓ2 PGA: normalized-gradient step ``x̃ = x_k + α ∇ℓ/‖∇ℓ‖₂`` and projection
``x + ε(x̃ − x)/max(ε, ‖x̃ − x‖₂)``, start uniform in the ℓ2 ball; the softmax inverse temperature
β of eq. 21–24 is ``1/temperature``).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

from robustjax.attacks import _common as C
from robustjax.core import norms as N
from robustjax.core import validation as V

# Default loop unrolling: ``None`` = fully unrolled up to ``_common.UNROLL_MAX_STEPS`` (20)
# steps, rolled beyond (measurements in ``_common``).
DEFAULT_UNROLL = None


def _pgd_body(
    x, y, key, *, logits_fn, eps, norm, step_size, steps, random_start, clip, targeted, loss,
    beta, unroll,
):
    y = C.labels_or_predictions(logits_fn, x, y)
    target_logits = lax.stop_gradient(logits_fn(x)) if loss == "sos" else None
    if random_start:
        delta0 = N.sample_uniform_ball(key, x.shape, eps=eps, norm=norm, dtype=x.dtype)
    else:
        delta0 = jnp.zeros_like(x)
    x0 = N.clip_to_range(x + delta0, clip)

    def step(_, x_adv):
        _, g = C.objective_and_grad(
            logits_fn, x_adv, y, loss=loss, targeted=targeted, beta=beta,
            target_logits=target_logits,
        )
        x_tilde = x_adv + step_size * N.steepest_ascent_direction(g, norm=norm)
        x_new = x + N.project_to_ball(x_tilde - x, eps=eps, norm=norm)
        # Clipping after projection keeps the ball constraint: for x inside ``clip`` it only
        # moves coordinates towards x, so |δ_i| (hence every ℓp norm of δ) can only shrink.
        return N.clip_to_range(x_new, clip)

    x_adv = lax.fori_loop(0, steps, step, x0, unroll=unroll)
    return N.round_into_ball(x, x_adv, eps=eps, norm=norm)


def pgd(
    logits_fn: Callable,
    x: jax.Array,
    y: jax.Array | None,
    *,
    eps: float,
    norm: Any,
    step_size: float,
    steps: int,
    key: jax.Array | None = None,
    random_start: bool = True,
    clip: tuple[float, float] | None = (0.0, 1.0),
    targeted: bool = False,
    loss: str = "ce",
    temperature: float = 1.0,
    unroll: bool | int | None = DEFAULT_UNROLL,
) -> jax.Array:
    """Projected gradient ascent attack; returns ``x_adv[B, ...]`` with ``‖x_adv − x‖ ≤ eps``.

    ``x_{k+1} = clip(x + Π_ε(x_k + step_size · d(∇ℓ(x_k)) − x))`` for ``steps`` iterations, where
    ``d`` is ``sign`` (ℓ∞, Madry et al. 2018) or ``g/‖g‖₂`` (ℓ2, Roth et al. 2019, eq. 15–16) and
    ``Π_ε`` the projection onto the ε-ball (eq. 16's ``ε·δ/max(ε, ‖δ‖)`` for ℓ2, clipping for ℓ∞).

    Args:
      logits_fn: ``x[B, ...] -> logits[B, K]``, any JAX function.
      y: labels ``[B]``; target labels when ``targeted``; ``None`` attacks the model's predicted
        labels (no label leaking, SGR §7.2 / Farnia et al.).
      eps: radius of the ball (≥ 0). norm: ``2`` or ``jnp.inf``.
      step_size: α, the length of each steepest-ascent step. steps: number of iterations (≥ 1).
      key: PRNG key of the random start; required when ``random_start`` (uniform in the ball).
        ``random_start=False`` starts at ``x`` (Farnia et al.'s PGM).
      clip: data range ``(low, high)`` applied after each step, or ``None``.
      targeted: minimize the loss of the target ``y`` instead of maximizing the loss of ``y``.
      loss: ``"ce"`` (softmax cross-entropy), ``"cw"`` (margin) or ``"sos"`` (``½‖f(x)−f(x')‖²``,
        Roth eq. 17). temperature: ``T = 1/β`` of the softmax (Roth eq. 21).
      unroll: ``lax.fori_loop`` unrolling: ``True`` fully unrolls, ``False`` keeps one rolled
        loop (compiles once, whatever ``steps``), an integer unrolls by that factor; ``None``
        (default) unrolls up to 20 steps and rolls longer loops (see ``UNROLL_MAX_STEPS``).
    """
    x, y, clip, _ = C.validate_common(logits_fn, x, y, targeted=targeted, loss=loss, clip=clip)
    C.check_eps(eps)
    p = C.norm_value(norm)
    V.check_nonnegative(step_size, name="step_size")
    steps = V.check_positive_int(steps, name="steps")
    unroll = C.resolve_unroll(unroll, steps)
    V.check_positive(temperature, name="temperature")
    if random_start and key is None:
        raise ValueError("key must be a jax.random key when random_start=True; got None")
    if not random_start:
        key = None
    static = dict(
        logits_fn=logits_fn, eps=C.as_static_float(eps), norm=p,
        step_size=C.as_static_float(step_size), steps=steps, random_start=bool(random_start),
        clip=clip, targeted=bool(targeted), loss=loss,
        beta=C.as_static_float(1.0 / temperature) if not C.is_traced(temperature)
        else 1.0 / temperature,
        unroll=unroll,
    )
    return C.run_jitted(_pgd_body, (x, y, key), static)


def pgd_linf(logits_fn, x, y, **kwargs):
    """``pgd(..., norm=jnp.inf)`` (Madry et al. 2018)."""
    return pgd(logits_fn, x, y, norm=math.inf, **kwargs)


def pgd_l2(logits_fn, x, y, **kwargs):
    """``pgd(..., norm=2)`` (Roth et al. 2019, eq. 15–16)."""
    return pgd(logits_fn, x, y, norm=2, **kwargs)
