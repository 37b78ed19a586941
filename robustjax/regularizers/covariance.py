"""Covariance state of Structured Gradient Regularization (Roth, Nowozin, Lucchi, Hofmann 2018).

SGR (``sgr.py``) penalizes ``½ gᵀ Σ g`` with ``Σ`` the matrix of *raw second moments* of
adversarial perturbations ``ξ`` (§2.1, eq. 1; footnote 4), aggregated as a running
exponentially weighted average over batches (§3.3, eq. 14, Algorithm 1):

    Σ̂_t ← (1 − β) Σ̂_{t−1} + β · (1/m) Σ_i ξ_i ξ_iᵀ,      β = 0.1 in all the paper's experiments,

and rescaled by ``σ_t = c / avg(diag Σ̂_t)`` where ``c`` is the average diagonal entry of the data
set's variance-covariance matrix (Algorithm 1, "Compute scaling factor"; the PDF prints
``Avg[Σ̂_t]_ij`` but the text of §3.3 says the *average diagonal entry* is matched, which is what
is implemented). After the rescaling, the mean diagonal of ``σ_t Σ̂_t`` equals the data's mean
variance ``c``, so the SGR strength ``λ`` is a noise-to-signal ratio.

Three representations behind one interface (the kind is static, i.e. part of the pytree
structure, so every function is jit-friendly):

* ``"full"`` — the ``D × D`` matrix (eq. 15), for low-dimensional data.
* ``"function"`` — for images ``[H, W, C]``: the covariance as a function of the rounded pixel
  displacement ``round(‖i − j‖₂)`` (eq. 16, Fig. 2), one function per ordered channel pair: the
  diagonal ``table[c, c]`` are the intra-channel functions, the off-diagonal ``table[c, c']`` the
  inter-channel ones. Estimation averages ``ξ_{p,c} ξ_{q,c'}`` over all pixel pairs at each rounded
  distance (autocorrelation by FFT); applying it to a gradient image is a 2-D convolution with
  the kernel ``K[Δ, c', c] = table[c, c', round‖Δ‖]`` — never a dense ``D × D`` matrix.
  ``max_distance`` truncates the function (0 beyond), which bounds the kernel size.
  A function of rounded distance estimated this way is in general **not** a valid covariance:
  the matrix it defines has negative eigenvalues (measured on an ERM-trained SGR MNIST CNN with
  FGSM perturbations at ε = 32/255: smallest eigenvalue −25·c, largest +185·c), so ``½ gᵀΣg``
  would *reward* gradients along those directions. By default (``psd=True``) the function is
  applied as its nearest positive semi-definite stationary kernel: the kernel is laid out on a
  torus of at least ``(H + R) × (W + R)`` pixels (``R`` the kernel half-width, so every
  displacement inside the image keeps its own entry), its spectrum — one real symmetric
  ``C × C`` matrix per spatial frequency — is clipped to non-negative eigenvalues, and ``Σ`` is
  the restriction of that circulant operator to the image's pixels (a principal submatrix of a
  PSD operator, hence PSD). ``psd=False`` applies the raw function as the paper describes.
* ``"diagonal"`` — per-feature second moments only.

Functional state: ``state = covariance_init(kind, x_shape, ...)``,
``state = covariance_update(state, xi, beta=0.1)``, ``covariance_apply(state, g)`` → ``Σ g`` per
example. The state also keeps the running mean ``μ`` of ``ξ`` for the uncentered SGR term
(eq. 12) and a batch counter: the first update *sets* the estimate to the first batch's moments
(the paper does not say how ``Σ̂_0`` is initialized; starting from zero would only change the
scale, which the rescaling removes anyway).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.core import validation as V
from robustjax.regularizers.covariance_function import (
    apply_function,
    displacement_bins,
    full_range,
    psd_spectrum,
    torus_shape,
)
from robustjax.regularizers.perturbations import SOURCES, perturbations  # noqa: F401  (re-exported)

KINDS = ("full", "function", "diagonal")
_TINY = 1e-12


# ---------------------------------------------------------------------------------------------
# The three state types (registered dataclass pytrees; geometry and scaling constant are static)
# ---------------------------------------------------------------------------------------------


def _register(cls, data_fields):
    meta = [f.name for f in dataclasses.fields(cls) if f.name not in data_fields]
    return jax.tree_util.register_dataclass(cls, data_fields=list(data_fields), meta_fields=meta)


@dataclasses.dataclass(frozen=True)
class FullCovariance:
    """Full matrix of raw second moments ``second_moment[D, D]`` (SGR eq. 15)."""

    second_moment: jax.Array
    mean: jax.Array
    count: jax.Array
    x_shape: tuple
    data_variance: float | None = None

    kind = "full"


@dataclasses.dataclass(frozen=True)
class DiagonalCovariance:
    """Per-feature raw second moments ``second_moment[*x_shape]``."""

    second_moment: jax.Array
    mean: jax.Array
    count: jax.Array
    x_shape: tuple
    data_variance: float | None = None

    kind = "diagonal"


@dataclasses.dataclass(frozen=True)
class CovarianceFunction:
    """Covariance of images ``[H, W, C]`` as a function of rounded pixel distance (SGR eq. 16).

    ``table[c, c', r]`` is the mean raw second moment ``E[ξ_{p,c} ξ_{q,c'}]`` over pixel pairs
    with ``round(‖p − q‖₂) = r``, ``r = 0 … max_distance``; ``table[c, c]`` are the
    intra-channel functions, ``table[c, c']`` (``c ≠ c'``) the inter-channel ones.
    """

    table: jax.Array
    mean: jax.Array
    count: jax.Array
    x_shape: tuple
    max_distance: int
    data_variance: float | None = None
    psd: bool = True

    kind = "function"


_register(FullCovariance, ("second_moment", "mean", "count"))
_register(DiagonalCovariance, ("second_moment", "mean", "count"))
_register(CovarianceFunction, ("table", "mean", "count"))

CovarianceState = FullCovariance | DiagonalCovariance | CovarianceFunction
_STATE_TYPES = (FullCovariance, DiagonalCovariance, CovarianceFunction)


# ---------------------------------------------------------------------------------------------
# init / update / apply
# ---------------------------------------------------------------------------------------------


def mean_feature_variance(x: jax.Array) -> jax.Array:
    """Average diagonal entry of the data set's variance-covariance matrix (SGR Algorithm 1, ``c``).

    ``x[N, ...]`` is a sample of the (preprocessed) training data; the result is the mean over
    features of each feature's variance, to pass as ``data_variance`` to :func:`covariance_init`.
    """
    x = V.check_inputs(x, name="x")
    flat = x.reshape(x.shape[0], -1)
    return jnp.mean(jnp.var(flat, axis=0))


def covariance_init(
    kind: str,
    x_shape: tuple[int, ...],
    *,
    data_variance: float | None = None,
    max_distance: int | None = None,
    psd: bool = True,
    dtype=jnp.float32,
) -> CovarianceState:
    """Empty SGR covariance state of ``kind`` for examples of shape ``x_shape`` (no batch axis).

    Args:
      kind: ``"full"`` (``D × D`` matrix), ``"function"`` (covariance function of rounded pixel
        displacement, images ``[H, W, C]``) or ``"diagonal"``.
      x_shape: shape of one example, e.g. ``(32, 32, 3)``.
      data_variance: ``c``, the average diagonal entry of the data covariance
        (:func:`mean_feature_variance`); when given, the applied covariance is rescaled so its
        mean diagonal equals ``c`` (Algorithm 1). ``None``: no rescaling (raw second moments).
      max_distance: ``"function"`` only: largest rounded distance kept (default: the image
        diagonal, i.e. no truncation).
      psd: ``"function"`` only: apply the nearest positive semi-definite stationary kernel
        (spectral clipping, see the module docstring; default) instead of the raw function,
        which in general has negative eigenvalues.
    """
    if not isinstance(psd, (bool, np.bool_)):
        raise ValueError(f"psd must be True or False; got {psd!r}")
    V.check_choice(kind, name="kind", allowed=KINDS)
    try:
        x_shape = tuple(int(s) for s in x_shape)
    except TypeError:
        raise ValueError(f"x_shape must be a tuple of ints (one example's shape); got {x_shape!r}") from None
    if not x_shape or any(s < 1 for s in x_shape):
        raise ValueError(f"x_shape must be a non-empty tuple of positive ints; got {x_shape!r}")
    if data_variance is not None:
        V.check_positive(data_variance, name="data_variance")
        data_variance = float(data_variance)
    d = math.prod(x_shape)
    mean = jnp.zeros(x_shape, dtype)
    count = jnp.zeros((), jnp.int32)
    if kind == "full":
        return FullCovariance(jnp.zeros((d, d), dtype), mean, count, x_shape, data_variance)
    if kind == "diagonal":
        return DiagonalCovariance(jnp.zeros(x_shape, dtype), mean, count, x_shape, data_variance)
    if len(x_shape) != 3:
        raise ValueError(
            f"x_shape must be an image shape (H, W, C) for kind='function'; got {x_shape!r}"
        )
    h, w, c = x_shape
    full = full_range(h, w)
    if max_distance is None:
        max_distance = full
    else:
        max_distance = V.check_positive_int(max_distance, name="max_distance", minimum=0)
        max_distance = min(max_distance, full)
    table = jnp.zeros((c, c, max_distance + 1), dtype)
    return CovarianceFunction(table, mean, count, x_shape, max_distance, data_variance, bool(psd))


def _check_state(state: Any, name: str = "state"):
    if not isinstance(state, _STATE_TYPES):
        raise ValueError(
            f"{name} must be a covariance state from covariance_init (kind one of {list(KINDS)}); "
            f"got {type(state).__name__}"
        )


def _check_batch(arr: Any, state, name: str) -> jax.Array:
    arr = jnp.asarray(arr) if not hasattr(arr, "shape") else arr
    if arr.ndim < 1 or tuple(arr.shape[1:]) != tuple(state.x_shape):
        raise ValueError(
            f"{name} must have shape [B, *x_shape] = [B, {', '.join(map(str, state.x_shape))}] "
            f"to match the covariance state; got {tuple(arr.shape)}"
        )
    return arr


def _function_moment(xi: jax.Array, max_distance: int) -> jax.Array:
    """Batch covariance function ``[C, C, R+1]``: mean of ``ξ_{p,c} ξ_{q,c'}`` per rounded distance.

    The sum over pixel pairs at each displacement is the cross-correlation of the images,
    computed with a zero-padded FFT; pairs are then pooled by rounded distance.
    """
    m, h, w, c = xi.shape
    dist, count = displacement_bins(h, w)
    ph, pw = 2 * h - 1, 2 * w - 1
    spec = jnp.fft.rfft2(xi, s=(ph, pw), axes=(1, 2))  # [m, ph, pw', C]
    cross = jnp.einsum("nijc,nijd->ijcd", jnp.conj(spec), spec)  # Σ_n conj(X_c) X_d
    corr = jnp.fft.irfft2(cross, s=(ph, pw), axes=(0, 1))  # [ph, pw, C, C]: Σ_p ξ_c[p] ξ_d[p+Δ]
    keep = dist <= max_distance
    onehot = np.zeros((ph * pw, max_distance + 1), np.float64)
    onehot[np.flatnonzero(keep), dist[keep]] = 1.0
    pairs = onehot.T @ count.reshape(-1).astype(np.float64)  # pixel pairs per bin
    summed = jnp.einsum("kcd,kr->cdr", corr.reshape(ph * pw, c, c), jnp.asarray(onehot, xi.dtype))
    table = summed / jnp.asarray(np.maximum(pairs, 1.0) * m, xi.dtype)
    # Exactly symmetric in (c, c') (it is up to rounding, since bins are symmetric in ±Δ).
    return (0.5 * (table + jnp.swapaxes(table, 0, 1))).astype(xi.dtype)


def covariance_update(state: CovarianceState, xi: jax.Array, *, beta: float = 0.1) -> CovarianceState:
    """One EMA step ``Σ̂ ← (1 − β) Σ̂ + β (1/m) Σ_i ξ_i ξ_iᵀ`` (SGR eq. 14–16, Algorithm 1).

    ``xi[m, *x_shape]`` are the batch's perturbations (:func:`perturbations`). Raw second
    moments, not centered (footnote 4). The running mean ``μ`` of ``ξ`` (eq. 12) is updated
    the same way. The first update after :func:`covariance_init` sets the estimates to the
    batch's moments. ``beta`` in (0, 1]; the paper uses 0.1. Pure: returns a new state.
    """
    _check_state(state)
    V.check_positive(beta, name="beta")
    if not isinstance(beta, jax.core.Tracer) and float(beta) > 1.0:
        raise ValueError(f"beta must be in (0, 1]; got {beta!r}")
    xi = _check_batch(xi, state, "xi")
    xi = jax.lax.stop_gradient(xi).astype(state.mean.dtype)
    m = xi.shape[0]
    rate = jnp.where(state.count > 0, jnp.asarray(beta, state.mean.dtype), 1.0)

    def ema(old, new):
        return (1.0 - rate) * old + rate * new

    mean = ema(state.mean, jnp.mean(xi, axis=0))
    count = state.count + 1
    if isinstance(state, FullCovariance):
        flat = xi.reshape(m, -1)
        moment = flat.T @ flat / m
        return dataclasses.replace(
            state, second_moment=ema(state.second_moment, moment), mean=mean, count=count
        )
    if isinstance(state, DiagonalCovariance):
        moment = jnp.mean(jnp.square(xi), axis=0)
        return dataclasses.replace(
            state, second_moment=ema(state.second_moment, moment), mean=mean, count=count
        )
    table = _function_moment(xi, state.max_distance)
    return dataclasses.replace(state, table=ema(state.table, table), mean=mean, count=count)


def _mean_diagonal(state: CovarianceState) -> jax.Array:
    if isinstance(state, FullCovariance):
        return jnp.mean(jnp.diagonal(state.second_moment))
    if isinstance(state, DiagonalCovariance):
        return jnp.mean(state.second_moment)
    if state.psd:
        # Σ_pp = k'(0) = mean over the torus frequencies of the clipped spectrum's diagonal.
        spectrum = psd_spectrum(state, state.table.dtype)
        return jnp.mean(jnp.diagonal(spectrum, axis1=-2, axis2=-1))
    return jnp.mean(jnp.diagonal(state.table[:, :, 0]))


def covariance_scale(state: CovarianceState) -> jax.Array:
    """``σ_t = c / avg(diag Σ̂_t)`` (Algorithm 1), or 1 when the state has no ``data_variance``."""
    _check_state(state)
    if state.data_variance is None:
        return jnp.ones((), state.mean.dtype)
    avg = jax.lax.stop_gradient(_mean_diagonal(state))
    return jnp.asarray(state.data_variance, state.mean.dtype) / jnp.maximum(avg, _TINY)


def covariance_apply(state: CovarianceState, g: jax.Array) -> jax.Array:
    """``σ_t Σ̂_t g_i`` for every example ``g[B, *x_shape]`` (the rescaled covariance times g).

    The covariance is a constant: its arrays pass through ``stop_gradient`` (SGR treats Σ as a
    fixed estimate), so only ``g`` carries gradients. ``"function"`` states apply Σ as a 2-D
    convolution of the gradient image (SGR §3.3, "covariance-gradient matrix-vector product"),
    ``"full"`` as a matrix product, ``"diagonal"`` element-wise.
    """
    _check_state(state)
    g = _check_batch(g, state, "g")
    scale = covariance_scale(state).astype(g.dtype)
    b = g.shape[0]
    if isinstance(state, FullCovariance):
        sigma = jax.lax.stop_gradient(state.second_moment).astype(g.dtype)
        out = (g.reshape(b, -1) @ sigma).reshape(g.shape)  # Σ symmetric: g Σ = (Σ g)ᵀ
        return scale * out
    if isinstance(state, DiagonalCovariance):
        return scale * jax.lax.stop_gradient(state.second_moment).astype(g.dtype) * g
    return scale * apply_function(state, g)


def covariance_mean(state: CovarianceState) -> jax.Array:
    """Running mean ``μ`` of the perturbations, ``[*x_shape]``, rescaled consistently with Σ.

    Σ is scaled by ``σ_t`` (second moments), so ``μ`` — a first moment — is scaled by
    ``sqrt(σ_t)``. Constant (``stop_gradient``). For the uncentered SGR term (eq. 12).
    """
    _check_state(state)
    return jnp.sqrt(covariance_scale(state)) * jax.lax.stop_gradient(state.mean)


def covariance_matrix(state: CovarianceState) -> jax.Array:
    """The dense rescaled ``σ_t Σ̂_t`` ``[D, D]`` (row-major flattening of ``x_shape``).

    For diagnostics and small inputs only (``D²`` memory); training uses
    :func:`covariance_apply`.
    """
    _check_state(state)
    scale = covariance_scale(state)
    if isinstance(state, FullCovariance):
        return scale * state.second_moment
    if isinstance(state, DiagonalCovariance):
        return scale * jnp.diag(state.second_moment.reshape(-1))
    h, w, c = state.x_shape
    rr, cc = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    pos = np.stack([rr.reshape(-1), cc.reshape(-1)], axis=1)
    diff = pos[:, None, :] - pos[None, :, :]
    if state.psd:
        ph, pw = torus_shape(state)
        kernel = jnp.real(jnp.fft.ifft2(psd_spectrum(state, state.table.dtype), axes=(0, 1)))
        blocks = kernel[diff[..., 0] % ph, diff[..., 1] % pw]  # [p, q, c_in(q), c_out(p)]
        dense = jnp.transpose(blocks, (0, 3, 1, 2)).reshape(h * w * c, h * w * c)
        return scale * dense
    dist = np.rint(np.hypot(diff[..., 0], diff[..., 1])).astype(np.int64)
    mask = dist <= state.max_distance
    blocks = state.table[:, :, np.minimum(dist, state.max_distance)] * jnp.asarray(mask, state.table.dtype)
    # blocks[c, c', p, q] -> Σ[(p, c), (q, c')]
    dense = jnp.transpose(blocks, (2, 0, 3, 1)).reshape(h * w * c, h * w * c)
    return scale * dense


def as_covariance_state(covariance: Any, x_shape: tuple[int, ...], *, name: str = "covariance"):
    """Coerce ``covariance`` to a state for examples of shape ``x_shape``.

    Accepts a state (checked against ``x_shape``), a ``[D, D]`` matrix (full, used as is) or a
    ``[*x_shape]`` / ``[D]`` vector (diagonal, used as is). Raises ``ValueError`` naming
    ``name`` on a dimension mismatch.
    """
    x_shape = tuple(x_shape)
    d = math.prod(x_shape)
    if isinstance(covariance, _STATE_TYPES):
        if tuple(covariance.x_shape) != x_shape:
            raise ValueError(
                f"{name} was built for examples of shape {tuple(covariance.x_shape)} but x has "
                f"examples of shape {x_shape}"
            )
        return covariance
    if not hasattr(covariance, "shape"):
        try:
            covariance = jnp.asarray(covariance)
        except TypeError:
            raise ValueError(
                f"{name} must be a covariance state, a [D, D] matrix or a diagonal; got "
                f"{type(covariance).__name__}"
            ) from None
    shape = tuple(covariance.shape)
    zeros = jnp.zeros(x_shape, covariance.dtype)
    one = jnp.ones((), jnp.int32)
    if shape == (d, d):
        return FullCovariance(covariance, zeros, one, x_shape, None)
    if shape == x_shape or shape == (d,):
        return DiagonalCovariance(covariance.reshape(x_shape), zeros, one, x_shape, None)
    raise ValueError(
        f"{name} must be a [D, D] = [{d}, {d}] matrix or a diagonal of shape {x_shape} / ({d},) "
        f"for examples of shape {x_shape}; got shape {shape}"
    )
