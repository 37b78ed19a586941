"""A convolution whose derivatives XLA:CPU runs fast: ``conv``, ``conv_general_dilated``, ``Conv``.

Why (issue 7, measured on the SGR MNIST CNN, batch 128, 2-core XLA:CPU, jax 0.10.2; numbers
in ``benchmarks/profile_gradient.py``):

* XLA:CPU hands a stride-1 convolution to YNNPACK when its output is not larger than its input.
  Inside one whole-network YNNPACK fusion (an inference forward pass) that is fast, but once a
  gradient splits the graph, an *individual* YNNPACK convolution of the 26x26x32 -> 24x24x32
  layer took 70-150 ms where XLA's Eigen convolution of the same shape takes 12-30 ms. That
  single forward convolution was ~40% of one input gradient.
* Inside a rolled ``lax.fori_loop`` with the weights as constants, XLA folds the reversed
  kernel of JAX's default input-gradient convolution into a constant with swapped kernel
  dimension labels (``01oi``) that the Eigen path does not take; the loop then ran ~3x slower
  than its unrolled version.

What: :func:`conv` is ``lax.conv_general_dilated`` (channels-last ``NHWC``/``HWIO``, no input
dilation, one feature group) with ``jax.custom_jvp``. The undifferentiated call is the plain
``lax`` convolution, so inference keeps XLA's whole-network fusion. Under differentiation the
rule evaluates a private bilinear primitive ``_conv_p`` whose

* forward form, for stride 1 and >= 16 input channels, on CPU, is the same convolution on its
  input dilated by 2 along one axis (:func:`robustjax.nn.conv_forms.ynn_declined_conv`: same products, no extra work;
  XLA's YNNPACK path declines it and XLA's Eigen convolution takes it). Issue 7 padded extra
  output rows instead (12-37% more work on the zoo's 3x3 layers);
* transpose w.r.t. the input (stride 1) is the primitive ``_conv_t_p``: an ordinary forward
  convolution of the cotangent with the explicitly flipped, in/out-transposed kernel
  ``flip(W).swapaxes(-1, -2)`` and padding ``d(k-1) - p`` (canonical ``HWIO`` labels in every
  context, loops included), whose own transposes are ``_conv_p`` and the kernel gradient (so
  double backprop never differentiates through the flip); for strides > 1 it is JAX's own
  transpose of ``lax.conv_general_dilated``;
* transpose w.r.t. the kernel is one canonical convolution between explicit transposes
  (:func:`robustjax.nn.conv_forms.kernel_gradient`), on CPU in the same declined form for 2-D convolutions, so that a
  plain ``jax.jit`` training step with XLA's default options runs every kernel gradient in
  XLA's Eigen convolution (YNNPACK ran them ~3x slower; issue 18).

Because ``_conv_p`` is a primitive with a bilinear JVP, transpose and batching rules, every
transformation composes: ``jax.jvp``/``jax.linearize`` (power iteration), ``jax.vjp``,
``jax.grad`` of ``jax.grad`` w.r.t. inputs and parameters (GN/SGR/SOAR double backprop),
forward-over-reverse HVPs, ``jax.linear_transpose``, ``jax.vmap``, ``jax.jit``. (A plain
``jax.custom_vjp`` would break ``jax.jvp``; ``jax.custom_derivatives.linear_call`` cannot be
differentiated w.r.t. its residual, i.e. the kernel, so double backprop w.r.t. parameters
would fail; jax 0.10.2 has no ``custom_transpose``.)

:class:`Conv` is ``flax.linen.Conv`` with this convolution (same parameters, names, shapes and
initialization: a checkpoint of one loads into the other); it is the zoo's default ``conv``.
:func:`conv_general_dilated` is a drop-in for ``lax.conv_general_dilated`` that takes the fast
path when it applies and otherwise calls ``lax`` unchanged.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from robustjax.nn.conv_forms import YNN_AVOID_MIN_CHANNELS  # noqa: F401  (re-exported)
from robustjax.nn.conv_forms import dimension_numbers as _dn
from robustjax.nn.conv_forms import kernel_gradient as _kernel_grad
from robustjax.nn.conv_forms import lax_conv as _lax_conv
from robustjax.nn.conv_forms import materialized_conv as _materialized_conv
from robustjax.nn.conv_forms import out_shape as _out_shape

__all__ = ["conv", "conv_general_dilated", "Conv", "YNN_AVOID_MIN_CHANNELS"]


def _tuple(v, n, name):
    if v is None:
        return (1,) * n
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return (int(v),) * n
    v = tuple(int(a) for a in v)
    if len(v) != n:
        raise ValueError(f"{name} must have {n} entries; got {v}")
    return v


# ----------------------------------------------------------------------------------------
# The bilinear primitive: value conv(x, w); custom transposes; bilinear JVP; batching.
# ----------------------------------------------------------------------------------------

_conv_p = Primitive("robustjax_conv")


def _conv_impl(x, w, *, cfg):
    return _materialized_conv(x, w, cfg)


def _conv_abstract(x, w, *, cfg):
    return jax.core.ShapedArray(_out_shape(x.shape, w.shape, cfg), jnp.result_type(x.dtype, w.dtype))


_conv_p.def_impl(_conv_impl)
_conv_p.def_abstract_eval(_conv_abstract)
mlir.register_lowering(_conv_p, mlir.lower_fun(_conv_impl, multiple_results=False))


def _flip_transpose(w):
    n = w.ndim - 2
    return jnp.flip(w, axis=tuple(range(n))).swapaxes(-1, -2)


def _transposed_cfg(w_shape, cfg):
    """Config of the stride-1 input-gradient convolution (kernel flipped, in/out swapped)."""
    strides, pads, dil, precision = cfg
    n = len(w_shape) - 2
    tpads = tuple(((w_shape[i] - 1) * dil[i] - pads[i][0], (w_shape[i] - 1) * dil[i] - pads[i][1])
                  for i in range(n))
    return ((1,) * n, tpads, dil, precision)


def _flipped_shape(w_shape):
    return tuple(w_shape[:-2]) + (w_shape[-1], w_shape[-2])




# _conv_t_p(g, w; cfg) is the transpose of x ↦ conv(x, w; cfg) (stride 1): an ordinary forward
# convolution of g with flip(w).swapaxes(-1, -2) and padding d(k-1) - p. It is its own bilinear
# primitive (rather than _conv_p applied to the flipped kernel) so that its derivative w.r.t. w,
# needed by double backprop w.r.t. parameters, is the plain kernel-gradient convolution: through
# the flip XLA folds a reversal into that convolution (``rhs_reversal``, non-canonical labels)
# and runs it as a naive loop (~10x slower, measured on the GN step).
_conv_t_p = Primitive("robustjax_conv_transpose")


def _conv_t_impl(g, w, *, cfg):
    return _materialized_conv(g, _flip_transpose(w), _transposed_cfg(w.shape, cfg))


def _conv_t_abstract(g, w, *, cfg):
    shape = _out_shape(g.shape, _flipped_shape(w.shape), _transposed_cfg(w.shape, cfg))
    return jax.core.ShapedArray(shape, jnp.result_type(g.dtype, w.dtype))


_conv_t_p.def_impl(_conv_t_impl)
_conv_t_p.def_abstract_eval(_conv_t_abstract)
mlir.register_lowering(_conv_t_p, mlir.lower_fun(_conv_t_impl, multiple_results=False))


def _transpose_lhs(g, x, w, *, cfg):
    strides, _, _, _ = cfg
    x_shape = tuple(x.aval.shape)
    w_shape = tuple(w.shape)
    if all(s == 1 for s in strides):
        tcfg = _transposed_cfg(w_shape, cfg)
        if _out_shape(g.shape, _flipped_shape(w_shape), tcfg) == x_shape:
            return _conv_t_p.bind(g, w, cfg=cfg)
    # Strided (or irregular) case: JAX's own transpose of the lax convolution.
    return jax.linear_transpose(lambda a: _lax_conv(a, w, cfg),
                                jax.ShapeDtypeStruct(x_shape, g.dtype))(g)[0]


def _transpose_rhs(g, x, w, *, cfg):
    return _kernel_grad(g, x, w.aval.shape, cfg)


ad.defbilinear(_conv_p, _transpose_lhs, _transpose_rhs)


def _t_transpose_lhs(c, g, w, *, cfg):
    # transpose of g ↦ convᵀ(g, w) is the forward convolution
    return _conv_p.bind(c, w, cfg=cfg)


def _t_transpose_rhs(c, g, w, *, cfg):
    # ⟨c, convᵀ(g, k)⟩ = ⟨conv(c, k), g⟩: the kernel gradient with input c and cotangent g
    return _kernel_grad(g, c, w.aval.shape, cfg)


ad.defbilinear(_conv_t_p, _t_transpose_lhs, _t_transpose_rhs)


def _batch_rule(prim, fallback):
    def rule(args, dims, *, cfg):
        a, w = args
        ba, bw = dims
        if bw is None:
            a = jnp.moveaxis(a, ba, 0)
            v, b = a.shape[:2]
            y = prim.bind(a.reshape((v * b,) + a.shape[2:]), w, cfg=cfg)
            return y.reshape((v, b) + y.shape[1:]), 0
        # A batched kernel (e.g. per-example parameters): lax's own batching rule.
        return jax.vmap(lambda u, k: fallback(u, k, cfg), in_axes=(ba, bw))(a, w), 0
    return rule


batching.primitive_batchers[_conv_p] = _batch_rule(_conv_p, _lax_conv)
batching.primitive_batchers[_conv_t_p] = _batch_rule(
    _conv_t_p, lambda g, w, cfg: _lax_conv(g, _flip_transpose(w), _transposed_cfg(w.shape, cfg)))


# ----------------------------------------------------------------------------------------
# Public functions
# ----------------------------------------------------------------------------------------


def _is_zero(t):
    return isinstance(t, SymbolicZero)


def _conv_cjvp(x, w, cfg):
    return _lax_conv(x, w, cfg)


_conv_cjvp = jax.custom_jvp(_conv_cjvp, nondiff_argnums=(2,))


def _conv_cjvp_rule(cfg, primals, tangents):
    x, w = primals
    dx, dw = tangents
    y = _conv_p.bind(x, w, cfg=cfg)
    terms = []
    if not _is_zero(dx):
        terms.append(_conv_p.bind(dx, w, cfg=cfg))
    if not _is_zero(dw):
        terms.append(_conv_p.bind(x, dw, cfg=cfg))
    if not terms:
        return y, jnp.zeros_like(y)
    t = terms[0] if len(terms) == 1 else terms[0] + terms[1]
    return y, t


_conv_cjvp.defjvp(_conv_cjvp_rule, symbolic_zeros=True)


def conv(x: jax.Array, kernel: jax.Array, *, strides: int | Sequence[int] = 1,
         padding: str | Sequence[tuple[int, int]] = "SAME",
         dilation: int | Sequence[int] = 1, precision: Any = None) -> jax.Array:
    """``lax.conv_general_dilated(x, kernel, ...)`` for ``x[N, spatial..., C]``, ``kernel[spatial..., C, O]``.

    Same values as the ``lax`` convolution; its derivatives of every order are computed by
    forms XLA:CPU runs fast (see the module docstring). ``strides``/``dilation`` (kernel
    dilation) are ints or one int per spatial axis; ``padding`` is ``"SAME"``, ``"VALID"`` or
    one ``(low, high)`` pair per spatial axis. Raises ``ValueError`` on mismatched ranks or
    channel counts.
    """
    x = jnp.asarray(x)
    kernel = jnp.asarray(kernel)
    n = kernel.ndim - 2
    if n < 1 or x.ndim != n + 2:
        raise ValueError(f"x must be [N, spatial..., C] with rank kernel.ndim = {kernel.ndim}; "
                         f"got x {x.shape}, kernel {kernel.shape}")
    if x.shape[-1] != kernel.shape[-2]:
        raise ValueError(f"x has {x.shape[-1]} channels but kernel expects {kernel.shape[-2]}")
    strides = _tuple(strides, n, "strides")
    dilation = _tuple(dilation, n, "dilation")
    if any(s < 1 for s in strides) or any(d < 1 for d in dilation):
        raise ValueError(f"strides and dilation must be >= 1; got {strides}, {dilation}")
    if isinstance(padding, str):
        dk = tuple((k - 1) * d + 1 for k, d in zip(kernel.shape[:n], dilation))
        pads = tuple(tuple(p) for p in lax.padtype_to_pads(x.shape[1:-1], dk, strides, padding))
    else:
        pads = tuple((int(a), int(b)) for a, b in padding)
        if len(pads) != n:
            raise ValueError(f"padding must have one (low, high) pair per spatial axis; got {padding}")
    if isinstance(precision, list):
        precision = tuple(precision)
    cfg = (strides, pads, dilation, precision)
    return _conv_cjvp(x, kernel, cfg)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision=None,
                         preferred_element_type=None):
    """Drop-in for ``lax.conv_general_dilated`` that uses :func:`conv` when it applies.

    The fast path needs channels-last dimension numbers (``NHWC``/``HWIO`` and their N-D
    analogues, as ``flax.linen.Conv`` uses), no input (lhs) dilation, one feature and batch
    group, no ``preferred_element_type`` and floating-point operands; anything else calls
    ``lax.conv_general_dilated`` with the same arguments.
    """
    n = rhs.ndim - 2
    fallback = (
        n < 1 or n > 6 or feature_group_count != 1 or batch_group_count != 1
        or preferred_element_type is not None
        or any(d != 1 for d in _tuple(lhs_dilation, n, "lhs_dilation"))
        or not (jnp.issubdtype(lhs.dtype, jnp.floating) and jnp.issubdtype(rhs.dtype, jnp.floating))
        or lhs.dtype != rhs.dtype
    )
    if not fallback:
        try:
            dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
        except (TypeError, ValueError):
            dn = None
        fallback = dn != _dn(n)
    if fallback:
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count, batch_group_count=batch_group_count,
            precision=precision, preferred_element_type=preferred_element_type)
    return conv(lhs, rhs, strides=window_strides, padding=padding,
                dilation=_tuple(rhs_dilation, n, "rhs_dilation"), precision=precision)


class Conv(nn.Conv):
    """``flax.linen.Conv`` computed with :func:`conv_general_dilated` (fast derivatives on CPU).

    Same constructor arguments, parameter names (``kernel``, ``bias``), shapes and
    initialization as ``flax.linen.Conv``; outputs are identical for the same parameters.
    Configurations outside the fast path (feature groups, input dilation, masks) run the
    plain ``lax`` convolution. The zoo's default ``conv`` (``robustjax.nn.create``).
    """

    conv_general_dilated: Any = conv_general_dilated
