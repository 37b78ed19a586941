"""The named analyses of ``robustjax analyze``: what each computes per model, its figures and
the numbers its Markdown table shows.

An :class:`Analysis` has

* ``compute(ctx, model)`` — the diagnostic of one model (an ``AnalysisResult``, a
  ``SpectralReport``, or a mapping ``{name: result}`` when it measures several directions or
  strengths), with defaults from ``ctx.settings`` (see ``robustjax.analyze.settings``);
* ``figures(ctx, results)`` — ``{figure name: matplotlib Figure}`` overlaying ``results``
  (``{model label: result}``), each saved as ``analysis_<figure name>.png``;
* ``headline(ctx, result)`` — ``{column: number or text}`` for one model's row of the table.

The analyses are defined in ``analyses_roth`` (Roth et al. 2019), ``analyses_sgr_soar`` (SGR
2018, SOAR 2020) and ``analyses_wen_farnia`` (Wen et al. 2020, Farnia et al. 2019).
"""

from __future__ import annotations

from typing import Sequence

from robustjax.analyze import analyses_roth, analyses_sgr_soar, analyses_wen_farnia
from robustjax.analyze.spec import Analysis, to_json

__all__ = ["Analysis", "ANALYSES", "analysis_names", "select_analyses", "to_json"]


def _registry() -> dict[str, Analysis]:
    out: dict[str, Analysis] = {}
    for module in (analyses_roth, analyses_sgr_soar, analyses_wen_farnia):
        for a in module.ANALYSES:
            if a.name in out:  # pragma: no cover - a programming error
                raise RuntimeError(f"analysis {a.name!r} defined twice")
            out[a.name] = a
    return out


#: ``{name: Analysis}`` in the order they run (Roth, SGR, SOAR, Wen, Farnia).
ANALYSES: dict[str, Analysis] = _registry()


def analysis_names() -> list[str]:
    """Names of every analysis, in run order."""
    return list(ANALYSES)


def select_analyses(names: str | Sequence[str] | None) -> list[Analysis]:
    """The analyses named in ``names`` (comma-separated string or sequence; ``None``/``"all"``:
    every one), in run order. Unknown names raise a ``ValueError`` listing the valid ones."""
    if names is None:
        return list(ANALYSES.values())
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    names = [n for n in names if n]
    if not names:
        raise ValueError(f"--analyses must name at least one analysis; valid: {', '.join(ANALYSES)}")
    if names == ["all"]:
        return list(ANALYSES.values())
    unknown = [n for n in names if n not in ANALYSES]
    if unknown:
        raise ValueError(f"unknown analysis {', '.join(map(repr, unknown))} in --analyses; "
                         f"valid names: {', '.join(ANALYSES)} (or 'all')")
    return [a for name, a in ANALYSES.items() if name in set(names)]
