"""The SGR covariance *function* of pixel displacement (Roth, Nowozin, Lucchi, Hofmann 2018,
eq. 16, Fig. 2): its geometry (rounded distances, pair counts, kernel layout) and its application
to a gradient image as a 2-D convolution, raw (``psd=False``) or as its nearest positive
semi-definite stationary kernel (``psd=True``, a clipped spectrum on a torus). ``covariance.py``
holds the state (``CovarianceFunction``) and calls :func:`apply_function`; the functions here
read the state's ``x_shape``, ``max_distance``, ``table`` and ``psd``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "FFT_MIN_TAPS",
    "apply_function",
    "displacement_bins",
    "full_range",
    "function_kernel",
    "kernel_index",
    "psd_spectrum",
    "torus_kernel",
    "torus_shape",
]


# ---------------------------------------------------------------------------------------------
# Geometry of the covariance function (static numpy)
# ---------------------------------------------------------------------------------------------


def full_range(h: int, w: int) -> int:
    return int(np.rint(math.hypot(h - 1, w - 1)))


def displacement_bins(h: int, w: int):
    """Rounded distance and pair count of every displacement ``(a, b)``, FFT index layout.

    Rows ``a`` of the returned ``[2H−1, 2W−1]`` arrays follow the FFT wrap-around layout of a
    length-``(2H−1)`` correlation (index ``a`` for ``a ≥ 0``, ``2H−1+a`` for ``a < 0``), columns
    likewise. ``count = (H − |a|)(W − |b|)`` is the number of pixel pairs at that displacement.
    Distances never tie at .5 (``a² + b²`` is an integer), so rounding is unambiguous.
    """
    a = np.fft.ifftshift(np.arange(-(h - 1), h))
    b = np.fft.ifftshift(np.arange(-(w - 1), w))
    aa, bb = np.meshgrid(a, b, indexing="ij")
    dist = np.rint(np.hypot(aa, bb)).astype(np.int64)
    count = (h - np.abs(aa)) * (w - np.abs(bb))
    return dist, count


def kernel_index(h: int, w: int, max_distance: int):
    """Bin index and mask of the convolution kernel ``[2kh+1, 2kw+1]`` (centre = zero shift)."""
    kh, kw = min(max_distance, h - 1), min(max_distance, w - 1)
    a, b = np.meshgrid(np.arange(-kh, kh + 1), np.arange(-kw, kw + 1), indexing="ij")
    dist = np.rint(np.hypot(a, b)).astype(np.int64)
    mask = dist <= max_distance
    return np.minimum(dist, max_distance), mask, (kh, kw)


# Kernels with more taps than this are applied by FFT. Measured on XLA:CPU (32x32x3, B=128,
# value and gradient of ‖Σg‖²): FFT ~30 ms for every kernel size; direct convolution 55 ms
# (3x3), 220 ms (7x7), ~1 s (63x63, the untruncated function). Only the 1-tap kernel
# (max_distance=0) is a plain convolution.
FFT_MIN_TAPS = 1


def function_kernel(state, dtype):
    """Kernel ``K[Δ, c_in, c_out] = table[c_out, c_in, round‖Δ‖]`` (HWIO) and its half sizes."""
    h, w, _ = state.x_shape
    idx, mask, (kh, kw) = kernel_index(h, w, state.max_distance)
    table = jax.lax.stop_gradient(state.table).astype(dtype)
    kernel = table[:, :, idx] * jnp.asarray(mask, dtype)  # [C_out, C_in, 2kh+1, 2kw+1]
    return jnp.transpose(kernel, (2, 3, 1, 0)), (kh, kw)


def torus_shape(state) -> tuple[int, int]:
    """Torus ``(H + kh, W + kw)`` on which the kernel (half sizes ``kh, kw``) never overlaps
    itself and a zero-padded image never wraps into its own output window."""
    h, w, _ = state.x_shape
    _, _, (kh, kw) = kernel_index(h, w, state.max_distance)
    return h + kh, w + kw


def torus_kernel(state, dtype) -> jax.Array:
    """The function's kernel laid out on the torus ``[P, Q, C_in, C_out]``, ``Δ = 0`` at (0, 0)."""
    kernel, (kh, kw) = function_kernel(state, dtype)
    ph, pw = torus_shape(state)
    c = state.x_shape[2]
    wrapped = jnp.zeros((ph, pw, c, c), dtype)
    wrapped = wrapped.at[: 2 * kh + 1, : 2 * kw + 1].set(kernel)
    return jnp.roll(wrapped, shift=(-kh, -kw), axis=(0, 1))


def psd_spectrum(state, dtype) -> jax.Array:
    """Spectrum ``[P, Q, C, C]`` of the torus kernel with negative eigenvalues clipped to 0.

    The kernel is even in ``Δ`` and symmetric in the channels, so its 2-D DFT is one real
    symmetric ``C × C`` matrix per frequency (the imaginary part is rounding error and is
    dropped). Clipping each matrix to its PSD part makes the circulant operator PSD.
    """
    spectrum = jnp.real(jnp.fft.fft2(torus_kernel(state, dtype), axes=(0, 1)))
    spectrum = 0.5 * (spectrum + jnp.swapaxes(spectrum, -1, -2))
    if spectrum.shape[-1] == 1:
        return jnp.maximum(spectrum, 0.0)
    evals, evecs = jnp.linalg.eigh(spectrum)
    return jnp.einsum("pqik,pqk,pqjk->pqij", evecs, jnp.maximum(evals, 0.0), evecs)


def apply_function(state, g: jax.Array) -> jax.Array:
    """``(Σ g)[p, c] = Σ_{q, c'} K[p − q, c', c] g[q, c']`` as a 2-D convolution.

    Raw function (``psd=False``): ``K[Δ] = table[·, ·, round‖Δ‖]``; the kernel depends on
    ``|Δ|`` only, so correlation and convolution coincide. Small kernels use
    ``lax.conv_general_dilated``; large ones a zero-padded FFT on the torus of
    :func:`torus_shape` (the circular wrap-around never reaches the output window).
    ``psd=True``: the same FFT with the clipped spectrum of :func:`psd_spectrum`; zero-padding
    ``g`` to the torus, circular convolution and cropping is the principal submatrix of the
    PSD circulant operator.
    """
    h, w, c = state.x_shape
    ph, pw = torus_shape(state)
    if state.psd:
        kf = psd_spectrum(state, g.dtype)[:, : pw // 2 + 1]  # real: the kernel is even
    else:
        kernel, (kh, kw) = function_kernel(state, g.dtype)
        if (2 * kh + 1) * (2 * kw + 1) <= FFT_MIN_TAPS:
            return jax.lax.conv_general_dilated(
                g,
                kernel,
                window_strides=(1, 1),
                padding=((kh, kh), (kw, kw)),
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                precision=jax.lax.Precision.HIGHEST,
            )
        kf = jnp.fft.rfft2(torus_kernel(state, g.dtype), axes=(0, 1))  # [ph, pw', C_in, C_out]
    gf = jnp.fft.rfft2(g, s=(ph, pw), axes=(1, 2))  # [B, ph, pw', C_in]
    out = jnp.fft.irfft2(jnp.einsum("bpqi,pqio->bpqo", gf, kf), s=(ph, pw), axes=(1, 2))
    return out[:, :h, :w, :].astype(g.dtype)
