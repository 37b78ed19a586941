"""Per-example norms, ε-ball projections, steepest-ascent directions and ball samplers.

Every function treats axis 0 as the batch axis and reduces over all the other axes, so the
examples of a batch never interact (the contract of ARCHITECTURE.md). ``norm`` is ``2``,
``jnp.inf`` (and ``1`` where it makes sense). Nothing here produces NaN on a zero vector:
divisions use a floor (``1e-12``) and the ℓ2 norm has a NaN-free gradient at zero.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from robustjax.core.validation import check_norm

_FLOOR = 1e-12


def _reduce_axes(x: jax.Array) -> tuple[int, ...]:
    return tuple(range(1, x.ndim))


def _expand(v: jax.Array, x: jax.Array) -> jax.Array:
    """Reshape a per-example ``[B]`` (or scalar) array to broadcast against ``x[B, ...]``."""
    v = jnp.asarray(v, dtype=x.dtype)
    if v.ndim == 0:
        return v
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def per_example_norm(x: jax.Array, *, norm: Any = 2) -> jax.Array:
    """Norm of every example of ``x[B, ...]`` over its non-batch axes, shape ``[B]``.

    ``norm`` is 1, 2 or ``jnp.inf``. The ℓ2 norm uses a guarded square root so that its
    gradient at ``x_i = 0`` is 0 instead of NaN (safe inside regularizers).
    """
    p = check_norm(norm, allowed=(1, 2, math.inf))
    axes = _reduce_axes(x)
    if p == math.inf:
        return jnp.max(jnp.abs(x), axis=axes)
    if p == 1:
        return jnp.sum(jnp.abs(x), axis=axes)
    sq = jnp.sum(jnp.square(x), axis=axes)
    positive = sq > 0
    # Double-where: sqrt never sees 0, so d/dx sqrt is finite; the zero branch gives 0.
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def l2_norm(x: jax.Array) -> jax.Array:
    """Per-example Euclidean norm ``‖x_i‖₂`` over the non-batch axes, shape ``[B]``."""
    return per_example_norm(x, norm=2)


def linf_norm(x: jax.Array) -> jax.Array:
    """Per-example max-norm ``‖x_i‖∞`` over the non-batch axes, shape ``[B]``."""
    return per_example_norm(x, norm=math.inf)


def l1_norm(x: jax.Array) -> jax.Array:
    """Per-example ℓ1 norm ``‖x_i‖₁`` over the non-batch axes, shape ``[B]``."""
    return per_example_norm(x, norm=1)


def project_to_ball(delta: jax.Array, *, eps: Any, norm: Any = 2) -> jax.Array:
    """Project every example of ``delta[B, ...]`` onto the centred ε-ball of ``norm``.

    ℓ2: ``eps · δ / max(eps, ‖δ‖₂)`` (Roth et al. 2019, eq. 16; the identity inside the ball,
    radial rescaling outside). ℓ∞: element-wise clipping to ``[-eps, eps]``. ``eps`` is a scalar
    or a per-example ``[B]`` array. A zero ``δ`` (or ``eps = 0``) gives 0, never NaN.
    """
    p = check_norm(norm)
    e = _expand(eps, delta)
    if p == math.inf:
        return jnp.clip(delta, -e, e)
    n = _expand(l2_norm(delta), delta)
    return delta * (e / jnp.maximum(jnp.maximum(e, n), _FLOOR))


def steepest_ascent_direction(g: jax.Array, *, norm: Any = 2) -> jax.Array:
    """Unit-norm direction maximizing ``⟨g, v⟩`` over ``‖v‖ ≤ 1`` for every example.

    ℓ2: ``g / ‖g‖₂`` (Roth et al. 2019, eq. 15); ℓ∞: ``sign(g)`` (FGSM, Goodfellow et al. 2015;
    Farnia et al. 2019, eq. 5). ℓ1: a one-hot vector on the largest ``|g|`` coordinate, signed.
    A zero gradient gives a zero direction (never NaN).
    """
    p = check_norm(norm, allowed=(1, 2, math.inf))
    if p == math.inf:
        return jnp.sign(g)
    if p == 1:
        flat = g.reshape(g.shape[0], -1)
        idx = jnp.argmax(jnp.abs(flat), axis=1)
        onehot = jax.nn.one_hot(idx, flat.shape[1], dtype=g.dtype)
        return (onehot * jnp.sign(flat)).reshape(g.shape)
    return g / jnp.maximum(_expand(l2_norm(g), g), _FLOOR)


def sample_uniform_ball(
    key: jax.Array, shape: tuple[int, ...], *, eps: Any, norm: Any = 2, dtype=jnp.float32
) -> jax.Array:
    """Draw ``shape[0]`` independent points uniformly from the ε-ball of ``norm`` in ``shape[1:]``.

    ℓ2: Gaussian direction ``z/‖z‖`` times radius ``eps · U^(1/d)`` with ``d = prod(shape[1:])``,
    which is exactly uniform in the ball (P[‖δ‖ ≤ rε] = r^d). ℓ∞: i.i.d. ``U(-eps, eps)`` per
    coordinate (the random start of Madry et al. 2018; SOAR's random initialization).
    """
    p = check_norm(norm)
    shape = tuple(shape)
    if p == math.inf:
        u = jax.random.uniform(key, shape, dtype=dtype, minval=-1.0, maxval=1.0)
        return u * _expand(eps, u)
    kz, kr = jax.random.split(key)
    z = jax.random.normal(kz, shape, dtype=dtype)
    d = math.prod(shape[1:])
    u = jax.random.uniform(kr, (shape[0],), dtype=dtype)
    radius = u ** (1.0 / d)
    direction = z / jnp.maximum(_expand(l2_norm(z), z), _FLOOR)
    return direction * _expand(radius, z) * _expand(eps, z)


def clip_to_range(x: jax.Array, clip: tuple[float, float] | None) -> jax.Array:
    """Clip ``x`` element-wise to the data range ``clip = (low, high)``; ``None`` is a no-op."""
    if clip is None:
        return x
    low, high = clip
    return jnp.clip(x, low, high)


def round_into_ball(x: jax.Array, x_adv: jax.Array, *, eps: Any, norm: float) -> jax.Array:
    """Undo float32 rounding of ``x + δ`` that can put ``x_adv`` a fraction of an ulp outside
    the ε-ball (relative excess up to ``ulp(x)/ε``, i.e. 1e-5 for ε = 0.01 on [0, 1] images).

    ℓ∞: coordinates with ``|x_adv − x| > eps`` move one ulp towards ``x``. ℓ2: examples whose
    computed ``‖x_adv − x‖`` exceeds ``eps`` are rescaled to radius ``eps`` and then every
    coordinate moves one ulp towards ``x`` (which removes the ≤ ½-ulp rounding of the rescale).
    Values already inside are untouched; moving towards ``x`` never leaves a ``clip`` range
    that contains both ``x`` and ``x_adv``.
    """
    # The correction is a rounding fix, not part of the attack's math: it is computed on
    # stop_gradient values (``nextafter`` has no derivative) and added as a constant, so
    # derivatives through the attack see the identity here.
    xs, xa = jax.lax.stop_gradient(x), jax.lax.stop_gradient(x_adv)
    d = xa - xs
    if norm == math.inf:
        over = jnp.abs(d) > _expand(eps, d)
        fixed = jnp.where(over, jnp.nextafter(xa, xs), xa)
    else:
        n = l2_norm(d)
        over = n > eps
        shape = (-1,) + (1,) * (x.ndim - 1)
        factor = jnp.asarray(eps, x.dtype) / jnp.maximum(n, 1e-30)
        shrunk = jnp.nextafter(xs + d * factor.reshape(shape), xs)
        fixed = jnp.where(over.reshape(shape), shrunk, xa)
    # fixed − xa is exact (nearby floats), so x_adv + (fixed − xa) == fixed in value.
    return x_adv + jax.lax.stop_gradient(fixed - xa)
