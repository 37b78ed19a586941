"""Batched power iteration on linear operators given as functions, and the linear operators of
dense and convolutional layers (pure JAX: no Flax).

The power method (Roth et al. 2019, eq. 11; Yoshida & Miyato 2017, in Roth eq. 9; Farnia et
al. 2019, Algorithm 1) alternates a forward product ``u ← A v / ‖A v‖`` and a backward product
``v ← Aᵀ u / ‖Aᵀ u‖``. Here every example of a batch carries its own vector: ``v`` is
``[B, ...]`` and all normalizations are over the non-batch axes, so one batched call of
``matvec`` / ``rmatvec`` advances every example at once (block-diagonal batch operator).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from robustjax.core.programs import run
from robustjax.core.validation import check_choice, check_positive_int, check_positive_ints

__all__ = [
    "per_example_norm",
    "normalize_per_example",
    "power_iteration",
    "dense_operator",
    "conv_operator",
    "conv_apply",
    "canonicalize_conv_padding",
    "check_conv_geometry",
    "CONV_PADDING_STRINGS",
]

_TINY = 1e-12

UNROLL_MAX_ITERS = 16

CONV_PADDING_STRINGS = ("SAME", "SAME_LOWER", "VALID", "CIRCULAR", "REFLECT", "CAUSAL")


def per_example_norm(x: jax.Array) -> jax.Array:
    """Euclidean norm of each example ``x[i]`` over the non-batch axes; shape ``[B]``."""
    axes = tuple(range(1, x.ndim))
    return jnp.sqrt(jnp.sum(jnp.square(x), axis=axes))


def _expand(s: jax.Array, x: jax.Array) -> jax.Array:
    return jnp.reshape(s, s.shape + (1,) * (x.ndim - s.ndim))


def normalize_per_example(x: jax.Array, fallback: jax.Array | None = None) -> jax.Array:
    """``x[i] / ‖x[i]‖`` per example; an all-zero example becomes ``fallback[i]`` (or stays 0).

    Never produces NaN: the norm is floored, and where it is exactly zero the fallback (e.g.
    the previous power-iteration vector) is kept so a warm start is not lost.
    """
    norm = per_example_norm(x)
    out = x / _expand(jnp.maximum(norm, _TINY), x)
    if fallback is not None:
        out = jnp.where(_expand(norm > 0, x), out, fallback.astype(out.dtype))
    return out


def power_iteration(
    matvec: Callable[[jax.Array], jax.Array],
    rmatvec: Callable[[jax.Array], jax.Array],
    v0: jax.Array,
    *,
    iters: int,
    unroll: int | bool | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Batched power method for the top singular triple of a linear operator ``A``.

    Roth et al. 2019, eq. 11 (forward pass ``u ← A v``, backward pass ``v ← Aᵀ u``, each
    normalized per example), run for ``iters`` iterations as one ``lax.fori_loop``.

    Args:
      matvec: ``v[B, ...in] -> (A v)[B, ...out]``, linear, examples independent.
      rmatvec: ``u[B, ...out] -> (Aᵀ u)[B, ...in]``.
      v0: ``[B, ...in]`` start vectors (random, or the previous step's ``v``: warm start).
      iters: number of (forward, backward) pairs, ≥ 1.
      unroll: ``lax.fori_loop`` unrolling. ``None`` (default): fully unrolled when
        ``iters <= UNROLL_MAX_ITERS`` (16), else a rolled loop. Measured on XLA:CPU (jax
        0.10): 10 Jacobian iterations of the SGR MNIST CNN in a rolled ``while`` loop ran
        ~7x slower than the same iterations unrolled (benchmarks/spectral.py).

    Returns:
      ``(sigma[B], u[B, ...out], v[B, ...in])`` with unit ``u``, ``v`` and
      ``sigma = uᵀ A v``. Because ``v = Aᵀu/‖Aᵀu‖``, ``uᵀ A v = vᵀ(Aᵀ u)`` is computed from
      the last backward product without an extra forward pass. A zero operator gives
      ``sigma = 0``, ``u = 0`` and ``v = v0/‖v0‖`` (finite, never NaN).

    Outside a trace, operators that are pytree callables (``jax.tree_util.Partial(f, arrays)``)
    run as one compiled program reused for new arrays (``robustjax.core.programs``); closures
    run inline.
    """
    iters = check_positive_int(iters, name="iters")
    static = dict(matvec=matvec, rmatvec=rmatvec, iters=iters, unroll=unroll)
    return run(_power_iteration_body, (v0,), static, jit_opaque=False)


def _power_iteration_body(v0, *, matvec, rmatvec, iters, unroll):
    v = normalize_per_example(v0)
    u_struct = jax.eval_shape(matvec, v)
    u = jnp.zeros(u_struct.shape, u_struct.dtype)
    vt = jnp.zeros_like(v)

    def body(_, carry):
        u, v, _ = carry
        u = normalize_per_example(matvec(v), fallback=jnp.zeros_like(u))
        vt = rmatvec(u)
        v = normalize_per_example(vt, fallback=v)
        return u, v, vt

    if unroll is None:
        unroll = True if iters <= UNROLL_MAX_ITERS else 1
    u, v, vt = lax.fori_loop(0, iters, body, (u, v, vt), unroll=unroll)
    sigma = jnp.sum(v * vt, axis=tuple(range(1, v.ndim)))
    return sigma, u, v


# ----------------------------------------------------------------------------------------
# Linear operators of layers (flax layouts: dense kernel [in, out], conv kernel HWIO, NHWC)
# ----------------------------------------------------------------------------------------


def dense_operator(kernel: jax.Array):
    """``(matvec, rmatvec)`` of ``x ↦ x @ kernel`` on batches ``[B, in]`` / ``[B, out]``."""
    if kernel.ndim != 2:
        raise ValueError(f"kernel of a dense layer must have rank 2 [in, out]; got {kernel.shape}")

    def matvec(v):
        return v @ kernel

    def rmatvec(u):
        return u @ kernel.T

    return matvec, rmatvec


def canonicalize_conv_padding(padding: Any, rank: int):
    """Flax/lax padding → a string of ``CONV_PADDING_STRINGS`` or a list of ``(low, high)`` pairs.

    Accepts ``'SAME'``, ``'SAME_LOWER'``, ``'VALID'``, ``'CIRCULAR'``, ``'REFLECT'``,
    ``'CAUSAL'`` (1-D only), an int (same on both sides of every dim), or a sequence of
    ``rank`` ints or ``(low, high)`` pairs, as ``flax.linen.Conv`` does.
    """
    if isinstance(padding, str):
        p = padding.upper()
        check_choice(p, name="padding", allowed=CONV_PADDING_STRINGS)
        if p == "CAUSAL" and rank != 1:
            raise ValueError(f"padding='CAUSAL' is only defined for 1-D convolutions; got rank {rank}")
        return p
    if isinstance(padding, int) and not isinstance(padding, bool):
        if padding < 0:
            raise ValueError(f"padding must be >= 0; got {padding}")
        return [(padding, padding)] * rank
    try:
        pads = list(padding)
    except TypeError:
        pads = None
    if pads is not None and len(pads) == rank:
        out = []
        for p in pads:
            if isinstance(p, int) and not isinstance(p, bool):
                out.append((p, p))
            elif isinstance(p, Sequence) and len(p) == 2:
                out.append((int(p[0]), int(p[1])))
            else:
                break
        if len(out) == rank:
            return out
    raise ValueError(
        f"padding must be one of {list(CONV_PADDING_STRINGS)}, an int, or a sequence of {rank} "
        f"ints or (low, high) pairs; got {padding!r}"
    )


def conv_apply(
    x: jax.Array,
    kernel: jax.Array,
    *,
    strides=1,
    padding="SAME",
    dilation=1,
    input_dilation=1,
    feature_group_count: int = 1,
    precision=None,
) -> jax.Array:
    """Convolution ``x[N, spatial..., C] * kernel[spatial..., C/groups, O]`` (no bias).

    Same semantics as ``flax.linen.Conv`` (including ``CIRCULAR``/``REFLECT``/``CAUSAL``
    padding done by ``jnp.pad`` before a ``VALID`` convolution), so a layer built on it is a
    drop-in replacement. ``dilation`` is the kernel (rhs) dilation.
    """
    n = kernel.ndim - 2
    if n < 1:
        raise ValueError(f"conv kernel must have rank >= 3 (spatial..., in, out); got {kernel.shape}")
    if x.ndim != n + 2:
        raise ValueError(
            f"input of a {n}-D convolution must have rank {n + 2} [N, spatial..., C]; got {x.shape}"
        )
    strides = check_positive_ints(strides, n, name="strides")
    dilation = check_positive_ints(dilation, n, name="dilation")
    input_dilation = check_positive_ints(input_dilation, n, name="input_dilation")
    pad = canonicalize_conv_padding(padding, n)
    if pad in ("CIRCULAR", "REFLECT"):
        ksz = [(k - 1) * d + 1 for k, d in zip(kernel.shape[:n], dilation)]
        pads = [(0, 0)] + [((k - 1) // 2, k // 2) for k in ksz] + [(0, 0)]
        x = jnp.pad(x, pads, mode={"CIRCULAR": "wrap", "REFLECT": "reflect"}[pad])
        pad = "VALID"
    elif pad == "CAUSAL":
        left = dilation[0] * (kernel.shape[0] - 1)
        x = jnp.pad(x, [(0, 0), (left, 0), (0, 0)])
        pad = "VALID"
    dn = lax.conv_dimension_numbers(x.shape, kernel.shape, _dimension_numbers(n))
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=strides,
        padding=pad,
        lhs_dilation=input_dilation,
        rhs_dilation=dilation,
        dimension_numbers=dn,
        feature_group_count=feature_group_count,
        precision=precision,
    )


def _dimension_numbers(n: int):
    spatial = "".join("HWDXYZ"[i] for i in range(n)) if n <= 6 else None
    return ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")


def check_conv_geometry(kernel_shape, input_shape, feature_group_count: int = 1) -> tuple[int, ...]:
    """Raise unless a per-example ``input_shape`` (spatial..., C) fits ``kernel_shape`` (HWIO)."""
    input_shape = tuple(int(a) for a in input_shape)
    n = len(kernel_shape) - 2
    if n < 1:
        raise ValueError(f"conv kernel must have rank >= 3 (spatial..., in, out); got {tuple(kernel_shape)}")
    if len(input_shape) != n + 1:
        raise ValueError(
            f"input_shape must be (spatial..., channels) of length {n + 1} for a kernel of shape "
            f"{tuple(kernel_shape)}; got {input_shape}"
        )
    if input_shape[-1] != kernel_shape[-2] * feature_group_count:
        raise ValueError(
            f"input_shape has {input_shape[-1]} channels but the kernel expects "
            f"{kernel_shape[-2]} x feature_group_count={feature_group_count}"
        )
    return input_shape


def conv_operator(
    kernel: jax.Array,
    input_shape,
    *,
    strides=1,
    padding="SAME",
    dilation=1,
    input_dilation=1,
    feature_group_count: int = 1,
    precision=None,
):
    """``(matvec, rmatvec)`` of the convolution as a linear operator on inputs of ``input_shape``.

    Farnia et al. 2019, Algorithm 1: the forward product is the convolution, the backward
    product its transpose, obtained with ``jax.linear_transpose`` (exact for every stride,
    padding and dilation). Both act on batches: ``v[B, *input_shape]``, ``u[B, *output_shape]``.
    """
    input_shape = check_conv_geometry(kernel.shape, input_shape, feature_group_count)

    def matvec(v):
        return conv_apply(
            v, kernel, strides=strides, padding=padding, dilation=dilation,
            input_dilation=input_dilation, feature_group_count=feature_group_count,
            precision=precision,
        )

    def rmatvec(u):
        primal = jax.ShapeDtypeStruct((u.shape[0],) + input_shape, u.dtype)
        (vt,) = jax.linear_transpose(matvec, primal)(u)
        return vt

    return matvec, rmatvec
