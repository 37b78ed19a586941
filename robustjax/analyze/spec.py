"""One named analysis of ``robustjax analyze`` (see ``robustjax.analyze.registry``)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

__all__ = ["Analysis", "to_json"]


@dataclasses.dataclass(frozen=True)
class Analysis:
    """One named diagnostic of ``robustjax analyze``.

    ``compute(ctx, model)``: the diagnostic of one model (an ``AnalysisResult``, a
    ``SpectralReport`` or ``{name: result}``); ``figures(ctx, results)``: ``{figure name:
    Figure}`` overlaying ``results = {model label: result}``; ``headline(ctx, result)``:
    ``{column: value}``, one model's row of the Markdown table. ``paper``: figure/equation.
    """

    name: str
    title: str
    paper: str
    compute: Callable[[Any, Any], Any]
    figures: Callable[[Any, dict], dict]
    headline: Callable[[Any, Any], dict]
    description: str = ""


def to_json(result: Any) -> Any:
    """JSON-safe form of a result or a mapping of results (keys become strings)."""
    if isinstance(result, dict):
        return {str(k): to_json(v) for k, v in result.items()}
    return result.to_json()
