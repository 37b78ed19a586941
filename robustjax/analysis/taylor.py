"""Quality of the Taylor approximation of the loss along a direction (Ma, Faghri, Farahmand 2020,
SOAR, §4.3, Fig. 1 and Fig. 4).

SOAR Fig. 1/4 compare, on the segment ``x + t η``, the exact loss ``ℓ(x + t η)`` with its
second-order Taylor expansions at ``x``, with the exact Hessian-vector product

    ℓ(x) + t ∇ℓ(x)ᵀη + t²/2 · ηᵀ ∇²ℓ(x) η,

and with the finite-difference curvature of SOAR eq. 9,
``ηᵀ ∇²ℓ(x) η ≈ ‖η‖ ηᵀ (∇ℓ(x + h η̃) − ∇ℓ(x)) / h``, ``η̃ = η/‖η‖``, for a few steps ``h``.
Here ``η`` is normalized to a unit direction ``d̂`` and ``t`` is the ℓ2 distance in pixel units
(SOAR's ``t ∈ [0, 1]`` on ``η`` is ``radii = ‖η‖ · t``). The first-order expansion is kept too.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from robustjax.analysis.inputs import check_callable, check_like, check_radii, run_compiled, unit_directions
from robustjax.analysis.results import AnalysisResult, per_example_field, quantile_summary
from robustjax.core.hvp import input_grad, input_hvp, input_hvp_finite_difference
from robustjax.core.validation import check_inputs

__all__ = ["TaylorResult", "taylor_approximation_quality"]


def _dot(a, b):
    return jnp.sum((a * b).reshape(a.shape[0], -1), axis=1)


@dataclasses.dataclass(frozen=True)
class TaylorResult(AnalysisResult):
    """Exact loss vs its Taylor approximations along unit directions (SOAR Fig. 1, Fig. 4).

    Fields (``B`` examples, ``T`` radii, ``H`` finite-difference steps):
      radii: ``[T]`` ℓ2 distances ``t`` (pixel units). fd_steps: ``[H]`` steps ``h`` (may be empty).
      loss: ``[B, T]`` exact ``ℓ(x + t d̂)``.
      first_order: ``[B, T]`` ``ℓ(x) + t ∇ℓᵀd̂``.
      second_order: ``[B, T]`` ``first_order + t²/2 · d̂ᵀ∇²ℓ(x)d̂`` (exact HVP).
      second_order_fd: ``[B, H, T]`` the same with SOAR eq. 9's FD curvature at step ``h``, or
        ``None`` when no steps are given.
      slope: ``[B]`` ``∇ℓ(x)ᵀd̂``. curvature: ``[B]`` ``d̂ᵀ∇²ℓ(x)d̂``.
    """

    radii: np.ndarray
    fd_steps: np.ndarray
    loss: np.ndarray = per_example_field()
    first_order: np.ndarray = per_example_field()
    second_order: np.ndarray = per_example_field()
    slope: np.ndarray = per_example_field()
    curvature: np.ndarray = per_example_field()
    second_order_fd: np.ndarray | None = per_example_field(optional=True)

    def errors(self) -> dict[str, np.ndarray]:
        """``{approximation: |approximation − loss| [B, T]}`` for every approximation."""
        out = {
            "first_order": np.abs(self.first_order - self.loss),
            "second_order": np.abs(self.second_order - self.loss),
        }
        if self.second_order_fd is not None:
            for j, h in enumerate(self.fd_steps):
                out[f"second_order_fd_h={float(h):g}"] = np.abs(self.second_order_fd[:, j] - self.loss)
        return out

    def summary(self) -> dict[str, Any]:
        """Quantiles over examples, per radius, of every approximation's absolute error."""
        return {
            "num_examples": int(self.loss.shape[0]),
            "radii": self.radii,
            "fd_steps": self.fd_steps,
            "mean_loss": self.loss.mean(axis=0),
            "absolute_error": {name: quantile_summary(err) for name, err in self.errors().items()},
        }


def _taylor_body(x, d, ts, fd, *, loss_fn):
    loss0 = loss_fn(x)
    slope = _dot(input_grad(loss_fn, x), d)
    curvature = _dot(input_hvp(loss_fn, x, d), d)
    exact = lax.map(lambda t: loss_fn(x + t * d), ts).T  # [B, T]
    first = loss0[:, None] + ts[None] * slope[:, None]
    second = first + 0.5 * ts[None] ** 2 * curvature[:, None]
    if fd.shape[0] == 0:
        return exact, first, second, slope, curvature, None
    # SOAR eq. 9 with ‖d̂‖ = 1: d̂ᵀ(∇ℓ(x + h d̂) − ∇ℓ(x)) / h, one h at a time
    curv_fd = lax.map(lambda h: _dot(input_hvp_finite_difference(loss_fn, x, d, h=h), d), fd).T  # [B, H]
    second_fd = first[:, None, :] + 0.5 * ts[None, None] ** 2 * curv_fd[:, :, None]
    return exact, first, second, slope, curvature, second_fd


def taylor_approximation_quality(
    loss_fn: Callable,
    x: jax.Array,
    directions: jax.Array,
    radii,
    *,
    fd_steps=(),
) -> TaylorResult:
    """Exact loss vs first/second-order Taylor approximations along directions (SOAR Fig. 1, 4).

    Ma, Faghri, Farahmand 2020, Fig. 1 and Fig. 4 (the expansion of §4.1, eq. 4; the FD
    curvature of eq. 9 for each ``h`` in ``fd_steps``).

    Args:
      loss_fn: ``x[B, ...] -> loss[B]``, one loss per example (close over the labels), examples
        independent.
      x: expansion points ``[B, ...]``.
      directions: ``[B, ...]`` (normalized to unit ℓ2 per example here; zero → constant path).
      radii: non-empty 1-D sequence of distances ``t ≥ 0`` (pixel ℓ2 units).
      fd_steps: FD steps ``h > 0`` (pixel ℓ2 units) for SOAR eq. 9's curvature; ``()`` = none.

    Returns:
      :class:`TaylorResult`. A quadratic loss has ``second_order == loss`` at every t; a cubic
      one leaves the residual ``t³/6 · D³ℓ[d̂, d̂, d̂]``.
    """
    check_callable(loss_fn, name="loss_fn", signature="x[B, ...] -> loss[B]")
    x = check_inputs(x, name="x")
    d = unit_directions(check_like(directions, x, name="directions"))
    radii = check_radii(radii, name="radii")
    try:
        fd = np.asarray(fd_steps, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"fd_steps must be a sequence of steps h > 0; got {fd_steps!r}") from None
    if fd.size and not (np.all(np.isfinite(fd)) and np.all(fd > 0)):
        raise ValueError(f"fd_steps must be finite steps h > 0; got {fd.tolist()}")
    out = jax.eval_shape(loss_fn, x)
    if tuple(out.shape) != (x.shape[0],):
        raise ValueError(f"loss_fn must return one loss per example, shape ({x.shape[0]},); got {tuple(out.shape)}")
    exact, first, second, slope, curvature, second_fd = run_compiled(
        _taylor_body, (x, d, jnp.asarray(radii, x.dtype), jnp.asarray(fd, x.dtype)), loss_fn=loss_fn
    )
    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
    return TaylorResult(
        radii=radii,
        fd_steps=fd,
        loss=f64(exact),
        first_order=f64(first),
        second_order=f64(second),
        slope=f64(slope),
        curvature=f64(curvature),
        second_order_fd=f64(second_fd) if fd.size else None,
    )
