"""Spectral normalization of dense and convolution *operators* (Farnia, Zhang & Tse 2019).

* ``dense_operator_norm`` / ``conv_operator_norm``: σ of the true linear operator of a layer
  by power iteration through the convolution and its transpose (Farnia Algorithm 1), for any
  stride, padding (SAME, VALID, CIRCULAR, REFLECT, explicit pairs) and dilation; NHWC inputs,
  HWIO kernels (Flax layout).
* ``conv_singular_values_fft``: every singular value of a stride-1 *circular* convolution
  (Sedghi, Gupta & Long 2019): ground truth, and Wen et al.'s per-layer statistics.
* ``reshaped_kernel_norm``: σ of the kernel reshaped to ``[kh·kw·C_in, C_out]`` (Miyato et
  al. 2018, Flax's ``nn.SpectralNorm``); kept for comparison, it is not the operator norm
  (Farnia App. A.1).
* Flax layers ``SpectralNormDense`` / ``SpectralNormConv``: drop-in replacements for
  ``nn.Dense`` / ``nn.Conv`` computing with ``W / max(1, σ(W)/β)`` (Farnia eq. 9: a bound
  σ ≤ β, not a normalization to β). The power-iteration vector lives in the ``"spectral"``
  variable collection: it is advanced (``iters`` iterations, 1 by default) only when that
  collection is mutable (a training step: ``model.apply(..., mutable=["spectral", ...])``)
  and read only otherwise (attacks, evaluation), so an attack sees a fixed function.
  ``init_iters`` iterations run at initialization.
* ``spectral_normalized(name, num_classes, beta=...)``: any model of the zoo
  (``robustjax.nn.create``) with every Dense/Conv replaced by the normalized layers.

The pure-JAX operators (``conv_operator``, ``power_iteration``) live in
``robustjax.core.power`` so that the global regularizer (no Flax) shares them.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from robustjax.core.power import (
    canonicalize_conv_padding,
    check_conv_geometry,
    conv_apply,
    conv_operator,
    dense_operator,
    power_iteration,
)
from robustjax.core.validation import check_choice, check_positive, check_positive_int
from robustjax.nn.conv import conv as fast_conv

__all__ = [
    "dense_operator_norm",
    "conv_operator_norm",
    "conv_singular_values_fft",
    "reshaped_kernel_norm",
    "SpectralNormDense",
    "SpectralNormConv",
    "spectral_normalized",
    "SN_MODES",
]

SN_MODES = ("operator", "reshape")
SPECTRAL_COLLECTION = "spectral"


# ----------------------------------------------------------------------------------------
# Operator norms of plain kernels
# ----------------------------------------------------------------------------------------


def _start(key, shape, dtype):
    key = jax.random.PRNGKey(0) if key is None else key
    return jax.random.normal(key, shape, dtype)


def dense_operator_norm(kernel: jax.Array, *, iters: int = 100, key=None) -> jax.Array:
    """σ_max of a dense kernel ``[in, out]`` by ``iters`` power iterations (Farnia App. B)."""
    kernel = jnp.asarray(kernel)
    iters = check_positive_int(iters, name="iters")
    matvec, rmatvec = dense_operator(kernel)
    sigma, _, _ = power_iteration(matvec, rmatvec, _start(key, (1, kernel.shape[0]), kernel.dtype), iters=iters)
    return sigma[0]


def conv_operator_norm(
    kernel: jax.Array,
    input_shape: Sequence[int],
    *,
    strides=1,
    padding="SAME",
    dilation=1,
    iters: int = 100,
    key=None,
    input_dilation=1,
    feature_group_count: int = 1,
) -> jax.Array:
    """σ_max of the convolution as a linear operator on inputs of shape ``input_shape``.

    Farnia et al. 2019, Algorithm 1: power iteration through the convolution and its
    transpose (``jax.linear_transpose``), exact for every stride, padding and dilation.

    Args:
      kernel: HWIO kernel ``[spatial..., C_in/groups, C_out]``.
      input_shape: one example's shape ``(spatial..., C_in)`` (NHWC without N).
      strides, padding, dilation, input_dilation, feature_group_count: as ``flax.linen.Conv``
        (``dilation`` = ``kernel_dilation``).
      iters: power iterations (≥ 1); key: PRNG key of the random start (default fixed).
    """
    kernel = jnp.asarray(kernel)
    iters = check_positive_int(iters, name="iters")
    input_shape = check_conv_geometry(kernel.shape, input_shape, feature_group_count)
    canonicalize_conv_padding(padding, kernel.ndim - 2)
    matvec, rmatvec = conv_operator(
        kernel, input_shape, strides=strides, padding=padding, dilation=dilation,
        input_dilation=input_dilation, feature_group_count=feature_group_count,
    )
    sigma, _, _ = power_iteration(matvec, rmatvec, _start(key, (1,) + input_shape, kernel.dtype), iters=iters)
    return sigma[0]


def conv_singular_values_fft(kernel: jax.Array, input_hw: Sequence[int]) -> jax.Array:
    """All singular values of a stride-1 circular convolution (Sedghi et al. 2019, Thm. 6).

    The operator is block-circulant: the 2-D DFT diagonalizes it into one ``C_in × C_out``
    matrix per frequency, ``K̂[f] = Σ_p K[p] e^{-2πi⟨f, p⟩/n}``; its singular values over all
    frequencies are the operator's. A kernel larger than the input wraps around (entries at
    ``p mod n`` add up), as in a circular convolution. Works for any number of spatial dims.

    Returns ``[prod(input_hw) · min(C_in, C_out)]`` singular values, descending.
    """
    kernel = jnp.asarray(kernel)
    n = kernel.ndim - 2
    input_hw = tuple(int(a) for a in input_hw)
    if n < 1 or len(input_hw) != n:
        raise ValueError(
            f"input_hw must have one size per spatial dim of the kernel {kernel.shape}; got {input_hw}"
        )
    if any(a < 1 for a in input_hw):
        raise ValueError(f"input_hw must be positive; got {input_hw}")
    wrapped = jnp.zeros(input_hw + kernel.shape[-2:], kernel.dtype)
    for idx in np.ndindex(*kernel.shape[:n]):
        target = tuple(i % m for i, m in zip(idx, input_hw))
        wrapped = wrapped.at[target].add(kernel[idx])
    freq = jnp.fft.fftn(wrapped, axes=tuple(range(n)))
    s = jnp.linalg.svd(freq, compute_uv=False)
    return jnp.sort(s.reshape(-1))[::-1]


def reshaped_kernel_norm(kernel: jax.Array) -> jax.Array:
    """σ_max of the kernel reshaped to ``[prod(spatial)·C_in, C_out]`` (exact SVD).

    The estimate of Miyato et al. 2018 / Flax's ``nn.SpectralNorm`` for convolutions; it is
    not the norm of the convolution operator (Farnia et al. 2019, App. A.1), see tests.
    """
    kernel = jnp.asarray(kernel)
    if kernel.ndim < 2:
        raise ValueError(f"kernel must have rank >= 2; got shape {kernel.shape}")
    return jnp.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]


# ----------------------------------------------------------------------------------------
# Flax layers
# ----------------------------------------------------------------------------------------


def _check_sn_options(m) -> None:
    check_positive(m.beta, name="beta")
    check_choice(m.mode, name="mode", allowed=SN_MODES)
    check_positive_int(m.iters, name="iters")
    check_positive_int(m.init_iters, name="init_iters")


def _bounded_kernel(m, kernel: jax.Array, make_operator: Callable, v_shape, update_stats) -> jax.Array:
    """``kernel / max(1, σ/β)`` with the power-iteration vector in the ``spectral`` collection.

    ``make_operator(kernel) -> (matvec, rmatvec)`` on batches of one vector ``v[1, ...]``.
    σ = ‖W v‖ with the stored unit ``v`` (= uᵀ W v for u = W v/‖W v‖). With
    ``grad_through_sigma`` (Farnia) the gradient flows through σ(W) with ``u, v`` constant,
    so ∂σ/∂W = u vᵀ; otherwise σ is a constant (Miyato et al. / edward2 stop-gradient).
    """
    frozen = lax.stop_gradient(kernel)  # the power iteration itself is never differentiated

    def init_v():
        key = m.make_rng("params") if m.has_rng("params") else jax.random.PRNGKey(0)
        v0 = jax.random.normal(key, v_shape, jnp.float32)
        _, _, v = power_iteration(*make_operator(frozen), v0.astype(frozen.dtype), iters=m.init_iters)
        return v

    v_var = m.variable(SPECTRAL_COLLECTION, "v", init_v)
    sigma_var = m.variable(SPECTRAL_COLLECTION, "sigma", lambda: jnp.zeros((), jnp.float32))
    if tuple(v_var.value.shape) != tuple(v_shape):
        raise ValueError(
            f"{type(m).__name__} '{m.name}': the stored power-iteration vector has shape "
            f"{v_var.value.shape} but this call needs {tuple(v_shape)} (the operator of a conv "
            "layer depends on the input's spatial size; re-initialize for a new input size)"
        )
    if update_stats is None:
        update_stats = True if m.update_stats is None else m.update_stats
    update = bool(update_stats) and m.is_mutable_collection(SPECTRAL_COLLECTION) and not m.is_initializing()
    v = v_var.value
    if update:
        _, _, v = power_iteration(*make_operator(frozen), v, iters=m.iters)
        v_var.value = v
    matvec, _ = make_operator(kernel)
    # floored so that a zero kernel gives a zero (not NaN) gradient
    sigma = jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(matvec(lax.stop_gradient(v)))), 1e-24))
    if not m.grad_through_sigma:
        sigma = lax.stop_gradient(sigma)
    if update or m.is_initializing():
        sigma_var.value = lax.stop_gradient(sigma).astype(jnp.float32)
    bounded = kernel / jnp.maximum(1.0, sigma / m.beta)
    m.sow("intermediates", "bounded_kernel", bounded)
    return bounded


def _reshape_operator(kernel):
    return dense_operator(kernel.reshape(-1, kernel.shape[-1]))


class SpectralNormDense(nn.Module):
    """``nn.Dense`` with kernel ``W / max(1, σ(W)/β)`` (Farnia et al. 2019, eq. 9, App. B).

    Same constructor arguments and parameter names (``kernel``, ``bias``) as ``nn.Dense``,
    plus: ``beta`` (bound on σ, > 0), ``mode`` (``"operator"``/``"reshape"``: identical for
    dense layers), ``grad_through_sigma``, ``iters`` (power iterations per update, default 1),
    ``init_iters`` (at initialization), ``update_stats`` (``None`` = update whenever the
    ``"spectral"`` collection is mutable; also a call argument).
    """

    features: int
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros_init()
    beta: float = 1.0
    mode: str = "operator"
    grad_through_sigma: bool = True
    iters: int = 1
    init_iters: int = 100
    update_stats: bool | None = None

    @nn.compact
    def __call__(self, inputs: jax.Array, update_stats: bool | None = None) -> jax.Array:
        _check_sn_options(self)
        kernel = self.param("kernel", self.kernel_init, (jnp.shape(inputs)[-1], self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        kernel = _bounded_kernel(self, kernel, dense_operator, (1, kernel.shape[0]), update_stats)
        inputs, kernel, bias = nn.dtypes.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        y = lax.dot_general(inputs, kernel, (((inputs.ndim - 1,), (0,)), ((), ())), precision=self.precision)
        if bias is not None:
            y = y + jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))
        return y


class SpectralNormConv(nn.Module):
    """``nn.Conv`` with kernel ``W / max(1, σ(W)/β)``, σ of the convolution operator.

    Farnia et al. 2019, Algorithm 1 and eq. 9: σ is the spectral norm of the linear map
    ``x ↦ conv(x, W)`` on inputs of this call's (spatial, channel) shape, for any stride,
    padding and dilation (``mode="operator"``), or of the reshaped kernel (``mode="reshape"``,
    Miyato et al., for comparison). Same constructor arguments and parameter names as
    ``nn.Conv`` (``mask`` not supported), plus the SN options of ``SpectralNormDense``.
    The stored vector has the input's per-example shape, fixed at initialization.
    """

    features: int
    kernel_size: int | Sequence[int] = 3
    strides: None | int | Sequence[int] = 1
    padding: Any = "SAME"
    input_dilation: None | int | Sequence[int] = 1
    kernel_dilation: None | int | Sequence[int] = 1
    feature_group_count: int = 1
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros_init()
    beta: float = 1.0
    mode: str = "operator"
    grad_through_sigma: bool = True
    iters: int = 1
    init_iters: int = 100
    update_stats: bool | None = None

    @nn.compact
    def __call__(self, inputs: jax.Array, update_stats: bool | None = None) -> jax.Array:
        _check_sn_options(self)
        ks = (self.kernel_size,) if isinstance(self.kernel_size, int) else tuple(self.kernel_size)
        n = len(ks)
        canonicalize_conv_padding(self.padding, n)
        if inputs.ndim < n + 1:
            raise ValueError(
                f"{type(self).__name__}: input of a {n}-D convolution needs rank >= {n + 1} "
                f"(spatial..., C); got shape {inputs.shape}"
            )
        batch_shape = inputs.shape[: inputs.ndim - (n + 1)]
        x = inputs.reshape((-1,) + inputs.shape[-(n + 1):])
        in_shape = tuple(x.shape[1:])
        c_in = in_shape[-1]
        if c_in % self.feature_group_count:
            raise ValueError(
                f"input channels {c_in} must be divisible by feature_group_count={self.feature_group_count}"
            )
        kernel = self.param(
            "kernel", self.kernel_init, ks + (c_in // self.feature_group_count, self.features), self.param_dtype
        )
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        conv_kw = dict(
            strides=self.strides, padding=self.padding, dilation=self.kernel_dilation,
            input_dilation=self.input_dilation, feature_group_count=self.feature_group_count,
        )
        if self.mode == "operator":
            make_operator = functools.partial(_conv_operator_for, in_shape=in_shape, conv_kw=conv_kw)
            v_shape = (1,) + in_shape
        else:
            make_operator = _reshape_operator
            v_shape = (1, int(np.prod(kernel.shape[:-1])))
        kernel = _bounded_kernel(self, kernel, make_operator, v_shape, update_stats)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = _conv_forward(x, kernel, self.precision, conv_kw)
        if bias is not None:
            y = y + jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))
        if len(batch_shape) != 1:
            y = y.reshape(batch_shape + y.shape[1:])
        return y


def _conv_forward(x, kernel, precision, conv_kw):
    """The layer's convolution: ``robustjax.nn.conv.conv`` (fast derivatives on XLA:CPU, issue 7)
    for zero/SAME/VALID padding without input dilation or groups, else ``conv_apply``."""
    n = kernel.ndim - 2
    pad = canonicalize_conv_padding(conv_kw["padding"], n)
    in_dil = conv_kw["input_dilation"]
    plain_input = in_dil is None or all(d == 1 for d in np.broadcast_to(np.asarray(in_dil), (n,)))
    if (plain_input and conv_kw["feature_group_count"] == 1
            and (not isinstance(pad, str) or pad in ("SAME", "VALID"))):
        return fast_conv(x, kernel, strides=1 if conv_kw["strides"] is None else conv_kw["strides"],
                    padding=pad, dilation=1 if conv_kw["dilation"] is None else conv_kw["dilation"],
                    precision=precision)
    return conv_apply(x, kernel, precision=precision, **conv_kw)


def _conv_operator_for(kernel, *, in_shape, conv_kw):
    return conv_operator(kernel, in_shape, **conv_kw)


def spectral_normalized(
    name: str,
    num_classes: int,
    *,
    beta: float,
    mode: str = "operator",
    grad_through_sigma: bool = True,
    iters: int = 1,
    init_iters: int = 100,
    **kwargs,
):
    """Build zoo model ``name`` with every Dense and Conv spectrally normalized (Farnia eq. 9).

    Calls ``robustjax.nn.create(name, num_classes, dense=..., conv=..., **kwargs)`` with
    ``SpectralNormDense`` / ``SpectralNormConv`` bound to the given options. Train with
    ``mutable=["spectral", ...]`` to advance the power iteration once per step; evaluate and
    attack without it (the vectors are then read only).
    """
    check_positive(beta, name="beta")
    check_choice(mode, name="mode", allowed=SN_MODES)
    check_positive_int(iters, name="iters")
    check_positive_int(init_iters, name="init_iters")
    from robustjax import nn as rnn  # lazy: the zoo lives next to this module

    create = getattr(rnn, "create", None)
    if create is None:
        raise ValueError("robustjax.nn.create (the model zoo) is not available")
    opts = dict(beta=beta, mode=mode, grad_through_sigma=grad_through_sigma, iters=iters, init_iters=init_iters)
    return create(
        name,
        num_classes,
        dense=functools.partial(SpectralNormDense, **opts),
        conv=functools.partial(SpectralNormConv, **opts),
        **kwargs,
    )
