"""Confidence at SOAR's evaluation points, a gradient-masking indicator (Ma, Faghri, Farahmand
2020, SOAR, App. B, Table 5).

SOAR Table 5 reports, per model, the average highest softmax probability
``(1/N) Σ_n max_i P(x'_n)_i`` over the test set at three evaluation points ``x'``: the clean
input (``"clean"``, the table's "Standard"), a uniform point of the ε-ball (``"random"``) and
one PGD step from that point (``"pgd1"``). SOAR trained with zero or random initialization is
≈ 100 % confident everywhere, which flattens the loss and masks gradients (App. B).
The points are those of ``regularizers.soar_evaluation_point``; ``"random"`` and ``"pgd1"`` use
the same ``key``, so the PGD step starts from exactly the random point.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.analysis.inputs import check_callable, run_compiled
from robustjax.analysis.results import AnalysisResult, per_example_field
from robustjax.core.validation import (
    check_choice,
    check_clip,
    check_inputs,
    check_labels,
    check_norm,
    check_positive,
)
from robustjax.regularizers.soar import soar_evaluation_point

__all__ = ["ConfidenceResult", "confidence_at_points", "EVALUATION_POINTS"]

EVALUATION_POINTS = ("clean", "random", "pgd1")
_INIT = {"clean": "zero", "random": "random", "pgd1": "pgd1"}


@dataclasses.dataclass(frozen=True)
class ConfidenceResult(AnalysisResult):
    """Highest softmax probability at each evaluation point (SOAR 2020, Table 5).

    Fields: ``points`` names (subset of ``EVALUATION_POINTS``, in order); ``eps``; ``norm``
    (``"inf"`` or ``"2"``); ``max_probability [B, P]``; ``correct [B, P]`` (prediction equals
    ``y``; ``None`` when no labels were given).
    """

    points: tuple
    eps: float
    norm: str
    max_probability: np.ndarray = per_example_field()
    correct: np.ndarray | None = per_example_field(optional=True)

    def summary(self) -> dict[str, Any]:
        """Mean highest probability (Table 5) and accuracy per evaluation point."""
        out: dict[str, Any] = {
            "num_examples": int(self.max_probability.shape[0]),
            "eps": float(self.eps),
            "norm": self.norm,
            "mean_max_probability": {p: float(self.max_probability[:, j].mean()) for j, p in enumerate(self.points)},
        }
        if self.correct is not None:
            out["accuracy"] = {p: float(self.correct[:, j].mean()) for j, p in enumerate(self.points)}
        return out


def _confidence_body(x, y, key, *, logits_fn, eps, norm, step_size, clip, points):
    maxprob, correct = [], []
    for name in points:
        if name == "clean":
            xp = x
        else:
            xp = soar_evaluation_point(
                logits_fn, x, y, init=_INIT[name], eps=eps, key=key, norm=norm, step_size=step_size, clip=clip
            )
        logits = logits_fn(xp)
        maxprob.append(jnp.max(jax.nn.softmax(logits, axis=-1), axis=-1))
        if y is not None:
            correct.append(jnp.argmax(logits, axis=-1) == y)
    return jnp.stack(maxprob, axis=1), (jnp.stack(correct, axis=1) if correct else None)


def confidence_at_points(
    logits_fn: Callable,
    x: jax.Array,
    y: jax.Array | None = None,
    *,
    eps: float,
    key: jax.Array | None = None,
    norm: Any = jnp.inf,
    step_size: float | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
    points=EVALUATION_POINTS,
) -> ConfidenceResult:
    """Highest softmax probability at the clean, random and PGD1 points (SOAR 2020, Table 5).

    Args:
      logits_fn: ``x[B, ...] -> logits[B, K]``, independent examples.
      x: clean inputs ``[B, ...]`` in [0, 1].
      y: labels ``[B]`` for the PGD step and the accuracy; ``None`` attacks the predicted
        labels (no accuracy is reported then).
      eps: radius of the ball (> 0, pixel units). norm: ``jnp.inf`` (SOAR's ℓ∞) or ``2``.
      key: PRNG key of the random point (needed for ``"random"`` / ``"pgd1"``).
      step_size: the PGD1 step (default ``eps``, SOAR App. C). clip: data range of the points.
      points: which of ``"clean"``, ``"random"``, ``"pgd1"`` to evaluate, in that order.
    """
    check_callable(logits_fn, name="logits_fn", signature="x[B, ...] -> logits[B, K]")
    x = check_inputs(x, name="x")
    check_positive(eps, name="eps")
    p = check_norm(norm)
    if isinstance(points, str):
        points = (points,)
    points = tuple(points)
    if not points:
        raise ValueError(f"points must name at least one of {list(EVALUATION_POINTS)}")
    for name in points:
        check_choice(name, name="points", allowed=EVALUATION_POINTS)
    if len(set(points)) != len(points):
        raise ValueError(f"points must not repeat a point; got {list(points)}")
    if key is None and any(name != "clean" for name in points):
        raise ValueError("key must be a PRNG key for the 'random' and 'pgd1' points; got None")
    out = jax.eval_shape(logits_fn, x)
    if len(out.shape) != 2 or out.shape[0] != x.shape[0]:
        raise ValueError(f"logits_fn must return logits [B={x.shape[0]}, K]; got {tuple(out.shape)}")
    if y is not None:
        y = check_labels(y, x, num_classes=int(out.shape[1]), name="y")
    if step_size is not None:
        check_positive(step_size, name="step_size")
    maxprob, correct = run_compiled(
        _confidence_body, (x, y, key), logits_fn=logits_fn, eps=float(eps), norm=p,
        step_size=None if step_size is None else float(step_size), clip=check_clip(clip), points=points,
    )
    return ConfidenceResult(
        points=points,
        eps=float(eps),
        norm="inf" if p == math.inf else "2",
        max_probability=np.asarray(maxprob, np.float64),
        correct=None if correct is None else np.asarray(correct),
    )
