"""Shared helpers of the ``plot_*`` companions: run mappings, Agg figures, median bands.

Every ``plot_*`` function takes one result or a mapping ``{label: result}`` (several runs
overlaid, e.g. ``{"ERM": r1, "PGD AT": r2}``) and returns a ``matplotlib.figure.Figure`` drawn
on an Agg canvas (no pyplot state: nothing to close, safe in threads and tests). matplotlib
is imported on the first plot only.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np

__all__ = ["as_runs", "new_figure", "median_band", "run_colors", "finish"]

DEFAULT_LABEL = "model"


def as_runs(results: Any, cls: type | tuple, *, name: str = "results") -> dict[str, Any]:
    """``{label: result}`` from one result of type ``cls`` or a non-empty mapping of them."""
    if isinstance(results, cls):
        return {DEFAULT_LABEL: results}
    if not isinstance(results, Mapping) or not results:
        names = cls.__name__ if isinstance(cls, type) else " or ".join(c.__name__ for c in cls)
        raise ValueError(
            f"{name} must be a {names} or a non-empty mapping {{label: {names}}}; got {type(results).__name__}"
        )
    out = {}
    for label, r in results.items():
        if not isinstance(r, cls):
            names = cls.__name__ if isinstance(cls, type) else " or ".join(c.__name__ for c in cls)
            raise ValueError(f"{name}[{label!r}] must be a {names}; got {type(r).__name__}")
        out[str(label)] = r
    return out


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 6.0, height: float = 4.2,
               layout: str | None = None):
    """An Agg-backed ``Figure`` and its ``[nrows, ncols]`` array of axes.

    matplotlib is imported here, not at module import, so ``import robustjax.analysis`` (which
    the training code does for the layer spectra) stays fast.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout=layout)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def run_colors(n: int) -> list:
    """``n`` distinct colors of matplotlib's default cycle (tab10, then tab20)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def median_band(ax, x, values, *, color, label, linestyle="-", marker=None):
    """Median over examples (axis 0) of ``values[B, T]`` with its interquartile band."""
    v = np.asarray(values, np.float64)
    v = np.where(np.isfinite(v), v, np.nan)
    with warnings.catch_warnings():  # all-non-finite columns are left as gaps
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(v, axis=0)
        lo, hi = np.nanquantile(v, 0.25, axis=0), np.nanquantile(v, 0.75, axis=0)
    ax.plot(x, med, color=color, linestyle=linestyle, marker=marker, label=label)
    if v.shape[0] > 1:
        ax.fill_between(x, lo, hi, color=color, alpha=0.15, linewidth=0)


MAX_INSIDE_LEGEND = 5


def finish(fig, axes, title: str | None = None, *, legend: dict | None = None):
    """Grid, legends on axes that have labelled artists (outside on the right of a single-panel
    figure when they have more than ``MAX_INSIDE_LEGEND`` entries, so they do not hide curves),
    title, tight layout. ``legend``: extra ``Axes.legend`` keywords (e.g. ``loc``, ``ncol``)."""
    visible = [ax for ax in np.ravel(axes) if ax.get_visible()]
    for ax in visible:
        ax.grid(alpha=0.3)
        _, labels = ax.get_legend_handles_labels()
        if len(labels) > MAX_INSIDE_LEGEND and len(visible) == 1:
            width, height = fig.get_size_inches()
            fig.set_size_inches(width * 1.45, height)
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        elif labels:
            kw = {"fontsize": 7 if len(labels) > MAX_INSIDE_LEGEND else 8, "loc": "best", **(legend or {})}
            ax.legend(**kw)
    if title:
        fig.suptitle(title)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    return fig
