"""``robustjax analyze``: the papers' diagnostics (``robustjax.analysis``) run on trained runs.

    robustjax analyze --workdir runs/erm [--compare runs/pgd ...] [--baseline random-init]
                      [--analyses alignment,margins,...] [--limit N] [--examples N]

loads each run's newest checkpoint, runs the named analyses (``registry.ANALYSES``: every one
by default) on the same test examples for every model, and writes ``analysis.json``,
``analysis.md`` and one ``analysis_<figure>.png`` per figure (all models overlaid) into the
first run's workdir.

Layering: this package sits with ``cli.py`` at the top. It loads checkpoints through
``robustjax.training.loop.load_run``, and ``robustjax.training`` itself imports
``robustjax.analysis`` (layer spectra), so the runner cannot live in ``robustjax.analysis``
(which depends on core, attacks, nn and evaluation only).

Modules: ``models`` (the networks as pytree-callables, the random-init baseline), ``settings``
(strengths and sizes, defaults from the run configs), ``context`` (data and per-model caches:
PGD perturbations, logits, spectra), ``analyses_roth`` / ``analyses_sgr_soar`` /
``analyses_wen_farnia`` (the named analyses), ``registry``, ``runner``, ``report``.
"""

from robustjax.analyze.context import AnalysisContext
from robustjax.analyze.models import BASELINES, AnalyzedModel, ModelFunction, load_models, random_init_model
from robustjax.analyze.registry import ANALYSES, analysis_names, select_analyses
from robustjax.analyze.runner import AnalysisOutcome, analyze, run_analyses, write_outputs
from robustjax.analyze.settings import AnalysisSettings, default_settings
from robustjax.analyze.spec import Analysis

__all__ = [
    "ANALYSES",
    "BASELINES",
    "Analysis",
    "AnalysisContext",
    "AnalysisOutcome",
    "AnalysisSettings",
    "AnalyzedModel",
    "ModelFunction",
    "analysis_names",
    "analyze",
    "default_settings",
    "load_models",
    "random_init_model",
    "run_analyses",
    "select_analyses",
    "write_outputs",
]
