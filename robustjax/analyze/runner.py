"""Run named analyses on trained runs and write ``analysis.json``, ``analysis.md`` and the PNGs.

:func:`analyze` is what ``robustjax analyze`` calls: load the runs (``models.load_models``),
derive the settings from their configs (``settings.default_settings``), run every selected
analysis on every model with a progress bar, draw each analysis's figures overlaying all
models, and write the reports into ``out_dir`` (default: the first run's workdir).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from robustjax.analyze.context import AnalysisContext
from robustjax.analyze.models import AnalyzedModel, load_models
from robustjax.analyze.registry import select_analyses, to_json
from robustjax.analyze.report import markdown_report
from robustjax.analyze.settings import AnalysisSettings, default_settings
from robustjax.core.validation import check_positive

__all__ = ["AnalysisOutcome", "run_analyses", "analyze", "write_outputs", "FIGURE_PREFIX"]

FIGURE_PREFIX = "analysis_"
#: per-example arrays larger than this are left out of ``analysis.json`` (the summaries stay)
MAX_JSON_ARRAY = 20_000
#: significant digits of the floats in ``analysis.json`` (float32 computations carry ~7)
JSON_DIGITS = 6


@dataclasses.dataclass
class AnalysisOutcome:
    """Everything one call measured: ``results[name][label]``, ``headlines[name][label]``,
    ``figures[name]`` (``{figure name: Figure}``), wall ``seconds[name]``, the ``models`` and
    ``settings``."""

    models: list[AnalyzedModel]
    settings: AnalysisSettings
    results: dict[str, dict[str, Any]]
    headlines: dict[str, dict[str, dict]]
    figures: dict[str, dict[str, Any]]
    seconds: dict[str, float]
    analyses: list

    def to_json(self) -> dict:
        return {
            "runs": [m.describe() for m in self.models],
            "settings": self.settings.to_json(),
            "analyses": {
                a.name: {
                    "title": a.title,
                    "paper": a.paper,
                    "description": a.description,
                    "seconds": self.seconds[a.name],
                    "figures": [f"{FIGURE_PREFIX}{f}.png" for f in self.figures[a.name]],
                    "headline": self.headlines[a.name],
                    "results": {label: _rounded(_limited(r)) for label, r in self.results[a.name].items()},
                }
                for a in self.analyses
            },
            "total_seconds": sum(self.seconds.values()),
        }


def _rounded(value: Any) -> Any:
    """Floats to ``JSON_DIGITS`` significant digits (per-example arrays dominate the file)."""
    if isinstance(value, float):
        return float(f"{value:.{JSON_DIGITS}g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _limited(result: Any) -> Any:
    if isinstance(result, dict):
        return {str(k): _limited(v) for k, v in result.items()}
    try:
        return result.to_json(max_array_size=MAX_JSON_ARRAY)
    except TypeError:  # SpectralReport.to_json takes no size limit (its rows are small)
        return to_json(result)


def run_analyses(models: Sequence[AnalyzedModel], settings: AnalysisSettings, names=None, *,
                 progress: bool = True) -> AnalysisOutcome:
    """Run the analyses ``names`` (see ``registry.select_analyses``) on every model."""
    from tqdm.auto import tqdm

    analyses = select_analyses(names)
    models = list(models)
    ctx = AnalysisContext.create(models, settings)
    results: dict[str, dict[str, Any]] = {}
    headlines: dict[str, dict[str, dict]] = {}
    figures: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    bar = tqdm(total=len(analyses) * len(models), desc="analyze", unit="model", disable=not progress)
    try:
        for a in analyses:
            start = time.perf_counter()
            results[a.name], headlines[a.name] = {}, {}
            for m in models:
                bar.set_postfix_str(f"{a.name}: {m.label}")
                r = a.compute(ctx, m)
                results[a.name][m.label] = r
                headlines[a.name][m.label] = a.headline(ctx, r)
                bar.update(1)
            figures[a.name] = a.figures(ctx, results[a.name])
            seconds[a.name] = time.perf_counter() - start
    finally:
        bar.close()
    return AnalysisOutcome(models, settings, results, headlines, figures, seconds, analyses)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_outputs(outcome: AnalysisOutcome, out_dir) -> list[Path]:
    """Write one PNG per figure, ``analysis.md`` and ``analysis.json`` (last) into ``out_dir``;
    each file is written under a temporary name and renamed. Returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for figs in outcome.figures.values():
        for fname, fig in figs.items():
            path = out / f"{FIGURE_PREFIX}{fname}.png"
            _atomic_write(path, lambda tmp, fig=fig: fig.savefig(tmp, dpi=100, format="png"))
            paths.append(path)
    md = out / "analysis.md"
    _atomic_write(md, lambda tmp: Path(tmp).write_text(markdown_report(outcome), encoding="utf-8"))
    js = out / "analysis.json"
    data = outcome.to_json()
    _atomic_write(js, lambda tmp: Path(tmp).write_text(
        json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n", encoding="utf-8"))
    return [js, md, *paths]


def analyze(workdir, *, compare: Sequence = (), analyses=None, baseline: str | None = None,
            limit: int | None = None, examples: int | None = None, batch_size: int | None = None,
            seed: int | None = None, eps_linf: float | None = None, eps_l2: float | None = None,
            out_dir=None, progress: bool = True) -> tuple[AnalysisOutcome, list[Path]]:
    """Load ``workdir`` (and ``compare`` runs, and the ``baseline``), run ``analyses`` and write
    the reports into ``out_dir`` (default ``workdir``). Returns the outcome and written paths.

    Bad arguments (unknown analysis names, a missing run, non-positive sizes) raise
    ``ValueError`` before any model is evaluated.
    """
    select_analyses(analyses)  # fail on a bad name before loading anything
    for name, value in (("limit", limit), ("examples", examples), ("batch_size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer; got {value!r}")
    for flag, value in (("--eps", eps_linf), ("--eps-l2", eps_l2)):
        if value is not None:
            check_positive(value, name=flag)
    models = load_models(workdir, compare, baseline=baseline)
    trained = [m.run for m in models if m.kind == "trained"]
    sizes = dict(limit=limit, examples=None if examples is None else (min(examples, limit) if limit else examples),
                 batch_size=batch_size, seed=seed)
    if sizes["examples"] is None and limit is not None:
        sizes["examples"] = min(AnalysisSettings.examples, limit)
    settings = default_settings(trained, eps_linf=eps_linf, eps_l2=eps_l2, **sizes)
    outcome = run_analyses(models, settings, analyses, progress=progress)
    paths = write_outputs(outcome, workdir if out_dir is None else out_dir)
    return outcome, paths
