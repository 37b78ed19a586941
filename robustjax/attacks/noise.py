"""Random-noise attacks: uniform (SGR's RAND), Gaussian (SOAR App. E), long-range correlated
Gaussian (SGR §4.3), and ``worst_of_n`` that keeps, per example, the most damaging sample.

LRC noise (Roth et al. 2018, SGR §4.3). The covariance between pixel ``i`` channel ``a`` and pixel
``j`` channel ``b`` is ``c_ab · exp(−‖i − j‖₂/ζ)`` with ``c_aa = 1`` (intra-channel) and
``c_ab = 0.5`` (inter-channel), i.e. ``Σ = K ⊗ C`` for the HW×HW spatial kernel ``K`` and the
channel matrix ``C``. Sampling method (chosen over a dense (HWC)×(HWC) Cholesky and over FFT
circulant embedding, whose positivity is not guaranteed for this kernel in 2-D without checks):
the Kronecker structure gives an exact factor ``Σ = (A ⊗ L)(A ⊗ L)ᵀ`` with ``A = V√Λ`` from the
eigendecomposition of ``K`` (HW×HW, 1024×1024 for CIFAR, computed once per (shape, ζ) in float64
and cached) and ``L`` the Cholesky factor of ``C``. A sample is ``A · Z · Lᵀ`` for
``Z ~ N(0, I)`` of shape [HW, C]: one matmul per batch, no factorization per call. Pixel
displacements are exact Euclidean distances (not rounded), so ``K`` is positive definite (the
exponential kernel is a valid covariance in any dimension).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from robustjax.attacks import _common as C
from robustjax.core import losses as L
from robustjax.core import norms as N
from robustjax.core import validation as V

INTER_CHANNEL = 0.5


def uniform_noise(
    x: jax.Array, *, key: jax.Array, eps: float, norm: Any = math.inf,
    clip: tuple[float, float] | None = (0.0, 1.0),
) -> jax.Array:
    """``clip(x + δ)`` with ``δ`` uniform in the ε-ball of ``norm`` per example (SGR's RAND
    baseline, Table 3; ℓ2 radius ``ε·U^(1/d)``, exactly uniform)."""
    x = V.check_inputs(x)
    C.check_eps(eps)
    p = C.norm_value(norm)
    clip = V.check_clip(clip)
    delta = N.sample_uniform_ball(key, x.shape, eps=eps, norm=p, dtype=x.dtype)
    return N.round_into_ball(x, N.clip_to_range(x + delta, clip), eps=eps, norm=p)


def gaussian_noise(
    x: jax.Array, *, key: jax.Array, sigma: float, clip: tuple[float, float] | None = (0.0, 1.0)
) -> jax.Array:
    """``clip(x + σ·z)``, ``z ~ N(0, I)`` (SOAR App. E, Table 7: spherical Gaussian noise)."""
    x = V.check_inputs(x)
    V.check_nonnegative(sigma, name="sigma")
    clip = V.check_clip(clip)
    return N.clip_to_range(x + sigma * jax.random.normal(key, x.shape, x.dtype), clip)


def lrc_covariance(height: int, width: int, channels: int, *, decay_length: float) -> np.ndarray:
    """Dense LRC covariance (SGR §4.3) of an ``[H, W, C]`` image flattened in NHWC order,
    shape ``[HWC, HWC]``: ``exp(−r/ζ)`` within a channel, ``0.5·exp(−r/ζ)`` across channels.
    For tests and plots on small images; sampling never builds it."""
    k = _spatial_kernel(height, width, float(decay_length))
    c = _channel_matrix(channels)
    return np.kron(k, c)


def _spatial_kernel(height: int, width: int, decay_length: float) -> np.ndarray:
    ii, jj = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    coords = np.stack([ii.ravel(), jj.ravel()], axis=1).astype(np.float64)
    r = np.sqrt(np.sum((coords[:, None, :] - coords[None, :, :]) ** 2, axis=-1))
    return np.exp(-r / decay_length)


def _channel_matrix(channels: int) -> np.ndarray:
    return INTER_CHANNEL * np.ones((channels, channels)) + (1 - INTER_CHANNEL) * np.eye(channels)


@functools.lru_cache(maxsize=8)
def _lrc_factors(height: int, width: int, channels: int, decay_length: float):
    k = _spatial_kernel(height, width, decay_length)
    lam, vec = np.linalg.eigh(k)
    a = vec * np.sqrt(np.clip(lam, 0.0, None))[None, :]  # A Aᵀ = K
    chol = np.linalg.cholesky(_channel_matrix(channels))  # L Lᵀ = C
    return a.astype(np.float32), chol.astype(np.float32)


def lrc_sample(key: jax.Array, shape: tuple[int, ...], *, decay_length: float,
               dtype=jnp.float32) -> jax.Array:
    """Draw ``shape[0]`` LRC Gaussian fields of shape ``[H, W, C]`` (unit variance per pixel,
    covariance :func:`lrc_covariance`), as ``A·Z·Lᵀ`` with precomputed factors (module doc)."""
    if len(shape) != 4:
        raise ValueError(f"shape must be [B, H, W, C]; got {shape}")
    V.check_positive(decay_length, name="decay_length")
    b, h, w, c = (int(s) for s in shape)
    a, chol = _lrc_factors(h, w, c, float(decay_length))
    z = jax.random.normal(key, (b, h * w, c), dtype)
    field = jnp.einsum("pq,bqc,dc->bpd", jnp.asarray(a, dtype), z, jnp.asarray(chol, dtype))
    return field.reshape(b, h, w, c)


def lrc_noise(
    x: jax.Array, *, key: jax.Array, eps: float, decay_length: float,
    clip: tuple[float, float] | None = (0.0, 1.0),
) -> jax.Array:
    """``clip(x + ε·s)`` with ``s`` an LRC Gaussian field (SGR §4.3: decay length ζ, strength ε).
    ``x`` is NHWC."""
    x = V.check_inputs(x)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of NHWC images [B, H, W, C]; got shape {x.shape}")
    C.check_eps(eps)
    clip = V.check_clip(clip)
    s = lrc_sample(key, x.shape, decay_length=decay_length, dtype=x.dtype)
    return N.clip_to_range(x + eps * s, clip)


def _worst_body(x, y, key, *, logits_fn, sampler, n, loss):
    y = C.labels_or_predictions(logits_fn, x, y)
    keys = jax.random.split(key, n)
    bshape = (-1,) + (1,) * (x.ndim - 1)

    def score(xn):
        return L.adversarial_objective(logits_fn(xn), y, loss=loss)

    x0 = sampler(x, key=keys[0])
    s0 = score(x0)

    def step(i, carry):
        best_x, best_s = carry
        xn = sampler(x, key=keys[i])
        s = score(xn)
        better = s > best_s
        return jnp.where(better.reshape(bshape), xn, best_x), jnp.where(better, s, best_s)

    best_x, _ = lax.fori_loop(1, n, step, (x0, s0))
    return best_x


def worst_of_n(
    logits_fn: Callable, x: jax.Array, y: jax.Array | None, *, sampler: Callable, n: int = 100,
    key: jax.Array, loss: str = "cw",
) -> jax.Array:
    """Per example, the worst of ``n`` random perturbations (SGR §4.3's worst-of-100).

    ``sampler(x, key=k)`` returns one perturbed batch, e.g.
    ``functools.partial(lrc_noise, eps=0.3, decay_length=8.0)``. "Worst" maximizes the
    per-example attack objective ``loss`` (default ``"cw"``: ``max_{i≠y} z_i − z_y``, positive iff
    misclassified, so the kept sample is misclassified whenever any of the n is). ``y=None`` uses
    the predicted labels. The n samples run in a ``lax.fori_loop`` (one program).
    """
    x, y, _, _ = C.validate_common(logits_fn, x, y, loss=loss)
    if loss == "sos":
        raise ValueError("loss must be 'ce' or 'cw' for worst_of_n; got 'sos'")
    n = V.check_positive_int(n, name="n")
    if key is None:
        raise ValueError("key must be a jax.random key; got None")
    if not callable(sampler):
        raise ValueError(f"sampler must be callable sampler(x, key=k); got {sampler!r}")
    static = dict(logits_fn=logits_fn, sampler=sampler, n=n, loss=loss)
    return C.run_jitted(_worst_body, (x, y, key), static)
