"""WRM: the Lagrangian (Wasserstein) attack of Sinha et al. 2018 (Farnia et al. 2019, eq. 7).

It maximizes ``φ(x') = ℓ(f(x'), y) − γ‖x' − x‖₂²`` by gradient ascent, without projection.

Derivation of the reference schedule. ``∇φ(x') = ∇ℓ(x') − 2γ(x' − x)``. With ``ε = 1/(2γ)``,
``ε∇φ(x') = ∇(εℓ)(x') − (x' − x)``. Sinha et al.'s code therefore updates

    x_1     = x + ∇(εℓ)(x)                                   (the penalty gradient is 0 at x' = x)
    x_{t+2} = x_{t+1} + η_t (∇(εℓ)(x_{t+1}) − (x_{t+1} − x)),   η_t = 1/√(t+2),  t = 0..steps−1,

i.e. gradient ascent on φ with learning rate ``ε·η_t`` (the first step is the same update with
``η = 1``). For γ above the Lipschitz constant of ∇ℓ, φ is strongly concave and this converges
to the unique maximizer, where ``x' − x = ε∇ℓ(x')``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from robustjax.attacks import _common as C
from robustjax.core import norms as N
from robustjax.core import validation as V


def _wrm_body(x, y, *, logits_fn, gamma, steps, step_size, clip, unroll):
    y = C.labels_or_predictions(logits_fn, x, y)
    eps = 1.0 / (2.0 * gamma)

    def ascent_direction(x_adv):
        # ε∇φ(x') = ∇(εℓ)(x') − (x' − x)
        _, g = C.objective_and_grad(logits_fn, x_adv, y, loss="ce", targeted=False)
        return eps * g - (x_adv - x)

    if step_size is None:
        x1 = N.clip_to_range(x + ascent_direction(x), clip)

        def step(t, x_adv):
            eta = 1.0 / jnp.sqrt(t.astype(x.dtype) + 2.0)
            return N.clip_to_range(x_adv + eta * ascent_direction(x_adv), clip)

        return lax.fori_loop(0, steps, step, x1, unroll=unroll)

    def const_step(_, x_adv):
        return N.clip_to_range(x_adv + step_size * ascent_direction(x_adv), clip)

    return lax.fori_loop(0, steps, const_step, x, unroll=unroll)


def wrm(
    logits_fn: Callable,
    x: jax.Array,
    y: jax.Array | None,
    *,
    gamma: float,
    steps: int,
    step_size: float | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
    unroll: bool | int | None = None,
) -> jax.Array:
    """Sinha et al.'s WRM attack: ``argmax_{x'} ℓ(f(x'), y) − γ‖x' − x‖₂²`` (Farnia eq. 7).

    ``step_size=None`` uses the reference schedule (module docstring): a unit first step
    ``x + ∇(εℓ)`` with ``ε = 1/(2γ)``, then ``steps`` updates ``x' += (∇(εℓ) − (x' − x))/√(t+2)``
    (``steps + 1`` gradient evaluations). A float ``step_size`` η instead runs ``steps`` updates
    ``x' += η(∇(εℓ) − (x' − x))`` from ``x`` (gradient ascent on the Lagrangian with rate ``εη``).
    No projection; ``clip`` (default ``(0, 1)``, the data range; ``None`` for none) is applied after
    each update. ``y=None`` attacks the
    predicted labels. ℓ is softmax cross-entropy. ``unroll`` as in :func:`pgd` (``None``: unrolled
    up to 20 steps, rolled beyond).
    """
    x, y, clip, _ = C.validate_common(logits_fn, x, y, clip=clip)
    V.check_positive(gamma, name="gamma")
    steps = V.check_positive_int(steps, name="steps")
    unroll = C.resolve_unroll(unroll, steps)
    if step_size is not None:
        V.check_positive(step_size, name="step_size")
        step_size = C.as_static_float(step_size)
    static = dict(
        logits_fn=logits_fn, gamma=C.as_static_float(gamma), steps=steps, step_size=step_size,
        clip=clip, unroll=unroll,
    )
    return C.run_jitted(_wrm_body, (x, y), static)
