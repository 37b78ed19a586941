"""Every singular value of a convolution operator, for any stride (Wen et al. 2020, Fig. 1a).

Three ways, from exact to approximate; :func:`conv_singular_values` picks one and says which:

* ``"exact-matrix"`` — :func:`conv_singular_values_exact`: the Gram matrix of the operator on
  its smaller side (``WᵀW`` or ``WWᵀ``, at most ``max_dim`` rows) built in float64 by applying
  the convolution and its transpose to basis vectors in chunks, then ``eigvalsh``. Exact for
  every stride, padding, dilation and group count.
* ``"fft-circular"`` — stride 1: the per-frequency spectrum of Sedghi et al. 2019 (as
  :func:`robustjax.nn.spectral_norm.conv_singular_values_fft`, here in float64, per feature
  group and with dilation). Exact for ``CIRCULAR`` padding, the usual approximation of
  zero-padded convolutions otherwise.
* ``"polyphase-circular"`` — :func:`conv_singular_values_polyphase` for strides ``s > 1``
  dividing the input size. A stride-``s`` circular convolution of an ``n``-grid is a stride-1
  circular convolution of the ``n/s``-grid with ``s^d · C_in`` input channels (the polyphase
  components ``x_a[i] = x[s·i + a]``, ``a ∈ [0, s)^d``) and the kernel's taps sorted into
  them; the 2-D DFT then block-diagonalizes it into one ``C_out × s^d·C_in`` matrix per
  frequency. Exact for ``CIRCULAR`` padding, an approximation for zero padding.

The count of singular values is always ``min(D_in, D_out)`` of the operator (the SVD's), so
statistics such as the standard deviation compare across methods. ``conv_frobenius_norm`` is
the operator's Frobenius norm (Farnia et al. 2019, Theorems 1–4 use ``‖W_i‖_F``).

NHWC inputs, HWIO kernels (Flax layout); geometry arguments as ``flax.linen.Conv``.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.core.power import (
    canonicalize_conv_padding,
    check_conv_geometry,
    conv_apply,
    conv_operator,
)
from robustjax.core.validation import check_positive_int, check_positive_ints

__all__ = [
    "SV_METHODS",
    "ConvSpectrum",
    "conv_singular_values",
    "conv_singular_values_exact",
    "conv_singular_values_polyphase",
    "conv_frobenius_norm",
]

#: Values of ``ConvSpectrum.method`` (and of the layer report's ``sv_method``).
SV_METHODS = ("exact-matrix", "fft-circular", "polyphase-circular", "unavailable")


def _geometry(kernel, input_shape, strides, padding, dilation, input_dilation, feature_group_count):
    kernel = jnp.asarray(kernel)
    input_shape = check_conv_geometry(kernel.shape, input_shape, feature_group_count)
    if any(a < 1 for a in input_shape):
        raise ValueError(f"input_shape must be positive; got {input_shape}")
    n = kernel.ndim - 2
    return dict(
        strides=check_positive_ints(strides, n, name="strides"),
        padding=canonicalize_conv_padding(padding, n),
        dilation=check_positive_ints(dilation, n, name="dilation"),
        input_dilation=check_positive_ints(input_dilation, n, name="input_dilation"),
        feature_group_count=check_positive_int(feature_group_count, name="feature_group_count"),
    ), input_shape


def _output_size(kernel, input_shape, geom) -> int:
    out = jax.eval_shape(lambda v: conv_apply(v, kernel, **geom), jax.ShapeDtypeStruct((1,) + input_shape, kernel.dtype))
    return int(np.prod(out.shape[1:]))


def conv_singular_values_exact(
    kernel: jax.Array,
    input_shape: Sequence[int],
    *,
    strides=1,
    padding="SAME",
    dilation=1,
    input_dilation=1,
    feature_group_count: int = 1,
    max_dim: int = 2048,
    chunk: int = 256,
) -> np.ndarray:
    """All ``min(D_in, D_out)`` singular values of the convolution operator, exactly (float64).

    Builds the Gram matrix of the smaller side, ``WᵀW`` (``D_in ≤ D_out``) or ``WWᵀ``, column
    by column as ``Wᵀ(W e_j)`` / ``W(Wᵀ e_j)`` for basis vectors ``e_j`` in chunks of ``chunk``
    (the transpose by ``jax.linear_transpose``, as in Farnia et al.'s Algorithm 1), under
    float64, and returns the square roots of its eigenvalues, descending. Any stride, padding,
    dilation, input dilation and group count. Raises ``ValueError`` (naming ``max_dim``) when
    ``min(D_in, D_out) > max_dim``: the Gram matrix would be too large.
    """
    geom, input_shape = _geometry(kernel, input_shape, strides, padding, dilation, input_dilation,
                                  feature_group_count)
    max_dim = check_positive_int(max_dim, name="max_dim")
    chunk = check_positive_int(chunk, name="chunk")
    with jax.enable_x64(True):
        k64 = jnp.asarray(np.asarray(kernel, np.float64))
        d_in = int(np.prod(input_shape))
        d_out = _output_size(k64, input_shape, geom)
        small = min(d_in, d_out)
        if small > max_dim:
            raise ValueError(
                f"max_dim={max_dim} is smaller than the operator's smaller side min(D_in={d_in}, "
                f"D_out={d_out}); raise max_dim or use the circular (FFT/polyphase) spectrum"
            )
        matvec, rmatvec = conv_operator(k64, input_shape, **geom)
        if d_in <= d_out:
            shape, gram_fn = input_shape, lambda e: rmatvec(matvec(e))
        else:
            out_shape = jax.eval_shape(matvec, jax.ShapeDtypeStruct((1,) + input_shape, jnp.float64)).shape[1:]
            shape, gram_fn = tuple(out_shape), lambda e: matvec(rmatvec(e))
        c = min(chunk, small)
        gram = np.zeros((small, small), np.float64)
        for start in range(0, small, c):
            cols = np.arange(start, min(start + c, small))
            basis = np.zeros((c, small), np.float64)
            basis[np.arange(cols.size), cols] = 1.0
            block = np.asarray(gram_fn(jnp.asarray(basis.reshape((c,) + shape))), np.float64)
            gram[:, cols] = block.reshape(c, small)[: cols.size].T
    gram = 0.5 * (gram + gram.T)
    eig = np.linalg.eigvalsh(gram)[::-1]
    return np.sqrt(np.clip(eig, 0.0, None))


def conv_singular_values_polyphase(
    kernel: jax.Array,
    input_hw: Sequence[int],
    *,
    strides=1,
    dilation=1,
    feature_group_count: int = 1,
) -> np.ndarray:
    """All singular values of a strided *circular* convolution, by polyphase decomposition.

    The layer computes ``y[o] = Σ_t K[t] x[(s·o + t·dil − p) mod n]`` (``p`` the low padding of
    Flax's ``CIRCULAR`` mode). Writing ``t·dil − p = s·q + a`` with ``a ∈ [0, s)^d`` turns it into
    ``y[o] = Σ_{a,q} K_a[q] x_a[(o + q) mod n/s]`` on the ``n/s`` torus, with phase inputs
    ``x_a[i] = x[s·i + a]``: a stride-1 circular convolution with ``s^d·C_in`` input channels,
    whose spectrum is that of one ``s^d·C_in × C_out`` matrix per frequency (Sedghi et al. 2019,
    Thm. 6). The shift ``p`` is a unitary circular shift of the input and does not change the
    singular values. Requires every stride to divide the input size.

    Args:
      kernel: HWIO kernel ``[spatial..., C_in/groups, C_out]``.
      input_hw: the input's spatial size ``(n_1, ..., n_d)``.
      strides, dilation, feature_group_count: as ``flax.linen.Conv``.

    Returns every singular value (``prod(n/s) · min(s^d·C_in, C_out)`` of them), descending.
    """
    kernel = np.asarray(kernel, np.float64)
    nd = kernel.ndim - 2
    if nd < 1:
        raise ValueError(f"kernel must have rank >= 3 (spatial..., in, out); got shape {kernel.shape}")
    input_hw = tuple(int(a) for a in input_hw)
    if len(input_hw) != nd or any(a < 1 for a in input_hw):
        raise ValueError(f"input_hw must be {nd} positive sizes for a kernel of shape {kernel.shape}; got {input_hw}")
    strides = check_positive_ints(strides, nd, name="strides")
    dilation = check_positive_ints(dilation, nd, name="dilation")
    groups = check_positive_int(feature_group_count, name="feature_group_count")
    if any(n % s for n, s in zip(input_hw, strides)):
        raise ValueError(f"strides {strides} must divide the input size {input_hw} for the polyphase spectrum")
    if kernel.shape[-1] % groups:
        raise ValueError(f"C_out={kernel.shape[-1]} must be divisible by feature_group_count={groups}")
    m = tuple(n // s for n, s in zip(input_hw, strides))
    low = [((k - 1) * d + 1 - 1) // 2 for k, d in zip(kernel.shape[:nd], dilation)]
    c_in, c_out = kernel.shape[-2], kernel.shape[-1]
    n_phases = int(np.prod(strides))
    values = []
    for g in range(groups):
        kg = kernel[..., g * (c_out // groups):(g + 1) * (c_out // groups)]
        wrapped = np.zeros(m + (n_phases, c_in, kg.shape[-1]), np.float64)
        for tap in np.ndindex(*kernel.shape[:nd]):
            u = [t * d - p for t, d, p in zip(tap, dilation, low)]
            q = tuple((ui // s) % mi for ui, s, mi in zip(u, strides, m))
            a = np.ravel_multi_index(tuple(ui % s for ui, s in zip(u, strides)), strides)
            wrapped[q + (a,)] += kg[tap]
        wrapped = wrapped.reshape(m + (n_phases * c_in, kg.shape[-1]))
        freq = np.fft.fftn(wrapped, axes=tuple(range(nd)))
        values.append(np.linalg.svd(freq, compute_uv=False).reshape(-1))
    return np.sort(np.concatenate(values))[::-1]


def conv_frobenius_norm(
    kernel: jax.Array,
    input_shape: Sequence[int],
    *,
    strides=1,
    padding="SAME",
    dilation=1,
    input_dilation=1,
    feature_group_count: int = 1,
) -> float:
    """Frobenius norm ``‖W‖_F`` of the convolution operator on inputs of ``input_shape``.

    ``‖W‖_F² = Σ_{output o} Σ_{taps t landing on an input pixel} K[t]²``, i.e. the sum of the
    convolution of an all-ones input with the squared kernel (same geometry). Exact for zero
    padding (``SAME``/``VALID``/explicit/``CAUSAL``, any stride, dilation, input dilation, groups)
    and for ``CIRCULAR`` padding when the dilated kernel fits the input; for ``REFLECT`` (and
    circular kernels larger than the input) two taps can hit one pixel and it is approximate.
    """
    geom, input_shape = _geometry(kernel, input_shape, strides, padding, dilation, input_dilation,
                                  feature_group_count)
    with jax.enable_x64(True):
        k2 = jnp.asarray(np.square(np.asarray(kernel, np.float64)))
        ones = jnp.ones((1,) + input_shape, jnp.float64)
        total = float(jnp.sum(conv_apply(ones, k2, **geom)))
    return float(np.sqrt(max(total, 0.0)))


@dataclasses.dataclass(frozen=True)
class ConvSpectrum:
    """Singular values of one convolution operator and how they were obtained.

    ``values``: descending, ``None`` when ``method == "unavailable"``. ``method``: one of
    ``SV_METHODS``. ``exact``: the values are the operator's (``exact-matrix``, or a circular
    method on a ``CIRCULAR``-padded layer), not the circular approximation of a zero-padded one.
    ``frobenius``: the operator's Frobenius norm (from exact values, else
    :func:`conv_frobenius_norm`).
    """

    values: np.ndarray | None
    method: str
    exact: bool
    frobenius: float

    @property
    def std(self) -> float | None:
        """Standard deviation of the singular values (Wen et al. 2020, Fig. 1a), or ``None``."""
        return None if self.values is None else float(np.std(self.values))


def conv_singular_values(
    kernel: jax.Array,
    input_shape: Sequence[int],
    *,
    strides=1,
    padding="SAME",
    dilation=1,
    input_dilation=1,
    feature_group_count: int = 1,
    max_dim: int = 2048,
) -> ConvSpectrum:
    """The convolution operator's singular values by the most exact method that fits.

    ``exact-matrix`` when ``min(D_in, D_out) ≤ max_dim``; else, without input dilation, the
    circular spectrum: ``fft-circular`` for stride 1, ``polyphase-circular`` when every stride
    divides the input size (exact for ``CIRCULAR`` padding, an approximation otherwise);
    else ``unavailable``. See the module docstring.
    """
    geom, input_shape = _geometry(kernel, input_shape, strides, padding, dilation, input_dilation,
                                  feature_group_count)
    max_dim = check_positive_int(max_dim, name="max_dim")
    kernel_in, kernel = kernel, jnp.asarray(kernel)
    d_in = int(np.prod(input_shape))
    d_out = _output_size(kernel, input_shape, geom)
    hw = input_shape[:-1]
    if min(d_in, d_out) <= max_dim:
        values = conv_singular_values_exact(kernel_in, input_shape, max_dim=max_dim, **geom)
        return ConvSpectrum(values, "exact-matrix", True, float(np.sqrt(np.sum(np.square(values)))))
    circular = geom["padding"] == "CIRCULAR"
    frob = conv_frobenius_norm(kernel_in, input_shape, **geom)
    strides = geom["strides"]
    if any(d != 1 for d in geom["input_dilation"]) or any(n % s for n, s in zip(hw, strides)):
        return ConvSpectrum(None, "unavailable", False, frob)
    # stride 1 is the polyphase decomposition with a single phase: Sedghi et al.'s FFT spectrum
    values = conv_singular_values_polyphase(
        np.asarray(kernel_in, np.float64), hw, strides=strides, dilation=geom["dilation"],
        feature_group_count=geom["feature_group_count"])
    method = "fft-circular" if all(s == 1 for s in strides) else "polyphase-circular"
    return ConvSpectrum(values, method, circular, frob)
