"""Multi-class DeepFool (ℓ2), Moosavi-Dezfooli et al. 2016, Algorithm 2 and eq. 2.

At the current point ``x_i`` with original class ``k₀``, every candidate class ``k`` defines
``w_k = ∇f_k(x_i) − ∇f_{k₀}(x_i)`` and ``f'_k = f_k(x_i) − f_{k₀}(x_i)``; the step goes to the
nearest linearized boundary ``l = argmin_k |f'_k|/‖w_k‖₂`` with ``r_i = |f'_l| w_l/‖w_l‖₂²``.
Steps accumulate in ``r``; the attack point is ``x + (1 + overshoot)·r``. On an affine classifier
one step lands exactly on the nearest decision boundary (distance ``min_k |f'_k|/‖w_k‖``). Unlike
the reference code no ``1e-4`` is added to ``|f'_l|``: the overshoot alone crosses the boundary, so
the analytic distance is reproduced exactly.

Gradients of the candidate logits: one forward pass and a ``vmap`` over classes of the batched
``vjp`` (the batch Jacobian is block diagonal, so cotangent ``e_k`` on every row gives each
example's ``∇f_k``). Per-example early stopping: an example stops once its label has changed;
the ``lax.while_loop`` ends when every example is done or after ``max_iter`` iterations.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from robustjax.attacks import _common as C
from robustjax.core import norms as N
from robustjax.core import validation as V

_FLOOR = 1e-12


def _deepfool_body(x, *, logits_fn, overshoot, max_iter, num_classes, clip):
    logits0 = lax.stop_gradient(logits_fn(x))
    k = logits0.shape[1]
    j = k if num_classes is None else min(num_classes, k)
    # Candidate classes: the j most likely at x; the first is the predicted class k0.
    candidates = jnp.argsort(-logits0, axis=1)[:, :j].astype(jnp.int32)  # [B, j]
    k0 = candidates[:, 0]
    cotangents = jnp.transpose(jax.nn.one_hot(candidates, k, dtype=logits0.dtype), (1, 0, 2))

    def point(r_tot):
        return N.clip_to_range(x + (1.0 + overshoot) * r_tot, clip)

    def body(state):
        i, r_tot, active = state
        logits, vjp_fn = jax.vjp(logits_fn, point(r_tot))
        active = active & (jnp.argmax(logits, axis=1) == k0)
        grads = jax.vmap(vjp_fn)(cotangents)[0]  # [j, B, ...]: ∇f_{candidate} per example
        f = jnp.take_along_axis(logits, candidates, axis=1)  # [B, j]
        w = grads[1:] - grads[:1]  # [j-1, B, ...]
        f_diff = jnp.abs(f[:, 1:] - f[:, :1]).T  # [j-1, B]
        w_norm = jax.vmap(N.l2_norm)(w)  # [j-1, B]
        dist = f_diff / jnp.maximum(w_norm, _FLOOR)
        best = jnp.argmin(dist, axis=0)  # [B]
        pick = lambda a: jnp.take_along_axis(a, best[None], axis=0)[0]  # noqa: E731
        w_l = jnp.take_along_axis(w, best.reshape((1, -1) + (1,) * (x.ndim - 1)), axis=0)[0]
        scale = pick(f_diff) / jnp.maximum(jnp.square(pick(w_norm)), _FLOOR)
        r_i = w_l * scale.reshape((-1,) + (1,) * (x.ndim - 1))
        mask = active.reshape((-1,) + (1,) * (x.ndim - 1))
        return i + 1, jnp.where(mask, r_tot + r_i, r_tot), active

    def cond(state):
        i, _, active = state
        return (i < max_iter) & jnp.any(active)

    init = (jnp.zeros((), jnp.int32), jnp.zeros_like(x), jnp.ones(x.shape[0], bool))
    _, r_tot, _ = lax.while_loop(cond, body, init)
    x_adv = point(r_tot)
    return x_adv, x_adv - x


def deepfool(
    logits_fn: Callable,
    x: jax.Array,
    *,
    overshoot: float = 0.02,
    max_iter: int = 100,
    num_classes: int | None = None,
    clip: tuple[float, float] | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Multi-class ℓ2 DeepFool (Moosavi-Dezfooli et al. 2016, Alg. 2); SGR's FOOL attack.

    Attacks the model's own prediction (label-free). Returns ``(x_adv, r)`` with
    ``x_adv = clip(x + (1 + overshoot)·r_tot)`` and the per-example minimal perturbation
    ``r = x_adv − x`` (``[B, ...]``). ``num_classes`` restricts the candidates to the ``num_classes``
    most likely classes at ``x`` (``None``: all K). ``max_iter`` bounds the iterations; examples
    stop individually once their label changes.
    """
    x, _, clip, k = C.validate_common(logits_fn, x, None, clip=clip)
    if k < 2:
        raise ValueError(f"logits_fn must return at least 2 classes for deepfool; got K={k}")
    V.check_nonnegative(overshoot, name="overshoot")
    max_iter = V.check_positive_int(max_iter, name="max_iter")
    if num_classes is not None:
        num_classes = V.check_positive_int(num_classes, name="num_classes", minimum=2)
    static = dict(
        logits_fn=logits_fn, overshoot=C.as_static_float(overshoot), max_iter=max_iter,
        num_classes=num_classes, clip=clip,
    )
    return C.run_jitted(_deepfool_body, (x,), static)


def deepfool_robustness(logits_fn: Callable, x: jax.Array, **kwargs) -> jax.Array:
    """``ρ = mean_i ‖r_i‖₂ / ‖x_i‖₂`` over the batch (Moosavi-Dezfooli et al. 2016, eq. 2; the
    FOOL column of SGR Table 3). ``kwargs`` go to :func:`deepfool`."""
    _, r = deepfool(logits_fn, x, **kwargs)
    return jnp.mean(N.l2_norm(r) / jnp.maximum(N.l2_norm(x), _FLOOR))
