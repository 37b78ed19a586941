"""The perturbations whose second moments SGR's covariance estimates (Roth, Nowozin, Lucchi,
Hofmann 2018, §4.1: the SGR variants (a)–(d)): loss gradients, their signs, FGM/FGSM and PGD
perturbations. ``covariance.py`` turns them into the running covariance state.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from robustjax.attacks.fgm import fgm
from robustjax.attacks.pgd import pgd
from robustjax.core import losses as L
from robustjax.core import validation as V

__all__ = ["SOURCES", "perturbations"]

SOURCES = ("gradient", "sign", "fgm", "fgsm", "pgd")


def perturbations(
    logits_fn: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    y: jax.Array | None,
    *,
    source: str,
    eps: float | None = None,
    key: jax.Array | None = None,
    norm: Any = jnp.inf,
    steps: int = 10,
    step_size: float | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
) -> jax.Array:
    """Perturbations ``ξ[B, ...]`` whose second moments SGR's covariance estimates (SGR §4.1).

    ``source`` (the paper's SGR variants (a)–(d)):
      * ``"gradient"`` — the raw loss gradient ``∇ₓ CE(f(x), y)`` (SGR_GRAD; ``eps`` unused:
        the scale is removed by the covariance rescaling).
      * ``"sign"`` — ``eps · sign(∇ₓ CE)`` (SGR_SIGN; not clipped to the data range).
      * ``"fgsm"`` / ``"fgm"`` — ``x_adv − x`` of the FGSM (ℓ∞) / FGM (ℓ2) attack of radius ``eps``.
      * ``"pgd"`` — ``x_adv − x`` of PGD (``norm``, ``steps`` = 10, ``step_size`` = ``eps/5`` by
        default as in SGR Table 2, random start drawn with ``key``).
    ``y=None`` uses the model's predicted labels, which the paper does to avoid label leaking
    (§7.2). The result is a constant (``stop_gradient``).
    """
    V.check_choice(source, name="source", allowed=SOURCES)
    if not callable(logits_fn):
        raise ValueError(f"logits_fn must be a callable x[B, ...] -> logits[B, K]; got {logits_fn!r}")
    x = V.check_inputs(x, name="x")
    if source != "gradient":
        if eps is None:
            raise ValueError(f"eps must be given (> 0) for source={source!r}")
        V.check_positive(eps, name="eps")
    if source in ("gradient", "sign"):
        if y is None:
            y = jnp.argmax(logits_fn(x), axis=-1)
        else:
            y = V.check_labels(y, x, name="y")
        g = jax.grad(lambda z: jnp.sum(L.cross_entropy(logits_fn(z), y)))(x)
        xi = g if source == "gradient" else eps * jnp.sign(g)
    elif source == "fgsm":
        xi = fgm(logits_fn, x, y, eps=eps, norm=jnp.inf, clip=clip) - x
    elif source == "fgm":
        xi = fgm(logits_fn, x, y, eps=eps, norm=2, clip=clip) - x
    else:
        if key is None:
            raise ValueError("key must be a PRNG key for source='pgd' (random start)")
        step_size = eps / 5.0 if step_size is None else step_size
        xi = pgd(
            logits_fn, x, y, eps=eps, norm=norm, step_size=step_size, steps=steps, key=key,
            clip=clip,
        ) - x
    return jax.lax.stop_gradient(xi)
