"""Norm gain and input-gradient norms of a network (Farnia, Zhang, Tse 2019, §5.1, Fig. 2).

* :func:`norm_gain` — Fig. 2a: ``‖f(x)‖₂ / ‖x‖₂`` per example. Spectral normalization with
  bound β bounds it by ``β^d`` (plus the biases' contribution); without it the gain grows with
  training.
* :func:`input_gradient_norms` — Fig. 2b: ``‖∇ₓ ℓ(f(x), y)‖₂`` per example (softmax
  cross-entropy). Theorems 2–3 assume it is at least κ > 0 around the data; the summary's
  minimum and low quantiles are the empirical κ.

Both are pure and batch-first (one row per example, computed from that example only); ``x`` is
processed in chunks of ``batch_size`` (the last one padded) with one compiled program, shared by
every model of one architecture when ``logits_fn`` is a pytree-callable (``inputs.run_compiled``). Results
follow ``robustjax.analysis.results``; plots in ``plots_farnia``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.analysis.attacked import check_logits_fn
from robustjax.analysis.inputs import run_compiled
from robustjax.analysis.results import AnalysisResult, per_example_field, quantile_summary
from robustjax.core.losses import cross_entropy
from robustjax.core.validation import check_inputs, check_labels, check_positive_int

__all__ = ["NormGain", "InputGradientNorms", "norm_gain", "input_gradient_norms"]

_FLOOR = 1e-12


def _summary(values: np.ndarray) -> dict[str, Any]:
    out = {"num_examples": int(values.size), "min": float(np.min(values)), "max": float(np.max(values))}
    out.update({k: float(v) for k, v in quantile_summary(values).items()})
    return out


def _chunked(fn: Callable, arrays: tuple, batch_size: int) -> list[np.ndarray]:
    """Apply jitted ``fn(*arrays_chunk) -> tuple of [b, ...]`` over padded chunks; concatenate."""
    n = arrays[0].shape[0]
    parts = None
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        pad = np.concatenate([idx, np.full(batch_size - idx.size, idx[-1])]) if idx.size < batch_size else idx
        out = fn(*(a[jnp.asarray(pad)] for a in arrays))
        out = [np.asarray(o, np.float64)[: idx.size] for o in out]
        parts = [[o] for o in out] if parts is None else [p + [o] for p, o in zip(parts, out)]
    return [np.concatenate(p) for p in parts]


def _batch(batch_size: Any, n: int) -> int:
    return min(check_positive_int(batch_size, name="batch_size"), n)


def _norm_body(xb, *, logits_fn):
    out = logits_fn(xb)
    flat_x = xb.reshape(xb.shape[0], -1)
    return jnp.linalg.norm(flat_x, axis=1), jnp.linalg.norm(out.reshape(out.shape[0], -1), axis=1)


def _gradient_body(xb, yb, *, logits_fn):
    def total(z):
        losses = cross_entropy(logits_fn(z), yb)
        return jnp.sum(losses), losses

    g, losses = jax.grad(total, has_aux=True)(xb)
    return jnp.linalg.norm(g.reshape(g.shape[0], -1), axis=1), losses


@dataclasses.dataclass(frozen=True)
class NormGain(AnalysisResult):
    """``input_norm [B] = ‖x‖₂``, ``output_norm [B] = ‖f(x)‖₂``, ``gain [B]`` their ratio
    (Farnia Fig. 2a; an all-zero input divides by 1e-12, never NaN)."""

    input_norm: np.ndarray = per_example_field()
    output_norm: np.ndarray = per_example_field()
    gain: np.ndarray = per_example_field()

    def summary(self) -> dict[str, Any]:
        return _summary(self.gain)


def norm_gain(logits_fn: Callable, x: Any, *, batch_size: int = 256) -> NormGain:
    """Per-example ℓ2 norm gain ``‖f(x)‖₂ / ‖x‖₂`` of the network (Farnia et al. 2019, §5.1,
    Fig. 2a), norms over all non-batch axes; ``f`` = ``logits_fn`` (pixel inputs in [0, 1],
    logits out).
    """
    check_logits_fn(logits_fn)
    x = check_inputs(x, name="x")

    def fn(xb):
        return run_compiled(_norm_body, (xb,), logits_fn=logits_fn)

    in_norm, out_norm = _chunked(fn, (jnp.asarray(x),), _batch(batch_size, x.shape[0]))
    return NormGain(input_norm=in_norm, output_norm=out_norm, gain=out_norm / np.maximum(in_norm, _FLOOR))


@dataclasses.dataclass(frozen=True)
class InputGradientNorms(AnalysisResult):
    """``grad_norm [B] = ‖∇ₓ ℓ(f(x), y)‖₂`` and ``loss [B]`` (cross-entropy) per example
    (Farnia Fig. 2b). ``summary()``: min (the empirical κ of Theorems 2–3), quantiles, max."""

    grad_norm: np.ndarray = per_example_field()
    loss: np.ndarray = per_example_field()

    def summary(self) -> dict[str, Any]:
        out = _summary(self.grad_norm)
        out["mean_loss"] = float(np.mean(self.loss))
        return out


def input_gradient_norms(logits_fn: Callable, x: Any, y: Any, *, batch_size: int = 256) -> InputGradientNorms:
    """Per-example ℓ2 norm of the input gradient of the cross-entropy loss,
    ``‖∇ₓ ℓ(f(x), y)‖₂`` (Farnia et al. 2019, Fig. 2b; κ of Theorems 2–3 is its lower bound).

    Args:
      logits_fn: ``x[B, ...] -> logits[B, K]`` (examples independent: the gradient of the
        summed loss has row ``i`` equal to example ``i``'s gradient).
      x: inputs ``[B, ...]``; y: integer labels ``[B]``; batch_size: examples per chunk.
    """
    check_logits_fn(logits_fn)
    x = check_inputs(x, name="x")
    y = check_labels(y, x, name="y")
    k = jax.eval_shape(logits_fn, jax.ShapeDtypeStruct((1,) + tuple(x.shape[1:]), x.dtype))
    if len(k.shape) != 2:
        raise ValueError(f"logits_fn must return logits [B, K]; got shape {k.shape} for one example")
    check_labels(y, x, num_classes=int(k.shape[1]), name="y")

    def fn(xb, yb):
        return run_compiled(_gradient_body, (xb, yb), logits_fn=logits_fn)

    grad_norm, loss = _chunked(fn, (jnp.asarray(x), jnp.asarray(y)), _batch(batch_size, x.shape[0]))
    return InputGradientNorms(grad_norm=grad_norm, loss=loss)
