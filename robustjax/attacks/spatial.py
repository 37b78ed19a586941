"""Spatial attacks: rotations by ±θ degrees and translations by ±t (fraction of the image size).

SOAR (Ma et al.), App. D, Table 6: random rotations and translations at three strengths, weak
(±10°, ±5%), medium (±30°, ±10%), strong (±50°, ±30%) (``SPATIAL_STRENGTHS``). Images are NHWC.
Resampling is bilinear (``jax.scipy.ndimage.map_coordinates``, order 1) with zero fill outside
the image, about the image centre ``((H−1)/2, (W−1)/2)``.

``spatial`` offers the worst case over a grid of transforms (Engstrom et al.'s grid attack) or
over ``n`` random transforms per example (``n=1``: SOAR's random transform).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.ndimage import map_coordinates

from robustjax.attacks import _common as C
from robustjax.core import losses as L
from robustjax.core import norms as N
from robustjax.core import validation as V

SPATIAL_STRENGTHS = {
    "weak": {"max_angle": 10.0, "max_shift": 0.05},
    "medium": {"max_angle": 30.0, "max_shift": 0.10},
    "strong": {"max_angle": 50.0, "max_shift": 0.30},
}


def _transform_one(img, angle, shift):
    """``out(p) = img(c + M(θ)(p − c − t))`` for one ``[H, W, C]`` image; ``θ`` degrees
    (counter-clockwise as displayed), ``t = shift·(H, W)`` pixels (down, right)."""
    h, w = img.shape[0], img.shape[1]
    theta = jnp.deg2rad(angle)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    ci, cj = (h - 1) / 2.0, (w - 1) / 2.0
    ii, jj = jnp.meshgrid(jnp.arange(h, dtype=img.dtype), jnp.arange(w, dtype=img.dtype),
                          indexing="ij")
    u = ii - ci - shift[0] * h
    v = jj - cj - shift[1] * w
    src_i = ci + cos * u + sin * v
    src_j = cj - sin * u + cos * v
    resample = lambda ch: map_coordinates(ch, [src_i, src_j], order=1, mode="constant", cval=0.0)  # noqa: E731
    return jax.vmap(resample, in_axes=2, out_axes=2)(img)


def rotate_translate(x: jax.Array, *, angle, shift) -> jax.Array:
    """Rotate every image of ``x[B, H, W, C]`` by ``angle`` degrees (scalar or ``[B]``) and
    translate it by ``shift`` (``[2]`` or ``[B, 2]``: (down, right) as fractions of (H, W));
    bilinear resampling, zero fill."""
    x = V.check_inputs(x)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of NHWC images [B, H, W, C]; got shape {x.shape}")
    b = x.shape[0]
    angle = jnp.broadcast_to(jnp.asarray(angle, x.dtype), (b,))
    shift = jnp.broadcast_to(jnp.asarray(shift, x.dtype), (b, 2))
    return jax.vmap(_transform_one)(x, angle, shift)


def spatial_grid(max_angle: float, max_shift: float, num_angles: int, num_shifts: int) -> np.ndarray:
    """All ``(angle, shift_down, shift_right)`` of the grid, shape ``[num_angles·num_shifts², 3]``."""
    a = np.linspace(-max_angle, max_angle, num_angles)
    s = np.linspace(-max_shift, max_shift, num_shifts)
    g = np.stack(np.meshgrid(a, s, s, indexing="ij"), axis=-1).reshape(-1, 3)
    return g.astype(np.float32)


def _spatial_body(x, y, key, *, logits_fn, max_angle, max_shift, mode, num_angles, num_shifts,
                  n, loss, clip):
    y = C.labels_or_predictions(logits_fn, x, y)
    b = x.shape[0]
    bshape = (-1,) + (1,) * (x.ndim - 1)
    if mode == "grid":
        params = jnp.broadcast_to(
            jnp.asarray(spatial_grid(max_angle, max_shift, num_angles, num_shifts))[:, None],
            (num_angles * num_shifts**2, b, 3))
    else:
        lim = jnp.asarray([max_angle, max_shift, max_shift], x.dtype)
        params = jax.random.uniform(key, (n, b, 3), x.dtype, -1.0, 1.0) * lim

    def candidate(p):
        xt = jax.vmap(_transform_one)(x, p[:, 0], p[:, 1:])
        return xt, L.adversarial_objective(logits_fn(xt), y, loss=loss)

    x0, s0 = candidate(params[0])

    def step(i, carry):
        best_x, best_s = carry
        xt, s = candidate(params[i])
        better = s > best_s
        return jnp.where(better.reshape(bshape), xt, best_x), jnp.where(better, s, best_s)

    best_x, _ = lax.fori_loop(1, params.shape[0], step, (x0, s0))
    # bilinear weights sum to ≤ 1, so the image stays in range up to float rounding
    return N.clip_to_range(best_x, clip)


def spatial(
    logits_fn: Callable, x: jax.Array, y: jax.Array | None, *, max_angle: float,
    max_shift: float, mode: str = "grid", num_angles: int = 5, num_shifts: int = 3, n: int = 1,
    key: jax.Array | None = None, loss: str = "cw", clip: tuple[float, float] | None = (0.0, 1.0),
) -> jax.Array:
    """Worst-case rotation (±``max_angle`` degrees) and translation (±``max_shift`` of the image
    size) per example (SOAR App. D; strengths in ``SPATIAL_STRENGTHS``).

    ``mode="grid"``: the worst of the ``num_angles × num_shifts × num_shifts`` grid;
    ``mode="random"``: the worst of ``n`` uniformly random transforms per example (needs ``key``;
    ``n=1`` is one random transform). "Worst" maximizes ``loss`` (default ``"cw"``, positive iff
    misclassified). ``y=None`` uses the predicted labels. ``clip``: the data range of the output
    (default ``(0, 1)``; bilinear resampling with zero fill stays inside it up to rounding).
    """
    x, y, clip, _ = C.validate_common(logits_fn, x, y, loss=loss, clip=clip)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of NHWC images [B, H, W, C]; got shape {x.shape}")
    if loss == "sos":
        raise ValueError("loss must be 'ce' or 'cw' for spatial; got 'sos'")
    V.check_nonnegative(max_angle, name="max_angle")
    V.check_nonnegative(max_shift, name="max_shift")
    V.check_choice(mode, name="mode", allowed=("grid", "random"))
    if mode == "grid":
        num_angles = V.check_positive_int(num_angles, name="num_angles")
        num_shifts = V.check_positive_int(num_shifts, name="num_shifts")
        key = None
    else:
        n = V.check_positive_int(n, name="n")
        if key is None:
            raise ValueError("key must be a jax.random key when mode='random'; got None")
    static = dict(
        logits_fn=logits_fn, max_angle=float(max_angle), max_shift=float(max_shift), mode=mode,
        num_angles=num_angles, num_shifts=num_shifts, n=n, loss=loss, clip=clip,
    )
    return C.run_jitted(_spatial_body, (x, y, key), static)
