"""Sizes and strengths of the diagnostics ``robustjax analyze`` runs, with defaults from the runs.

Strengths (pixel units, data in [0, 1]):

* ``eps_linf`` — the ℓ∞ radius of the PGD attacks (SGR's perturbations, Wen's gaps and loss
  variation, SOAR's confidence points): the training ε of the first run (``--workdir``, then
  ``--compare`` in order) trained with an ℓ∞ attack (adversarial ``pgd_linf``/``fgsm``, SOAR,
  SGR), else the middle strength of the first ℓ∞ PGD attack of the first run's evaluation
  suite (``mnist-quick``: 0.2), else 0.1.
* ``eps_l2`` — the ℓ2 radius of Roth's ℓ2 PGD perturbations (alignment, linearity, σ along the
  path, Taylor quality, Farnia's FGM/PGM capacity): the training ε of the first run trained with
  an ℓ2 attack (adversarial ``pgd_l2``/``fgm``, resolved when it is relative to E‖x‖₂; SNR's ε), else
  ``eps_linf·√D / 4``, a quarter of the ℓ2 length of the ℓ∞ ball's corner (MNIST ε∞ = 0.3
  gives 2.1, the usual ℓ2 radius on MNIST).
* ``wrm_lambda`` — λ of Farnia Thm. 4: the γ of the first run trained with WRM, else none
  (Φ_wrm is then not reported).

Sizes: ``limit`` test examples for the dataset-wide diagnostics (margins, histograms, gaps,
loss variation, confidence, norms; default: the whole test split) and the same number of
training examples for the gaps; ``examples`` (≤ limit) for the per-example Jacobian and path
diagnostics (default 100; Roth aggregates 200 test points: ``--examples 200``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

from robustjax.core.validation import check_positive, check_positive_int

__all__ = ["AnalysisSettings", "default_settings", "LINF_ATTACKS", "L2_ATTACKS"]

LINF_ATTACKS = ("pgd_linf", "fgsm")
L2_ATTACKS = ("pgd_l2", "fgm")
LINF_METHODS = ("soar", "sgr")
L2_METHODS = ("snr",)


@dataclasses.dataclass(frozen=True)
class AnalysisSettings:
    """Every choice of an ``analyze`` call (recorded in ``analysis.json``).

    ``eps_linf``, ``eps_l2``, ``wrm_lambda`` and where they came from (``eps_source``);
    ``limit`` (test examples, ``None`` = all), ``train_limit`` (training examples of the gaps,
    ``None`` = as many as test examples), ``examples`` (Jacobian/path diagnostics);
    ``pgd_steps`` and ``step_factor`` (step = factor·ε) of every PGD; ``sigma_iters`` (power
    iterations per radius); ``batch_size``; ``seed``.
    """

    eps_linf: float
    eps_l2: float
    wrm_lambda: float | None = None
    eps_source: dict = dataclasses.field(default_factory=dict)
    limit: int | None = None
    train_limit: int | None = None
    examples: int = 100
    pgd_steps: int = 10
    step_factor: float = 0.25
    sigma_iters: int = 10
    batch_size: int = 500
    seed: int = 0

    def __post_init__(self):
        check_positive(self.eps_linf, name="eps_linf")
        check_positive(self.eps_l2, name="eps_l2")
        if self.wrm_lambda is not None:
            check_positive(self.wrm_lambda, name="wrm_lambda")
        for name in ("limit", "train_limit"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name=name)
        for name in ("examples", "pgd_steps", "sigma_iters", "batch_size"):
            check_positive_int(getattr(self, name), name=name)
        check_positive(self.step_factor, name="step_factor")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer; got {self.seed!r}")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _kwargs(config, train_data) -> dict:
    from robustjax.training.loop import method_kwargs_of

    return method_kwargs_of(config, train_data)


def _suite_linf_eps(config) -> float | None:
    from robustjax.evaluation.suites import parse_eps, resolve_suite

    try:
        specs = resolve_suite(config.evaluation.suite)
    except (ValueError, KeyError, AttributeError):
        return None
    for spec in specs:
        if spec.kind == "pgd" and spec.norm == math.inf and spec.eps and spec.eps_scale is None:
            values = sorted(parse_eps(e) for e in spec.eps)
            return values[len(values) // 2]
    return None


def default_settings(runs: Sequence[Any], *, eps_linf: float | None = None, eps_l2: float | None = None,
                     **sizes) -> AnalysisSettings:
    """Settings from the trained runs (``robustjax.training.loop.Run`` objects, first = the
    ``--workdir`` run; see the module docstring), overridden by explicit ``eps_linf``/``eps_l2``
    and ``sizes`` (``limit``, ``examples``, ``batch_size``, ``seed``, ...)."""
    if not runs:
        raise ValueError("runs must hold at least one trained run")
    source: dict[str, str] = {}
    found_linf = found_l2 = lam = None
    for run in runs:
        c = run.config
        kw = _kwargs(c, run.train_data)
        attack = kw.get("attack")
        name = f"training ε of {c.method}" + (f" {attack}" if attack else "")
        if found_linf is None and kw.get("eps") is not None and (attack in LINF_ATTACKS or c.method in LINF_METHODS):
            found_linf = (float(kw["eps"]), name)
        if found_l2 is None and kw.get("eps") is not None and (attack in L2_ATTACKS or c.method in L2_METHODS):
            found_l2 = (float(kw["eps"]), name)
        if lam is None and attack == "wrm" and kw.get("gamma") is not None:
            lam = float(kw["gamma"])
    if eps_linf is not None:
        source["eps_linf"] = "--eps"
    elif found_linf is not None:
        eps_linf, source["eps_linf"] = found_linf
    else:
        eps_linf = _suite_linf_eps(runs[0].config)
        source["eps_linf"] = f"middle ε of the ℓ∞ PGD of suite {runs[0].config.evaluation.suite!r}"
        if eps_linf is None:
            eps_linf, source["eps_linf"] = 0.1, "default 0.1"
    if eps_l2 is not None:
        source["eps_l2"] = "--eps-l2"
    elif found_l2 is not None:
        eps_l2, source["eps_l2"] = found_l2
    else:
        dim = math.prod(runs[0].input_shape)
        eps_l2 = float(eps_linf) * math.sqrt(dim) / 4.0
        source["eps_l2"] = "eps_linf·√D/4"
    source["wrm_lambda"] = "γ of the WRM run" if lam is not None else "no WRM run: Φ_wrm not reported"
    return AnalysisSettings(eps_linf=float(eps_linf), eps_l2=float(eps_l2), wrm_lambda=lam, eps_source=source,
                            **{k: v for k, v in sizes.items() if v is not None})
