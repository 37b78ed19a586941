"""Building blocks shared by the model zoo: input standardization, pooling, LRN.

Every zoo model starts with :class:`Standardize`, so models take raw images in [0, 1] and
every attack radius ``eps`` is in pixel units of [0, 1] data, whatever normalization the
paper used. :func:`max_pool` is a drop-in for ``flax.linen.max_pool`` whose gradient is
cheaper on XLA:CPU for the common non-overlapping case (see its docstring).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax import lax

from robustjax.core.validation import check_choice, check_positive_int

__all__ = [
    "Standardize", "check_mean_std", "max_pool", "local_response_normalization",
    "global_max_pool",
]


def check_mean_std(mean, std) -> tuple[np.ndarray, np.ndarray]:
    """Raise ``ValueError`` unless ``mean`` is finite and ``std`` finite and > 0 (scalars or
    1-D per-channel sequences); return both as float64 NumPy arrays."""
    std_arr = np.asarray(std, dtype=np.float64)
    if std_arr.size == 0 or not np.all(np.isfinite(std_arr)) or np.any(std_arr <= 0):
        raise ValueError(f"std must be finite and > 0 (per channel); got {std!r}")
    mean_arr = np.asarray(mean, dtype=np.float64)
    if mean_arr.size == 0 or not np.all(np.isfinite(mean_arr)):
        raise ValueError(f"mean must be finite (per channel); got {mean!r}")
    if mean_arr.ndim > 1 or std_arr.ndim > 1:
        raise ValueError("mean and std must be scalars or 1-D per-channel sequences")
    return mean_arr, std_arr


def as_constant(arr: np.ndarray) -> float | tuple[float, ...]:
    """A float or tuple of floats: a hashable module attribute (lists are not hashable)."""
    return float(arr) if arr.ndim == 0 else tuple(float(v) for v in arr)


class Standardize(nn.Module):
    """``(x - mean) / std`` with per-channel constants fixed at construction.

    ``mean`` and ``std`` are scalars or sequences with one entry per channel (the last axis
    of ``x``, NHWC); they are constants, not parameters, so they do not appear in the
    ``params`` collection and no optimizer or spectral normalization touches them. With the
    defaults (0, 1) the layer is the identity. Used as the first layer of every zoo model so
    that inputs stay in [0, 1] pixel units (SGR, Roth et al. 2018, §4.1: "scale each image to
    have zero mean and unit variance when it is passed to the classifier").
    """

    mean: float | Sequence[float] = 0.0
    std: float | Sequence[float] = 1.0

    def __post_init__(self):
        mean, std = check_mean_std(self.mean, self.std)
        # Store as hashable Python constants (lists would make the module unhashable).
        object.__setattr__(self, "mean", as_constant(mean))
        object.__setattr__(self, "std", as_constant(std))
        super().__post_init__()

    @nn.compact
    def __call__(self, x):
        mean = jnp.asarray(self.mean, dtype=x.dtype)
        std = jnp.asarray(self.std, dtype=x.dtype)
        for name, c in (("mean", mean), ("std", std)):
            if c.ndim == 1 and c.shape[0] not in (1, x.shape[-1]):
                raise ValueError(
                    f"{name} has {c.shape[0]} entries but the input has {x.shape[-1]} "
                    f"channels (last axis of shape {x.shape})"
                )
        return (x - mean) / std


def _same_pads(size: int, window: int, stride: int) -> tuple[int, int]:
    # TensorFlow/XLA 'SAME' convention (the one lax.padtype_to_pads and nn.max_pool use).
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


POOL_TIES = ("split", "first")


def max_pool(x, window: int | Sequence[int], strides: int | Sequence[int] | None = None,
             padding: str = "VALID", *, ties: str = "split"):
    """Max pooling over the spatial axes of ``x[B, H, W, C]``; same values as ``nn.max_pool``.

    When ``window == strides`` (non-overlapping pooling, e.g. the 2x2/2 pools of the SGR and
    Roth et al. CNNs) the pool is computed as crop-or-pad, reshape to
    ``[B, H/k, k, W/k, k, C]`` and ``max`` over the two window axes. Its gradient is a plain
    broadcast-compare, which XLA:CPU runs much faster than the select-and-scatter that the
    gradient of ``lax.reduce_window`` lowers to (one input gradient of the SGR MNIST CNN at
    batch 128: roughly 218 ms -> 165 ms, measured by another engineer). ``VALID`` drops the
    remainder rows/columns (as ``reduce_window`` does); ``SAME`` pads with ``-inf`` using the
    XLA 'SAME' split, so values equal ``nn.max_pool`` exactly. Overlapping windows
    (``window != strides``, e.g. the 3x3/2 pools of the small AlexNet) fall back to
    ``flax.linen.max_pool``.

    Ties (``ties``): with several equal maxima in one window (MNIST's flat background), any
    convex split of the cotangent among them is a valid subgradient. ``"split"`` (default) is
    ``jnp.max``'s rule: equal shares. ``"first"`` gives it all to the first maximum in row-major
    window order, the rule of ``flax.linen.max_pool`` (XLA select-and-scatter with ``>=``) and
    PyTorch's ``max_pool2d``; use it for exact cross-library comparisons. On the README's mnist-5k
    ERM model the two rules' input gradients differ in sign on 16 % of pixels, and FGSM (ε = 0.1)
    accuracy is 87.2 % (split) vs 87.5 % (first). Values are identical either way; overlapping
    windows always use Flax's rule.
    """
    check_choice(ties, name="ties", allowed=POOL_TIES)
    window = _pair(window, "window")
    strides = window if strides is None else _pair(strides, "strides")
    padding = check_choice(padding.upper() if isinstance(padding, str) else padding,
                           name="padding", allowed=("VALID", "SAME"))
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images [B, H, W, C]; got shape {x.shape}")
    if window != strides:
        return nn.max_pool(x, window, strides=strides, padding=padding)
    (kh, kw) = window
    _, h, w, _ = x.shape
    if padding == "VALID":
        ho, wo = h // kh, w // kw
        if ho == 0 or wo == 0:
            raise ValueError(f"pool window {window} is larger than the input {x.shape[1:3]}")
        x = x[:, : ho * kh, : wo * kw, :]
    else:
        ph, pw = _same_pads(h, kh, kh), _same_pads(w, kw, kw)
        if any(ph) or any(pw):
            x = jnp.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=-jnp.inf)
        ho, wo = x.shape[1] // kh, x.shape[2] // kw
    b, c = x.shape[0], x.shape[3]
    windows = x.reshape(b, ho, kh, wo, kw, c)
    if ties == "split":
        return jnp.max(windows, axis=(2, 4))
    # "first": read the value at the first argmax; take_along_axis sends the whole cotangent there
    flat = jnp.transpose(windows, (0, 1, 3, 5, 2, 4)).reshape(b, ho, wo, c, kh * kw)
    first = lax.stop_gradient(jnp.argmax(flat, axis=-1))[..., None]
    return jnp.take_along_axis(flat, first, axis=-1)[..., 0]


def global_max_pool(x, *, ties: str = "split"):
    """Max over all spatial positions: ``[B, H, W, C] -> [B, C]`` (``ties`` as in
    :func:`max_pool`)."""
    check_choice(ties, name="ties", allowed=POOL_TIES)
    if ties == "split":
        return jnp.max(x, axis=(1, 2))
    b, h, w, c = x.shape
    flat = jnp.transpose(x, (0, 3, 1, 2)).reshape(b, c, h * w)
    first = lax.stop_gradient(jnp.argmax(flat, axis=-1))[..., None]
    return jnp.take_along_axis(flat, first, axis=-1)[..., 0]


def local_response_normalization(x, *, depth_radius: int = 4, bias: float = 1.0,
                                 alpha: float = 0.001 / 9.0, beta: float = 0.75):
    """Local response normalization across channels (Krizhevsky et al. 2012).

    ``y[..., c] = x[..., c] / (bias + alpha * sum_{|c'-c| <= depth_radius} x[..., c']^2)^beta``
    with the TensorFlow convention (``alpha`` multiplies the plain sum, not the mean); the
    defaults are those of the small AlexNet of Zhang et al. (2017) / the TensorFlow CIFAR-10
    tutorial.
    """
    depth_radius = check_positive_int(depth_radius, name="depth_radius", minimum=0)
    sq = jnp.square(x)
    window = 2 * depth_radius + 1
    summed = lax.reduce_window(sq, 0.0, lax.add, (1,) * (x.ndim - 1) + (window,),
                               (1,) * x.ndim,
                               [(0, 0)] * (x.ndim - 1) + [(depth_radius, depth_radius)])
    return x / jnp.power(bias + alpha * summed, beta)


def _pair(v, name):
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (int(v), int(v))
    try:
        a, b = v
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints; got {v!r}") from None
    return (check_positive_int(a, name=name), check_positive_int(b, name=name))
