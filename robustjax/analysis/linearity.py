"""Local linearity and the largest singular value along a path (Roth, Kilcher, Hofmann 2019,
§5.3, Fig. 2).

Both walk from ``x`` along unit directions ``d̂ = d / ‖d‖₂`` (per example) to ``x + t·d̂`` for every
radius ``t`` (an ℓ2 distance in pixel units, data in [0, 1]); the points are not clipped to the
data range, as in the paper's measurement of ``‖z‖₂``. ``directions`` are e.g. adversarial
perturbations (Roth's proxy for the least linear direction) or Gaussian noise.

* :func:`local_linearity` — deviation from linearity of a map ``φ`` (logits or a hidden layer,
  Roth uses ``φ^{L−1}``): ``‖φ(x + t d̂) − φ(x) − t J_φ(x) d̂‖₂`` (Fig. 2 left), and the same divided
  by the actual change ``‖φ(x + t d̂) − φ(x)‖₂``.
* :func:`sigma_along_path` — ``σ_max(J_f(x + t d̂))`` by the per-example power iteration of
  Roth eq. 11 (``core.jacobian_top_singular``), Fig. 2 right.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from robustjax.analysis.inputs import (
    check_callable,
    check_like,
    check_radii,
    per_example_l2,
    run_compiled,
    unit_directions,
)
from robustjax.analysis.results import AnalysisResult, per_example_field, quantile_summary
from robustjax.core.jacobian import jacobian_top_singular
from robustjax.core.validation import check_inputs, check_positive_int

__all__ = ["LinearityResult", "SigmaPathResult", "local_linearity", "sigma_along_path"]


@dataclasses.dataclass(frozen=True)
class LinearityResult(AnalysisResult):
    """Deviation from local linearity along unit directions (Roth et al. 2019, Fig. 2 left).

    Fields (``B`` examples, ``T`` radii):
      radii: ``[T]`` distances ``t = ‖z‖₂`` (pixel units).
      deviation: ``[B, T]`` ``‖φ(x + t d̂) − φ(x) − t J d̂‖₂`` (the paper's quantity, in φ's units).
      change: ``[B, T]`` ``‖φ(x + t d̂) − φ(x)‖₂``.
      relative_deviation: ``[B, T]`` ``deviation / change``; ``0`` where both are 0 (t = 0, a
        zero direction, a flat φ), ``inf`` where φ did not move but its linearization did.
      linear_change: ``[B]`` ``‖J d̂‖₂``, the slope of the linearization.
    """

    radii: np.ndarray
    deviation: np.ndarray = per_example_field()
    change: np.ndarray = per_example_field()
    relative_deviation: np.ndarray = per_example_field()
    linear_change: np.ndarray = per_example_field()

    def summary(self) -> dict[str, Any]:
        """Quantiles over examples at every radius, absolute and relative."""
        return {
            "num_examples": int(self.deviation.shape[0]),
            "radii": self.radii,
            "deviation": quantile_summary(self.deviation),
            "relative_deviation": quantile_summary(self.relative_deviation),
            "mean_linear_change": float(np.mean(self.linear_change)),
        }


@dataclasses.dataclass(frozen=True)
class SigmaPathResult(AnalysisResult):
    """``σ_max`` of the input Jacobian along unit directions (Roth et al. 2019, Fig. 2 right).

    Fields: ``radii [T]`` (pixel ℓ2 units), ``sigma [B, T]`` (logits per pixel-ℓ2 unit),
    ``iters`` power iterations per radius.
    """

    radii: np.ndarray
    sigma: np.ndarray = per_example_field()
    iters: int

    def summary(self) -> dict[str, Any]:
        """Quantiles of σ over examples at every radius."""
        return {
            "num_examples": int(self.sigma.shape[0]),
            "radii": self.radii,
            "iters": int(self.iters),
            "sigma": quantile_summary(self.sigma),
        }


def _linearity_body(x, d, ts, *, fn):
    phi0, jd = jax.jvp(fn, (x,), (d,))

    def at(t):
        diff = fn(x + t * d) - phi0
        # t = 0 is x itself: exact zeros, not the rounding difference between fn(x) compiled
        # inside this loop and inside jax.jvp (which made the float32 ratio 0/0 ≈ 1)
        zero = t == 0
        return (jnp.where(zero, 0.0, per_example_l2(diff - t * jd)),
                jnp.where(zero, 0.0, per_example_l2(diff)))

    dev, change = lax.map(at, ts)  # [T, B] each
    return dev, change, per_example_l2(jd)


def local_linearity(fn: Callable, x: jax.Array, directions: jax.Array, radii) -> LinearityResult:
    """Deviation from linearity of ``fn`` along ``directions`` (Roth et al. 2019, §5.3, Fig. 2 left).

    ``‖φ(x + t d̂) − (φ(x) + t J_φ(x) d̂)‖₂`` for every example and radius ``t``, with
    ``d̂ = d / ‖d‖₂`` (so ``z = t d̂`` has ``‖z‖₂ = t``) and ``J_φ d̂`` one forward-mode product.

    Args:
      fn: ``x[B, ...] -> φ[B, ...]``, the logits or a hidden layer (``features_fn``), examples
        independent (BatchNorm in inference mode).
      x: inputs ``[B, ...]`` in [0, 1].
      directions: ``[B, ...]``, any length (normalized here); a zero direction gives 0.
      radii: non-empty 1-D sequence of distances ``t ≥ 0`` in pixel ℓ2 units.

    Returns:
      :class:`LinearityResult`. A map that is linear on the path has deviation 0 at every t.
    """
    check_callable(fn, name="fn", signature="x[B, ...] -> φ[B, ...]")
    x = check_inputs(x, name="x")
    d = unit_directions(check_like(directions, x, name="directions"))
    radii = check_radii(radii, name="radii")
    out = jax.eval_shape(fn, x)
    if len(out.shape) < 1 or out.shape[0] != x.shape[0]:
        raise ValueError(f"fn must return one output per example [B={x.shape[0]}, ...]; got {tuple(out.shape)}")
    dev, change, jd_norm = run_compiled(_linearity_body, (x, d, jnp.asarray(radii, x.dtype)), fn=fn)
    dev, change = np.asarray(dev, np.float64).T, np.asarray(change, np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(change > 0, dev / np.where(change > 0, change, 1.0),
                            np.where(dev > 0, np.inf, 0.0))
    return LinearityResult(
        radii=radii,
        deviation=dev,
        change=change,
        relative_deviation=relative,
        linear_change=np.asarray(jd_norm, np.float64),
    )


def _sigma_body(x, d, ts, v0, *, logits_fn, iters):
    def step(v, t):
        sigma, _, v_new = jacobian_top_singular(logits_fn, x + t * d, iters=iters, v0=v)
        return v_new, sigma

    return lax.scan(step, v0, ts)[1]  # [T, B]


def sigma_along_path(
    logits_fn: Callable,
    x: jax.Array,
    directions: jax.Array,
    radii,
    *,
    iters: int,
    key: jax.Array,
) -> SigmaPathResult:
    """``σ_max(J_f(x + t d̂))`` for every radius (Roth et al. 2019, §5.3, Fig. 2 right).

    Power iteration (Roth eq. 11: forward pass ``J v`` by ``jvp``, backward pass ``Jᵀ u`` by
    ``vjp``, all examples in one batched call) with ``iters`` iterations per radius. The first
    radius starts from a Gaussian vector drawn with ``key``; every later radius is warm-started
    from the previous radius's right singular vector (the path is continuous), all in one
    ``lax.scan``. ``σ`` is in logits per unit ℓ2 pixel distance.

    Args:
      logits_fn: ``x[B, ...] -> logits[B, K]``, independent examples.
      x: inputs ``[B, ...]``. directions: ``[B, ...]`` (normalized here; zero → σ at ``x``).
      radii: non-empty 1-D sequence of distances ``t ≥ 0`` (pixel ℓ2 units).
      iters: power iterations per radius (≥ 1). key: PRNG key of the random start.
    """
    check_callable(logits_fn, name="logits_fn", signature="x[B, ...] -> logits[B, K]")
    x = check_inputs(x, name="x")
    d = unit_directions(check_like(directions, x, name="directions"))
    radii = check_radii(radii, name="radii")
    iters = check_positive_int(iters, name="iters")
    if key is None:
        raise ValueError("key must be a PRNG key (random start of the power iteration); got None")
    v0 = jax.random.normal(key, x.shape, x.dtype)
    sigma = run_compiled(_sigma_body, (x, d, jnp.asarray(radii, x.dtype), v0), logits_fn=logits_fn, iters=iters)
    return SigmaPathResult(radii=radii, sigma=np.asarray(sigma, np.float64).T, iters=iters)
