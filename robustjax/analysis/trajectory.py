"""Softmax activations along a linear trajectory (Roth, Nowozin, Lucchi, Hofmann 2018, SGR,
App. "Smoothness of Regularized Classifier", Fig. 6).

SGR Fig. 6 plots the softmax outputs of every class on the segment from ``x − 5δ`` to
``x + 5δ`` (``δ`` a PGD perturbation): a regularized classifier's outputs change smoothly,
a clean classifier's jump. Here ``ts`` are multiples of ``delta`` as given (not normalized:
``t = 1`` is the adversarial example ``x + δ``), unlike the path diagnostics of
``linearity.py`` whose radii are ℓ2 distances along unit directions.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from robustjax.analysis.inputs import check_callable, check_like, check_radii, run_compiled
from robustjax.analysis.results import AnalysisResult, per_example_field
from robustjax.core.norms import clip_to_range
from robustjax.core.validation import check_clip, check_inputs

__all__ = ["TrajectoryResult", "softmax_along_trajectory"]


@dataclasses.dataclass(frozen=True)
class TrajectoryResult(AnalysisResult):
    """Softmax outputs along ``x + t·δ`` (SGR 2018, Fig. 6).

    Fields: ``ts [T]`` multiples of ``δ``; ``probabilities [B, T, K]``; ``clean_prediction [B]``
    the class predicted at ``x``; ``total_variation [B]`` ``Σ_t ‖p(t_{j+1}) − p(t_j)‖₁ / 2`` over
    the sorted ``ts`` (0 for a constant output; a jump from one one-hot output to another adds 1).
    """

    ts: np.ndarray
    probabilities: np.ndarray = per_example_field()
    clean_prediction: np.ndarray = per_example_field()
    total_variation: np.ndarray = per_example_field()

    def summary(self) -> dict[str, Any]:
        """Mean probability of the clean prediction and prediction-flip rate per ``t``; mean TV."""
        b = self.probabilities.shape[0]
        p_clean = self.probabilities[np.arange(b), :, self.clean_prediction]  # [B, T]
        flipped = np.argmax(self.probabilities, axis=-1) != self.clean_prediction[:, None]
        return {
            "num_examples": int(b),
            "ts": self.ts,
            "mean_probability_of_clean_prediction": p_clean.mean(axis=0),
            "prediction_changed_rate": flipped.mean(axis=0),
            "mean_total_variation": float(self.total_variation.mean()),
        }


def _trajectory_body(x, delta, ts, *, logits_fn, clip):
    def at(t):
        return jax.nn.softmax(logits_fn(clip_to_range(x + t * delta, clip)), axis=-1)

    return lax.map(at, ts), jnp.argmax(logits_fn(x), axis=-1)  # [T, B, K], [B]


def softmax_along_trajectory(
    logits_fn: Callable,
    x: jax.Array,
    delta: jax.Array,
    ts,
    *,
    clip: tuple[float, float] | None = None,
) -> TrajectoryResult:
    """Softmax outputs at ``x + t·delta`` for every ``t`` in ``ts`` (SGR 2018, Fig. 6).

    Args:
      logits_fn: ``x[B, ...] -> logits[B, K]``, independent examples.
      x: clean inputs ``[B, ...]``. delta: perturbations ``[B, ...]`` (e.g. ``x_adv − x``).
      ts: non-empty 1-D sequence of real multiples of ``delta`` (Fig. 6: −5 … 5).
      clip: optional data range applied to the points (default ``None``: the paper's segment,
        which leaves [0, 1] for |t| > 1).
    """
    check_callable(logits_fn, name="logits_fn", signature="x[B, ...] -> logits[B, K]")
    x = check_inputs(x, name="x")
    delta = check_like(delta, x, name="delta")
    ts = check_radii(ts, name="ts", nonnegative=False)
    clip = check_clip(clip)
    out = jax.eval_shape(logits_fn, x)
    if len(out.shape) != 2 or out.shape[0] != x.shape[0]:
        raise ValueError(f"logits_fn must return logits [B={x.shape[0]}, K]; got {tuple(out.shape)}")
    probs, prediction = run_compiled(
        _trajectory_body, (x, delta, jnp.asarray(ts, x.dtype)), logits_fn=logits_fn, clip=clip
    )
    probs = np.asarray(probs, np.float64).transpose(1, 0, 2)
    order = np.argsort(ts, kind="stable")
    tv = 0.5 * np.abs(np.diff(probs[:, order], axis=1)).sum(axis=(1, 2))
    return TrajectoryResult(
        ts=ts,
        probabilities=probs,
        clean_prediction=np.asarray(prediction),
        total_variation=tv,
    )
