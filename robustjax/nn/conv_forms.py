"""The forms in which ``robustjax.nn.conv`` hands its convolutions to XLA (issues 7, 18).

One convolution can be written several ways that compute the same products; XLA:CPU (jaxlib
0.10) runs them at very different speeds, because it gives some of them to YNNPACK and others
to its own Eigen convolution:

* :func:`ynn_declined_conv`: a 2-D convolution on its input dilated by 2 along one axis, which
  XLA never gives to YNNPACK; the layer uses it, on CPU, for stride-1 forward convolutions of
  >= ``YNN_AVOID_MIN_CHANNELS`` input channels (:func:`materialized_conv`) and for 2-D kernel
  gradients (:func:`kernel_gradient`);
* :func:`kernel_gradient`: the kernel gradient as one canonical NHWC x HWIO convolution between
  explicit transposes (canonical labels: XLA:CPU keeps non-canonical ones as naive loops inside
  ``while`` bodies).

Forms that only help XLA:CPU are chosen when the program is lowered (:func:`on_cpu`, i.e.
``lax.platform_dependent``): other platforms get the plain convolution. Every form is exact:
``tests/test_nn_conv_forms.py`` compares each with ``lax.conv_general_dilated`` and its autodiff
in float64.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
from jax import lax

__all__ = [
    "YNN_AVOID_MIN_CHANNELS", "dimension_numbers", "lax_conv", "out_shape", "ynn_disabled",
    "ynn_declined_conv", "on_cpu", "materialized_conv", "kernel_gradient",
]

#: Stride-1 2-D convolutions with at least this many input channels get the YNNPACK-declined
#: forward form under differentiation on CPU (smaller ones, e.g. a 1-channel MNIST input layer,
#: were measured faster in YNNPACK than in Eigen). Set to a huge number to disable the form.
YNN_AVOID_MIN_CHANNELS = 16


def _spec(n: int):
    sp = "HWDXYZ"[:n] if n <= 6 else None
    if sp is None:
        raise ValueError(f"at most 6 spatial dimensions are supported; got {n}")
    return ("N" + sp + "C", sp + "IO", "N" + sp + "C")


def dimension_numbers(n: int):
    """``lax.ConvDimensionNumbers`` of an ``n``-D channels-last convolution (NHWC, HWIO, NHWC)."""
    s = _spec(n)
    return lax.ConvDimensionNumbers(
        lhs_spec=(0, n + 1) + tuple(range(1, n + 1)),
        rhs_spec=(n + 1, n) + tuple(range(n)),
        out_spec=(0, n + 1) + tuple(range(1, n + 1)),
    ) if s else None


def lax_conv(x, w, cfg):
    """The plain ``lax.conv_general_dilated`` of ``cfg = (strides, pads, dilation, precision)``."""
    strides, pads, dil, precision = cfg
    return lax.conv_general_dilated(x, w, strides, pads, rhs_dilation=dil,
                                    dimension_numbers=dimension_numbers(w.ndim - 2),
                                    precision=precision)


def out_shape(x_shape, w_shape, cfg):
    """The output shape of :func:`lax_conv` (empty spatial axes give 0)."""
    strides, pads, dil, _ = cfg
    n = len(w_shape) - 2
    sp = []
    for i in range(n):
        dk = (w_shape[i] - 1) * dil[i] + 1
        size = x_shape[1 + i] + pads[i][0] + pads[i][1] - dk
        sp.append(max(size // strides[i] + 1, 0) if size >= 0 else 0)
    return (x_shape[0],) + tuple(sp) + (w_shape[-1],)


def ynn_disabled() -> bool:
    """True when ``XLA_FLAGS`` turns XLA:CPU's YNNPACK fusions off (then the plain form is best)."""
    for flag in os.environ.get("XLA_FLAGS", "").split():
        if flag.startswith("--xla_cpu_experimental_ynn_fusion_type="):
            items = [v for v in flag.split("=", 1)[1].lower().split(",") if v]
            if any(v[0] in "+-" for v in items):  # edits of the default list
                return any(v[0] == "-" and "convolution" in v for v in items)
            return not any("convolution" in v for v in items)  # an explicit list
    return False


def ynn_declined_conv(lhs, rhs, window_strides, padding, rhs_dilation, precision):
    """``lax.conv_general_dilated(lhs, rhs, ...)`` (2-D, NHWC x HWIO) in a form XLA:CPU never
    hands to YNNPACK: the input dilated by 2 along the first spatial axis (base dilation), with
    the window stride, the kernel dilation and both paddings of that axis doubled.

    Why (issue 18): jaxlib 0.10's XLA:CPU gives a 2-D convolution to YNNPACK unless, among other
    things, its input has base dilation, its output or kernel is spatially larger than its input,
    or both feature counts are <= 16; individually, outside a fused inference pass, YNNPACK runs
    two kinds the SGR MNIST CNN's training step needs slowly (CPU time at batch 128, machine
    shared with other jobs): the 26x26x32 -> 24x24x32 forward convolution (65 ms against 16 ms in
    XLA's Eigen convolution) and every kernel gradient (26x26x32 -> 3x3x32x32: 64 ms against
    21 ms). Window position ``t`` of output ``i`` reads dilated row ``2(i·s + t·d) - 2·p_lo``,
    i.e. the original row ``i·s + t·d - p_lo``, and never an inserted zero, so this form computes
    exactly the products of the plain one (bit-identical in the measurements, exact in float64
    tests) and Eigen runs it about as fast (kernel gradients 21 vs 21 ms, the forward above
    17.5 vs 16 ms; the 3x3 forwards on 12x12 and 10x10 inputs 5.8 and 7.7 ms against 7.6 and
    10.4 ms for the extra-row form this replaces, which padded the output one row taller than
    the input).
    """
    window_strides = (2 * window_strides[0],) + tuple(window_strides[1:])
    rhs_dilation = (2 * rhs_dilation[0],) + tuple(rhs_dilation[1:])
    padding = ((2 * padding[0][0], 2 * padding[0][1]),) + tuple(tuple(p) for p in padding[1:])
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding,
                                    lhs_dilation=(2,) + (1,) * (len(padding) - 1),
                                    rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers(2),
                                    precision=precision)


def on_cpu(args, cpu, default):
    """``cpu(*args)`` when the program is compiled for CPU, ``default(*args)`` elsewhere
    (decided when the program is lowered: ``lax.platform_dependent``)."""
    return lax.platform_dependent(*args, cpu=cpu, default=default)


def materialized_conv(x, w, cfg):
    """The convolution in the form XLA:CPU runs fastest when its output is materialized.

    2-D, stride 1, >= ``YNN_AVOID_MIN_CHANNELS`` input channels, an output and kernel no larger
    than the input (the convolutions XLA:CPU would give YNNPACK): on CPU :func:`ynn_declined_conv`, so
    that XLA's Eigen convolution runs it. Otherwise (other platforms, smaller convolutions such
    as a 1-channel MNIST input layer, which YNNPACK runs faster, and when ``XLA_FLAGS`` keeps
    YNNPACK away from convolutions) the plain convolution.
    """
    strides, pads, dil, precision = cfg
    n = w.ndim - 2
    out = out_shape(x.shape, w.shape, cfg)
    larger = any(o > i or k > i for o, k, i in zip(out[1:-1], w.shape[:2], x.shape[1:-1]))
    if (n != 2 or any(v != 1 for v in strides) or x.shape[-1] < YNN_AVOID_MIN_CHANNELS
            or 0 in out or larger or ynn_disabled()):
        return lax_conv(x, w, cfg)
    return on_cpu((x, w), lambda a, b: ynn_declined_conv(a, b, strides, pads, dil, precision),
                   lambda a, b: lax_conv(a, b, cfg))



def kernel_gradient(g, x, w_shape, cfg):
    """∂⟨g, conv(x, k)⟩/∂k as one canonical (NHWC x HWIO) convolution between explicit
    transposes: ``dk[c, i, o] = Σ_{b, h} x_pad[b, h·s + i·d, c] g[b, h, o]`` is a convolution of
    ``x`` with batch and channel axes swapped (``[C, H.., B]``) by the kernel ``g`` laid out
    ``[H_out.., B, O]``, with window stride ``d`` (the forward's kernel dilation), kernel
    dilation ``s`` (the forward's stride), the forward's low padding and a high padding (possibly
    negative: a crop) that makes the output exactly the kernel's size.

    Same values as JAX's transpose rule for ``lax.conv_general_dilated`` (tested), but JAX's rule
    hands XLA a convolution with non-canonical dimension labels, which XLA:CPU transposes into
    canonical form only outside loops; inside a ``lax.scan``/``while`` body (a microbatched
    gradient, SOAR's penalty) it ran as a naive loop, ~30x slower (measured: 650 ms for one
    24x24x32 -> 3x3x32x32 kernel gradient at batch 64).

    On CPU, 2-D kernel gradients take :func:`ynn_declined_conv`'s form, which XLA's YNNPACK path
    declines (issue 18): they run in XLA's own convolution under any compile options.
    """
    strides, pads, dil, precision = cfg
    n = len(w_shape) - 2
    k_sp, g_sp = tuple(w_shape[:n]), g.shape[1:-1]
    hi = tuple((k - 1) * d + (o - 1) * s + 1 - x_len - p[0]
               for k, d, o, s, x_len, p in zip(k_sp, dil, g_sp, strides, x.shape[1:-1], pads))
    xt = jnp.moveaxis(x, (0, n + 1), (n + 1, 0))          # [C, H.., B]
    gt = jnp.moveaxis(g, 0, n).astype(x.dtype)             # [H_out.., B, O]
    window_strides, padding = dil, tuple((p[0], h) for p, h in zip(pads, hi))

    def plain(xt, gt):
        return lax.conv_general_dilated(xt, gt, window_strides, padding, rhs_dilation=strides,
                                        dimension_numbers=dimension_numbers(n), precision=precision)

    if n == 2:  # on CPU in the form YNNPACK declines (it runs these slowly; see there)
        out = on_cpu((xt, gt), lambda a, b: ynn_declined_conv(
            a, b, window_strides, padding, strides, precision), plain)
    else:
        out = plain(xt, gt)                                # [C, k.., O]
    return jnp.moveaxis(out, 0, n).astype(g.dtype)         # [k.., C, O]
