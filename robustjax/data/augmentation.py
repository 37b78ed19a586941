"""Jittable data augmentation for CIFAR/SVHN: pad + random crop + random horizontal flip.

The standard CIFAR recipe (pad 4 pixels with zeros, crop a random window of the original size,
flip left-right with probability 1/2), drawn independently per example from an explicit key. It
is a pure JAX function, so it runs inside the jitted train step on device. The padding value
(``fill``) and the flip are options: SGR shifts CIFAR10 by −0.5 "so that padding adds mid rgb-range
pixels" (footnote 3), i.e. ``fill=0.5`` in [0, 1] pixels. Runs set them with the config keys
``augment`` (on/off) and ``augment_kwargs`` (``pad``, ``fill``, ``flip``; :func:`augmentation`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from robustjax.core.validation import check_positive_int


def pad_crop_flip_offsets(
    key: jax.Array, batch_size: int, *, pad: int = 4, flip: bool = True
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The random draws of :func:`augment_pad_crop_flip`: ``(top, left, flipped)``, each ``[B]``.

    ``top`` and ``left`` are the crop's corner in the padded image, uniform in
    ``{0, ..., 2 * pad}`` (``pad`` means no shift); ``flipped`` is a bool, True with probability
    1/2 when ``flip`` (always False otherwise).
    """
    k_top, k_left, k_flip = jax.random.split(key, 3)
    top = jax.random.randint(k_top, (batch_size,), 0, 2 * pad + 1)
    left = jax.random.randint(k_left, (batch_size,), 0, 2 * pad + 1)
    if flip:
        flipped = jax.random.bernoulli(k_flip, 0.5, (batch_size,))
    else:
        flipped = jnp.zeros((batch_size,), dtype=bool)
    return top, left, flipped


def pad_crop_flip(
    x: jax.Array, top: jax.Array, left: jax.Array, flipped: jax.Array, *, pad: int = 4,
    fill: float = 0.0,
) -> jax.Array:
    """Pad ``x`` ``[B, H, W, C]`` by ``pad`` pixels of value ``fill``, crop ``[H, W]`` at
    ``(top, left)``, then flip the examples where ``flipped`` left-right. Deterministic given
    the offsets."""
    _, height, width, channels = x.shape
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=fill)

    def crop_one(image, t, l):
        return lax.dynamic_slice(image, (t, l, 0), (height, width, channels))

    crops = jax.vmap(crop_one)(padded, top, left)
    return jnp.where(flipped[:, None, None, None], crops[:, :, ::-1, :], crops)


def augment_pad_crop_flip(
    key: jax.Array, x: jax.Array, *, pad: int = 4, flip: bool = True, fill: float = 0.0
) -> jax.Array:
    """Randomly shift (pad ``pad`` with ``fill`` + random crop) and flip each image of ``x``
    [B, H, W, C].

    The CIFAR augmentation of He et al. 2016 (ResNet), used for the CIFAR/SVHN experiments of
    the papers robustjax implements (e.g. Farnia et al. 2019, Ma et al. 2020). Per example, the
    crop offset is uniform in ``{-pad, ..., pad}`` on each axis and the flip has probability 1/2;
    the draws are those of :func:`pad_crop_flip_offsets` with the same key. ``pad`` and ``flip``
    are static (use ``functools.partial`` or ``static_argnames`` under ``jax.jit``).
    """
    pad = check_positive_int(pad, name="pad", minimum=0)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images [B, H, W, C]; got shape {x.shape}")
    top, left, flipped = pad_crop_flip_offsets(key, x.shape[0], pad=pad, flip=bool(flip))
    return pad_crop_flip(x, top, left, flipped, pad=pad, fill=fill)


AUGMENT_KEYS = ("pad", "flip", "fill")


def augmentation(enabled: bool, kwargs: dict | None = None):
    """The train-step augmentation of a run: ``None`` when off, else
    :func:`augment_pad_crop_flip` with ``kwargs`` (``pad``, ``flip``, ``fill``) bound.
    ``ValueError`` naming ``augment_kwargs`` for an unknown key or a bad value."""
    kwargs = kwargs.to_dict() if hasattr(kwargs, "to_dict") else dict(kwargs or {})
    unknown = sorted(set(kwargs) - set(AUGMENT_KEYS))
    if unknown:
        raise ValueError(f"augment_kwargs has unknown key(s) {unknown}; allowed: {list(AUGMENT_KEYS)}")
    check_positive_int(kwargs.get("pad", 4), name="augment_kwargs.pad", minimum=0)
    fill = kwargs.get("fill", 0.0)
    if isinstance(fill, bool) or not isinstance(fill, (int, float)):
        raise ValueError(f"augment_kwargs.fill must be a number (a pixel value); got {fill!r}")
    if not isinstance(kwargs.get("flip", True), bool):
        raise ValueError(f"augment_kwargs.flip must be True or False; got {kwargs['flip']!r}")
    if not enabled:
        return None
    return functools.partial(augment_pad_crop_flip, **kwargs)
