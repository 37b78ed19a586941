"""The result convention shared by the paper diagnostics of :mod:`robustjax.analysis`.

Every diagnostic returns a frozen dataclass deriving from :class:`AnalysisResult`:

* fields are NumPy arrays (host memory, float64 where the computation was float64) or small
  Python values (``k``, ``eps``, names). A field whose leading axis is the example axis is
  declared with ``per_example_field()``; :func:`concatenate_results` joins results computed on
  several batches along that axis and checks that every other field (radii, ``k``, ...) agrees.
* ``summary()`` is a JSON-safe dict of aggregates (means and quantiles over examples, per
  radius / rank where the result has such an axis): what ``analysis.json`` / ``analysis.md``
  carry.
* ``to_json()`` is a JSON-safe dict of every field (arrays as nested lists, arrays with more
  than ``max_array_size`` elements replaced by ``{"shape": ..., "omitted": true}``) plus the
  summary under ``"summary"`` and the result type under ``"analysis"``.
* Non-finite numbers become ``None`` in both (strict JSON has no NaN/inf).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Sequence

import numpy as np

__all__ = [
    "AnalysisResult",
    "per_example_field",
    "concatenate_results",
    "jsonable",
    "quantile_summary",
]

_PER_EXAMPLE = "per_example"


def per_example_field(optional: bool = False):
    """A dataclass field whose leading axis is the example axis ``[B, ...]``."""
    if optional:
        return dataclasses.field(default=None, metadata={_PER_EXAMPLE: True})
    return dataclasses.field(metadata={_PER_EXAMPLE: True})


def jsonable(value: Any, *, max_array_size: int | None = None) -> Any:
    """``value`` as plain JSON types: arrays to nested lists, non-finite floats to ``None``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, max_array_size=max_array_size) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, max_array_size=max_array_size) for v in value]
    if isinstance(value, np.ndarray) or (hasattr(value, "__array__") and not np.isscalar(value)):
        arr = np.asarray(value)
        if max_array_size is not None and arr.size > max_array_size:
            return {"shape": list(arr.shape), "omitted": True}
        if arr.dtype == bool:
            return arr.tolist()
        if np.issubdtype(arr.dtype, np.integer):
            return arr.tolist()
        arr = arr.astype(np.float64)
        return jsonable(arr.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


def quantile_summary(values: np.ndarray, axis: int = 0) -> dict[str, Any]:
    """Mean, median and 10/90 % quantiles over ``axis`` (finite entries only)."""
    arr = np.asarray(values, np.float64)
    masked = np.where(np.isfinite(arr), arr, np.nan)
    with warnings.catch_warnings():  # an all-non-finite column gives NaN -> None in JSON
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "mean": np.nanmean(masked, axis=axis),
            "median": np.nanmedian(masked, axis=axis),
            "q10": np.nanquantile(masked, 0.1, axis=axis),
            "q90": np.nanquantile(masked, 0.9, axis=axis),
        }


@dataclasses.dataclass(frozen=True)
class AnalysisResult:
    """Base of every diagnostic's result (see the module docstring for the convention)."""

    def summary(self) -> dict[str, Any]:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    @property
    def num_examples(self) -> int | None:
        """Number of examples (length of the per-example fields), ``None`` if it has none."""
        for f in dataclasses.fields(self):
            if f.metadata.get(_PER_EXAMPLE) and getattr(self, f.name) is not None:
                return int(np.shape(getattr(self, f.name))[0])
        return None

    def to_json(self, *, max_array_size: int | None = 100_000) -> dict[str, Any]:
        """JSON-safe dict of every field, the summary and the type name (see module docstring)."""
        out: dict[str, Any] = {"analysis": type(self).__name__}
        for f in dataclasses.fields(self):
            out[f.name] = jsonable(getattr(self, f.name), max_array_size=max_array_size)
        out["summary"] = jsonable(self.summary())
        return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.shape(a) == np.shape(b) and bool(np.array_equal(np.asarray(a), np.asarray(b)))
    return a == b


def concatenate_results(results: Sequence[AnalysisResult]) -> AnalysisResult:
    """Join results of one diagnostic computed on several batches along the example axis.

    Per-example fields are concatenated; every other field (radii, ``k``, ``eps``) must be
    equal across ``results``. Raises ``ValueError`` naming ``results`` otherwise.
    """
    results = list(results)
    if not results:
        raise ValueError("results must hold at least one result")
    cls = type(results[0])
    if not isinstance(results[0], AnalysisResult) or any(type(r) is not cls for r in results):
        raise ValueError(
            f"results must all be the same AnalysisResult type; got {[type(r).__name__ for r in results]}"
        )
    fields = dataclasses.fields(cls)
    for f in fields:  # shared fields first: they explain a shape mismatch of the per-example ones
        if not f.metadata.get(_PER_EXAMPLE):
            items = [getattr(r, f.name) for r in results]
            if not all(_same(items[0], i) for i in items[1:]):
                raise ValueError(f"results must share {f.name} to be concatenated; they differ")
    values = {}
    for f in fields:
        items = [getattr(r, f.name) for r in results]
        if not f.metadata.get(_PER_EXAMPLE):
            values[f.name] = items[0]
        elif any(i is None for i in items):
            if not all(i is None for i in items):
                raise ValueError(f"results disagree on whether {f.name} is present")
            values[f.name] = None
        else:
            try:
                values[f.name] = np.concatenate([np.asarray(i) for i in items], axis=0)
            except ValueError as err:
                raise ValueError(f"results have incompatible {f.name} shapes: {err}") from None
    return cls(**values)
