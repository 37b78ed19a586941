"""Global spectral norm regularization (Yoshida & Miyato 2017, as written in Roth et al. 2019,
eq. 9–10): ``λ/2 Σ_l σ(W_l)²`` over every layer's linear operator.

Written on plain kernels and layer geometry (no Flax): a layer is a pair
``(kernel, geometry)`` with ``geometry = DENSE`` (``None``, kernel ``[in, out]``) or a
``ConvGeometry`` (one example's input shape, strides, padding, dilation; HWIO kernel), so σ
is the norm of the true convolution operator (Farnia et al. 2019, Algorithm 1), not of the
reshaped kernel. ``robustjax.analysis.layer_spectra.collect_layers`` / ``penalty_layers``
build this list from a Flax model.

The power-iteration vectors persist across steps in a state pytree (one ``v[1, ...in]`` per
layer) and advance ``iters`` (default 1) iterations per call (Roth: a single iteration per
step usually suffices because the penalty decouples from the loss).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from robustjax.core.power import (
    canonicalize_conv_padding,
    check_conv_geometry,
    conv_operator,
    dense_operator,
    power_iteration,
)
from robustjax.core.programs import run
from robustjax.core.validation import check_nonnegative, check_positive_int

__all__ = [
    "DENSE",
    "ConvGeometry",
    "layer_operator",
    "global_spectral_state_init",
    "layer_spectral_norms",
    "global_spectral_penalty",
]

DENSE = None  # geometry of a dense layer (the string "dense" is accepted too)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """Static geometry of a convolution layer (flax ``nn.Conv`` arguments).

    ``input_shape`` is one example's input ``(spatial..., C_in)``; ``dilation`` is the kernel
    dilation. Registered as a static pytree node, so a list of ``(kernel, geometry)`` pairs
    can be passed through ``jax.jit`` with only the kernels traced.
    """

    input_shape: tuple
    strides: Any = 1
    padding: Any = "SAME"
    dilation: Any = 1
    input_dilation: Any = 1
    feature_group_count: int = 1

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(a) for a in self.input_shape))
        canonicalize_conv_padding(self.padding, len(self.input_shape) - 1)
        if isinstance(self.padding, list):
            object.__setattr__(self, "padding", tuple(tuple(p) if not isinstance(p, int) else p for p in self.padding))
        for name in ("strides", "dilation", "input_dilation"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))


def layer_operator(kernel: jax.Array, geometry):
    """``(matvec, rmatvec, v_shape)`` of one layer's linear operator (batch of one vector)."""
    if geometry is DENSE or (isinstance(geometry, str) and geometry == "dense"):
        if kernel.ndim != 2:
            raise ValueError(f"a dense layer needs a kernel [in, out]; got shape {kernel.shape}")
        matvec, rmatvec = dense_operator(kernel)
        return matvec, rmatvec, (1, kernel.shape[0])
    if not isinstance(geometry, ConvGeometry):
        raise ValueError(f"geometry must be DENSE (None) or a ConvGeometry; got {geometry!r}")
    shape = check_conv_geometry(kernel.shape, geometry.input_shape, geometry.feature_group_count)
    matvec, rmatvec = conv_operator(
        kernel, shape, strides=geometry.strides, padding=geometry.padding,
        dilation=geometry.dilation, input_dilation=geometry.input_dilation,
        feature_group_count=geometry.feature_group_count,
    )
    return matvec, rmatvec, (1,) + shape


def _check_layers(layers) -> list:
    layers = list(layers)
    if not layers:
        raise ValueError("layers must be a non-empty list of (kernel, geometry) pairs")
    for i, item in enumerate(layers):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(f"layers[{i}] must be a pair (kernel, geometry); got {type(item).__name__}")
    return layers


def global_spectral_state_init(layers: Sequence, *, key: jax.Array, iters: int = 20) -> tuple:
    """Initial power-iteration vectors: random, then ``iters`` iterations per layer."""
    layers = _check_layers(layers)
    iters = check_positive_int(iters, name="iters")
    keys = jax.random.split(key, len(layers))
    state = []
    for (kernel, geometry), k in zip(layers, keys):
        matvec, rmatvec, v_shape = layer_operator(lax.stop_gradient(kernel), geometry)
        v0 = jax.random.normal(k, v_shape, kernel.dtype)
        state.append(power_iteration(matvec, rmatvec, v0, iters=iters)[2])
    return tuple(state)


def layer_spectral_norms(layers: Sequence, state: Sequence, *, iters: int = 1):
    """Advance each layer's power iteration and return ``(sigmas[L], new_state)``.

    The iteration runs on ``stop_gradient(kernel)``; σ_l = u_lᵀ W_l v_l is then formed with
    the singular vectors as constants (deliberate ``stop_gradient``, Roth et al. 2019 §3.2),
    so ``∂σ_l/∂W_l = u_l v_lᵀ``.
    """
    layers = _check_layers(layers)
    iters = check_positive_int(iters, name="iters")
    state = tuple(state)
    if len(state) != len(layers):
        raise ValueError(f"state must hold one vector per layer ({len(layers)}); got {len(state)}")
    sigmas, new_state = [], []
    for (kernel, geometry), v in zip(layers, state):
        matvec, rmatvec, v_shape = layer_operator(lax.stop_gradient(kernel), geometry)
        if tuple(v.shape) != tuple(v_shape):
            raise ValueError(f"state vector of shape {v.shape} does not match the layer's {v_shape}")
        _, u, v = power_iteration(matvec, rmatvec, v, iters=iters)
        u, v = lax.stop_gradient(u), lax.stop_gradient(v)
        live_matvec = layer_operator(kernel, geometry)[0]
        sigmas.append(jnp.sum(u * live_matvec(v)))
        new_state.append(v)
    return jnp.stack(sigmas), tuple(new_state)


def global_spectral_penalty(layers: Sequence, state: Sequence, *, lam: float, iters: int = 1):
    """``λ/2 Σ_l σ(W_l)²`` and the advanced state (Roth et al. 2019, eq. 10; Yoshida & Miyato).

    Args:
      layers: ``[(kernel, geometry), ...]``, geometry ``DENSE`` or ``ConvGeometry``.
      state: one vector per layer, from ``global_spectral_state_init`` or the previous call.
      lam: λ ≥ 0. iters: power iterations per call (default 1).

    Returns ``(penalty, new_state)``. The parameter gradient of the penalty is
    ``λ σ_l u_l v_lᵀ`` per layer (for a convolution: the gradient of ``uᵀ conv(W, v)``).
    """
    check_nonnegative(lam, name="lam")
    iters = check_positive_int(iters, name="iters")
    # Outside a trace: one compiled program per layer geometry, reused for new kernels.
    layers = [(k, DENSE if isinstance(g, str) and g == "dense" else g) for k, g in _check_layers(layers)]
    return run(_global_penalty_body, (layers, tuple(state), lam), dict(iters=iters))


def _global_penalty_body(layers, state, lam, *, iters):
    sigmas, new_state = layer_spectral_norms(layers, state, iters=iters)
    return 0.5 * lam * jnp.sum(jnp.square(sigmas)), new_state
