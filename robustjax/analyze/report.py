"""``analysis.md``: the runs, the settings, and per analysis its paper reference, a table with
one row per model and the figures."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["markdown_report", "format_value"]


def format_value(v: Any) -> str:
    """Numbers with 4 significant digits (``—`` for None/NaN), everything else as text."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, float)) or hasattr(v, "__float__"):
        f = float(v)
        if math.isnan(f):
            return "—"
        if math.isinf(f):
            return "∞" if f > 0 else "−∞"
        return f"{f:.4g}"
    return str(v).replace("|", "\\|")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(rows: dict[str, dict]) -> list[str]:
    columns: list[str] = []
    for row in rows.values():
        columns.extend(c for c in row if c not in columns)
    lines = ["| model | " + " | ".join(_cell(c) for c in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for label, row in rows.items():
        lines.append(f"| {_cell(label)} | " + " | ".join(format_value(row.get(c)) for c in columns) + " |")
    return lines


def markdown_report(outcome) -> str:
    """The Markdown report of an ``AnalysisOutcome`` (see ``runner``)."""
    from robustjax.analyze.runner import FIGURE_PREFIX

    s = outcome.settings
    lines = ["# Analysis", "", "Diagnostics of the papers (`robustjax analyze`), on the same test examples for every "
             "model.", "", "## Models", "",
             "| model | kind | workdir | model | method | method arguments |", "|---|---|---|---|---|---|"]
    for m in outcome.models:
        d = m.describe()
        args = ", ".join(f"{k}={format_value(v) if isinstance(v, float) else v}" for k, v in d["method_kwargs"].items())
        lines.append(f"| {_cell(d['label'])} | {d['kind']} | `{d['workdir']}` | {d['model']} | {d['method']} | "
                     f"{_cell(args) or '—'} |")
    lines += ["", "## Settings", "",
              f"- ℓ∞ PGD radius eps_linf = {s.eps_linf:.4g} ({s.eps_source.get('eps_linf', '')})",
              f"- ℓ2 PGD radius eps_l2 = {s.eps_l2:.4g} ({s.eps_source.get('eps_l2', '')})",
              f"- WRM λ: {format_value(s.wrm_lambda)} ({s.eps_source.get('wrm_lambda', '')})",
              f"- PGD: {s.pgd_steps} steps of {s.step_factor:g}·ε, random start, true labels",
              f"- test examples: {s.limit or 'all'} (Jacobian and path diagnostics: the first {s.examples}); "
              f"training examples for the gaps: {s.train_limit or 'as many as test examples'}",
              f"- power iterations per radius: {s.sigma_iters}; batch size {s.batch_size}; seed {s.seed}",
              f"- total time: {sum(outcome.seconds.values()):.1f} s", ""]
    for a in outcome.analyses:
        lines += [f"## {a.name}: {a.title}", "", f"*{a.paper}.* {a.description} ({outcome.seconds[a.name]:.1f} s)", ""]
        lines += _table(outcome.headlines[a.name])
        lines.append("")
        for fname in outcome.figures[a.name]:
            lines += [f"![{a.name}]({FIGURE_PREFIX}{fname}.png)", ""]
    return "\n".join(lines)
