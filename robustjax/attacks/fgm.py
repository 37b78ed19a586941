"""Fast gradient method: FGM (ℓ2) and FGSM (ℓ∞).

Goodfellow et al. 2015 (FGSM); Farnia et al. 2019, eq. 5: ``δ = argmax_{‖δ‖≤ε} δᵀ∇ₓℓ(f(x), y)``,
i.e. ``ε·∇ℓ/‖∇ℓ‖₂`` for ℓ2 and ``ε·sign(∇ℓ)`` for ℓ∞ (the maximizer of a linearized loss).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax

from robustjax.attacks import _common as C
from robustjax.core import norms as N


def _fgm_body(x, y, *, logits_fn, eps, norm, clip, targeted, loss):
    y = C.labels_or_predictions(logits_fn, x, y)
    target_logits = jax.lax.stop_gradient(logits_fn(x)) if loss == "sos" else None
    _, g = C.objective_and_grad(
        logits_fn, x, y, loss=loss, targeted=targeted, target_logits=target_logits
    )
    step = N._expand(eps, g) * N.steepest_ascent_direction(g, norm=norm)
    x_adv = N.clip_to_range(x + step, clip)
    return N.round_into_ball(x, x_adv, eps=eps, norm=norm)


def fgm(
    logits_fn: Callable,
    x: jax.Array,
    y: jax.Array | None,
    *,
    eps: float,
    norm: Any = 2,
    clip: tuple[float, float] | None = (0.0, 1.0),
    targeted: bool = False,
    loss: str = "ce",
) -> jax.Array:
    """One steepest-ascent step of length ``eps`` (Farnia et al. 2019, eq. 5; Goodfellow et al.).

    Returns ``x_adv = clip(x + eps · d)`` with ``d = g/‖g‖₂`` (``norm=2``, FGM) or ``sign(g)``
    (``norm=jnp.inf``, FGSM), ``g = ∇ₓℓ`` per example. ``y=None`` uses the predicted labels;
    ``targeted`` steps down the loss of target ``y``. ``loss`` is ``"ce"``, ``"cw"`` or ``"sos"``.
    A zero gradient gives ``x_adv = x``. ``clip`` is the data range (default ``(0, 1)``, as every
    attack; ``None`` leaves it unclipped).
    """
    x, y, clip, _ = C.validate_common(logits_fn, x, y, targeted=targeted, loss=loss, clip=clip)
    C.check_eps(eps)
    p = C.norm_value(norm)
    static = dict(
        logits_fn=logits_fn, eps=C.as_static_float(eps), norm=p, clip=clip,
        targeted=bool(targeted), loss=loss,
    )
    return C.run_jitted(_fgm_body, (x, y), static)


fgsm = functools.partial(fgm, norm=math.inf)
fgsm.__doc__ = "FGSM: ``fgm(..., norm=jnp.inf)`` (Goodfellow et al. 2015; Farnia et al. 2019, eq. 5)."
