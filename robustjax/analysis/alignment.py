"""Alignment of perturbations with the input Jacobian's singular vectors (Roth, Kilcher, Hofmann
2019, §5.2, Fig. 1 right and Fig. 3 right).

For every example the full input Jacobian ``J_f(x_i)`` ``[K, D]`` is materialized
(``core.input_jacobian``: K batched backward passes) and decomposed by SVD,
``J = Σ_r σ_r u_r v_rᵀ``. A perturbation ``δ_i`` is then compared with the right singular
vectors ``v_r`` (input space): ``|cos(δ_i, v_r)| = |⟨δ_i, v_r⟩| / ‖δ_i‖₂`` per rank ``r``, and the
share of ``‖δ_i‖²`` that lies in the top-k singular subspace, ``Σ_{r≤k} ⟨δ_i, v_r⟩² / ‖δ_i‖²``
(1 when ``δ_i`` is in the span of ``v_1 … v_k``; about ``k / D`` for a random direction). The
sign of a singular vector is arbitrary, hence the absolute value. A random-direction baseline
(Gaussian ``N(0, I)`` per example, or directions the caller gives) is measured the same way.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.analysis.inputs import check_callable, check_like, run_compiled
from robustjax.analysis.results import AnalysisResult, per_example_field, quantile_summary
from robustjax.core.jacobian import jacobian_singular_values
from robustjax.core.validation import check_inputs, check_positive_int

__all__ = ["AlignmentResult", "perturbation_alignment", "subspace_alignment"]

_TINY = 1e-30


@dataclasses.dataclass(frozen=True)
class AlignmentResult(AnalysisResult):
    """Per-example alignment of ``delta`` with the top-k right singular vectors of ``J_f(x)``.

    Fields (``B`` examples, ``r = min(K, D)`` singular values, ``k ≤ r`` compared ranks):
      singular_values: ``[B, r]`` σ of each example's Jacobian, descending (Roth Fig. 1 left).
      cosines: ``[B, k]`` ``|cos(δ_i, v_r)|`` for ranks ``r = 1 … k`` (Fig. 1 right).
      share: ``[B]`` fraction of ``‖δ_i‖²`` in ``span(v_1 … v_k)``, in [0, 1].
      delta_norm: ``[B]`` ``‖δ_i‖₂`` (pixel units).
      k: number of ranks compared.
      random_cosines / random_share: the same for the baseline directions, or ``None``.
    A zero ``δ_i`` has cosines and share 0.
    """

    singular_values: np.ndarray = per_example_field()
    cosines: np.ndarray = per_example_field()
    share: np.ndarray = per_example_field()
    delta_norm: np.ndarray = per_example_field()
    k: int
    random_cosines: np.ndarray | None = per_example_field(optional=True)
    random_share: np.ndarray | None = per_example_field(optional=True)

    def summary(self) -> dict[str, Any]:
        """Means over examples per rank (cosines, σ), share quantiles, baseline if present."""
        out: dict[str, Any] = {
            "num_examples": int(self.cosines.shape[0]),
            "k": int(self.k),
            "mean_cosine_by_rank": self.cosines.mean(axis=0),
            "mean_singular_value_by_rank": self.singular_values.mean(axis=0),
            "share": quantile_summary(self.share),
            "mean_delta_norm": float(self.delta_norm.mean()),
        }
        if self.random_cosines is not None:
            out["random_mean_cosine_by_rank"] = self.random_cosines.mean(axis=0)
            out["random_share"] = quantile_summary(self.random_share)
        return out


def subspace_alignment(vt: jax.Array, delta: jax.Array):
    """``(|cos| [B, k], share [B], ‖δ‖ [B])`` of ``delta[B, ...]`` with the rows of ``vt[B, k, D]``.

    ``vt`` holds orthonormal right singular vectors (rows). A zero ``δ_i`` gives 0, not NaN.
    """
    flat = delta.reshape(delta.shape[0], -1)
    if vt.ndim != 3 or vt.shape[0] != flat.shape[0] or vt.shape[2] != flat.shape[1]:
        raise ValueError(
            f"vt must have shape [B, k, D] = [{flat.shape[0]}, k, {flat.shape[1]}]; got {tuple(vt.shape)}"
        )
    proj = jnp.einsum("bkd,bd->bk", vt, flat.astype(vt.dtype))
    sq = jnp.sum(jnp.square(flat), axis=1)
    norm = jnp.sqrt(sq)
    cos = jnp.abs(proj) / jnp.maximum(norm, _TINY)[:, None]
    share = jnp.sum(jnp.square(proj), axis=1) / jnp.maximum(sq, _TINY)
    return cos, jnp.minimum(share, 1.0), norm


def _alignment_body(x, delta, baseline, *, logits_fn, k):
    _, s, vt = jacobian_singular_values(logits_fn, x, compute_uv=True)
    vt_k = vt[:, :k]
    cos, share, norm = subspace_alignment(vt_k, delta)
    if baseline is None:
        return s, cos, share, norm, None, None
    random_cos, random_share, _ = subspace_alignment(vt_k, baseline)
    return s, cos, share, norm, random_cos, random_share


def perturbation_alignment(
    logits_fn: Callable,
    x: jax.Array,
    delta: jax.Array,
    *,
    k: int | None = None,
    key: jax.Array | None = None,
    baseline: jax.Array | None = None,
) -> AlignmentResult:
    """Alignment of perturbations with the Jacobian's singular vectors (Roth et al. 2019, §5.2).

    Roth et al. 2019, Fig. 1 right (``|cos|`` as a function of the rank of the singular vector)
    and Fig. 3 right (``|cos|`` with the dominant singular vector, one call per ε).

    Args:
      logits_fn: ``x[B, ...] -> logits[B, K]`` with independent examples (or a hidden layer
        flattened to ``[B, K]``).
      x: clean inputs ``[B, ...]``; the Jacobian is taken at ``x`` (not at ``x + δ``).
      delta: perturbations ``[B, ...]`` (``x_adv − x`` of PGD ℓ2/ℓ∞, FGM, noise, ...); the
        alignment does not depend on ``‖δ_i‖``.
      k: number of top ranks compared (1 ≤ k ≤ min(K, D)); default all ``min(K, D)``.
      key: PRNG key for the random baseline: Gaussian directions ``N(0, I)`` per example.
      baseline: explicit baseline directions ``[B, ...]`` instead (e.g. uniform ε-ball noise).
        At most one of ``key`` / ``baseline``; neither means no baseline.

    Returns:
      :class:`AlignmentResult` (NumPy arrays). Exact SVD of the materialized Jacobian
      (``core.jacobian_singular_values(method="exact")``); for diagnostics, not training.
    """
    check_callable(logits_fn, name="logits_fn", signature="x[B, ...] -> logits[B, K]")
    x = check_inputs(x, name="x")
    delta = check_like(delta, x, name="delta")
    if key is not None and baseline is not None:
        raise ValueError("give at most one of key (Gaussian baseline) or baseline (directions); got both")
    if baseline is not None:
        baseline = check_like(baseline, x, name="baseline")
    out = jax.eval_shape(logits_fn, x)
    if len(out.shape) != 2 or out.shape[0] != x.shape[0]:
        raise ValueError(f"logits_fn must return logits [B={x.shape[0]}, K]; got shape {tuple(out.shape)}")
    rank = min(int(out.shape[1]), math.prod(x.shape[1:]))
    if k is None:
        k = rank
    k = check_positive_int(k, name="k")
    if k > rank:
        raise ValueError(f"k must be <= min(K, D) = {rank} (the number of singular vectors); got {k}")
    if key is not None:  # drawn outside the compiled body: its program is shared by all models
        baseline = jax.random.normal(key, x.shape, x.dtype)
    s, cos, share, norm, random_cos, random_share = run_compiled(
        _alignment_body, (x, delta, baseline), logits_fn=logits_fn, k=k
    )
    host = lambda a: None if a is None else np.asarray(a)  # noqa: E731
    return AlignmentResult(
        singular_values=host(s),
        cosines=host(cos),
        share=host(share),
        delta_norm=host(norm),
        k=k,
        random_cosines=host(random_cos),
        random_share=host(random_share),
    )
