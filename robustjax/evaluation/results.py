"""What :func:`robustjax.evaluation.evaluate` returns: per-example results of each attack and the
aggregate report (pointwise worst case per threat model, tables, JSON / Markdown / PNG output).

A point is robust under a threat model only if it is classified correctly and *every* attack of
the model fails on it (RobustBench/AutoAttack's convention); :func:`check_invariants` checks
robust accuracy ≤ each attack's accuracy ≤ clean accuracy pointwise.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from robustjax.evaluation import suites as _suites


@dataclasses.dataclass
class AttackResult:
    """Per-example outcome of one attack at one strength (arrays of length N).

    ``success[i]``: the attack changed example i's prediction away from its true label
    (DeepFool at ε: and ‖δ‖₂ ≤ ε). ``evaluated[i]``: the attack ran on example i (all True unless
    ``skip_broken``). ``pred``: predicted class after the attack; ``margin``: the margin
    ``z_y − max_{k≠y} z_k`` after the attack (Wen et al., Def. 3); ``norm_l2``/``norm_linf``:
    per-example size of the perturbation ``x_adv − x``.
    """

    attack: str
    kind: str
    threat: str
    norm: float | None
    eps: float | None
    eps_label: str
    strength_name: str
    params: dict
    success: np.ndarray
    evaluated: np.ndarray
    pred: np.ndarray
    margin: np.ndarray
    norm_l2: np.ndarray
    norm_linf: np.ndarray
    finite: np.ndarray
    extras: dict = dataclasses.field(default_factory=dict)
    lp: bool = False  # the threat model is an ℓp ball (nested in larger balls of the same norm)

    @property
    def perturbation_norm(self) -> np.ndarray:
        """Per-example ‖δ‖ in the attack's own norm (ℓ2 for attacks without one)."""
        return self.norm_linf if self.norm == math.inf else self.norm_l2

    def robust_mask(self, clean_correct: np.ndarray) -> np.ndarray:
        """Correct on clean input, attacked, and not broken by this attack."""
        return clean_correct & self.evaluated & ~self.success


def threat_label(norm: float | None, eps: float | None) -> str:
    name = "Linf" if norm == math.inf else "L2"
    return f"{name} eps={_suites.format_eps(eps)}"


class RobustnessReport:
    """What :func:`evaluate` returns: per-example results and the aggregate table.

    Attributes: ``suite`` (name), ``specs``, ``n``, ``labels``, ``clean_pred``, ``clean_correct``,
    ``clean_margin``, ``max_prob`` (max softmax probability), ``grad_norm`` (‖∇ₓ CE‖₂ at the clean
    input), ``results`` (list of :class:`AttackResult`), ``warnings`` (gradient-masking flags, see
    ``masking.py``), ``meta`` (batch size, resolved ε, E‖x‖₂, ...).
    """

    def __init__(self, *, suite, specs, labels, clean_pred, clean_margin, max_prob, grad_norm,
                 clean_finite, results, meta, warnings=()):
        self.suite = suite
        self.specs = tuple(specs)
        self.labels = labels
        self.clean_pred = clean_pred
        self.clean_correct = clean_pred == labels
        self.clean_margin = clean_margin
        self.max_prob = max_prob
        self.grad_norm = grad_norm
        self.clean_finite = clean_finite
        self.results = list(results)
        self.meta = dict(meta)
        self.warnings = list(warnings)

    # -- aggregates ----------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    @property
    def clean_accuracy(self) -> float:
        return float(np.mean(self.clean_correct))

    @property
    def mean_max_prob(self) -> float:
        """Average highest softmax probability on clean data (SOAR Table 5)."""
        return float(np.mean(self.max_prob))

    def result(self, attack: str, eps: Any = None) -> AttackResult:
        """The result of ``attack`` at strength ``eps`` (a value, a label like ``"8/255"``, or
        ``None`` when the attack has a single strength)."""
        found = [r for r in self.results if r.attack == attack]
        if not found:
            names = sorted({r.attack for r in self.results})
            raise ValueError(f"unknown attack {attack!r}; attacks in this report: {names}")
        if eps is None:
            if len(found) > 1:
                raise ValueError(
                    f"attack {attack!r} has several strengths "
                    f"{[r.eps_label for r in found]}; pass eps"
                )
            return found[0]
        for r in found:
            if isinstance(eps, str) and eps == r.eps_label:
                return r
        try:
            value = _suites.parse_eps(eps)
        except ValueError:
            value = None
        for r in found:
            if value is not None and r.eps is not None and math.isclose(r.eps, value, rel_tol=1e-6):
                return r
        raise ValueError(
            f"attack {attack!r} has no strength {eps!r}; strengths: {[r.eps_label for r in found]}"
        )

    def accuracy(self, attack: str, eps: Any = None) -> float:
        """Accuracy under one attack: correct on clean input and not broken by it (with
        ``skip_broken``: the cumulative worst case up to and including this attack)."""
        return float(np.mean(self.result(attack, eps).robust_mask(self.clean_correct)))

    def threat_models(self) -> dict[str, list[AttackResult]]:
        """Threat-model label → the results evaluated under it (suite order)."""
        groups: dict[str, list[AttackResult]] = {}
        for r in self.results:
            groups.setdefault(r.threat, []).append(r)
        return groups

    def members(self, threat: str) -> list[AttackResult]:
        """The results that count for ``threat``: its own, and for an ℓp ball those of every
        smaller ball of the same norm (an adversarial example found within ε' < ε also lies in
        the ε-ball, so the worst case is monotone in ε)."""
        groups = self.threat_models()
        if threat not in groups:
            raise ValueError(f"unknown threat model {threat!r}; known: {list(groups)}")
        own = groups[threat]
        out = list(own)
        if own[0].lp:
            for t, rs in groups.items():
                r0 = rs[0]
                if t != threat and r0.lp and r0.norm == own[0].norm and r0.eps < own[0].eps:
                    out.extend(rs)
        return out

    def robust_mask(self, threat: str) -> np.ndarray:
        """Pointwise worst case: clean-correct and no attack of ``threat`` (or of a smaller ball
        of the same norm, see :meth:`members`) succeeds."""
        broken = np.zeros(self.n, bool)
        for r in self.members(threat):
            broken |= r.success & r.evaluated
        return self.clean_correct & ~broken

    def robust_accuracy(self, threat: str | None = None) -> float | dict[str, float]:
        """Worst-case accuracy of one threat model, or a dict over all of them."""
        if threat is None:
            return {t: float(np.mean(self.robust_mask(t))) for t in self.threat_models()}
        return float(np.mean(self.robust_mask(threat)))

    def per_example(self) -> dict[str, np.ndarray]:
        """Flat dict of per-example arrays (clean ones and ``"<attack>@<eps>/<field>"``)."""
        out = {
            "label": self.labels,
            "clean_pred": self.clean_pred,
            "clean_correct": self.clean_correct,
            "clean_margin": self.clean_margin,
            "max_prob": self.max_prob,
            "grad_norm": self.grad_norm,
        }
        for r in self.results:
            p = f"{r.attack}@{r.eps_label}"
            out[f"{p}/success"] = r.success
            out[f"{p}/evaluated"] = r.evaluated
            out[f"{p}/pred"] = r.pred
            out[f"{p}/margin"] = r.margin
            out[f"{p}/perturbation_norm"] = r.perturbation_norm
        for t in self.threat_models():
            out[f"robust[{t}]"] = self.robust_mask(t)
        return out

    def rows(self) -> list[dict[str, Any]]:
        """The aggregate table, one dict per (attack, strength)."""
        rows = []
        cc = self.clean_correct
        for r in self.results:
            ev = r.evaluated
            row = {
                "attack": r.attack,
                "kind": r.kind,
                "threat": r.threat,
                "norm": ("Linf" if r.norm == math.inf else "L2") if r.norm is not None else None,
                "strength_name": r.strength_name,
                "eps": r.eps_label,
                "eps_value": r.eps,
                "accuracy": float(np.mean(r.robust_mask(cc))),
                # Wen et al. 2020, App. D.2: "we only consider clean examples classified
                # correctly originally" — the accuracy among the clean-correct points
                "conditional_accuracy": float(np.sum(r.robust_mask(cc)) / max(np.sum(cc), 1)),
                "success_rate": float(np.sum(r.success & ev & cc) / max(np.sum(ev & cc), 1)),
                "mean_perturbation_norm": _mean(r.perturbation_norm[ev & r.success]),
                "mean_margin_before": _mean(self.clean_margin[ev]),
                "mean_margin_after": _mean(r.margin[ev]),
                "evaluated": int(np.sum(ev)),
            }
            row.update({k: v for k, v in r.extras.items() if np.isscalar(v)})
            rows.append(row)
        return rows

    # -- output --------------------------------------------------------------------------------
    def table(self) -> str:
        """The aggregate table as fixed-width text (for printing)."""
        from robustjax.evaluation import reports

        return reports.format_table(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (RobustBench-style names; see ``reports.py``)."""
        from robustjax.evaluation import reports

        return reports.report_to_dict(self)

    def to_markdown(self) -> str:
        from robustjax.evaluation import reports

        return reports.report_to_markdown(self)

    def plot(self, path: str) -> None:
        """PNG of accuracy vs ε (one panel per norm / strength axis)."""
        from robustjax.evaluation import reports

        reports.plot_report(self, path)

    def __repr__(self) -> str:
        return (
            f"RobustnessReport(suite={self.suite!r}, n={self.n}, clean={self.clean_accuracy:.4f}, "
            f"results={len(self.results)}, warnings={[w.name for w in self.warnings]})"
        )


def _mean(a: np.ndarray) -> float | None:
    a = np.asarray(a, np.float64)
    a = a[np.isfinite(a)]
    return float(np.mean(a)) if a.size else None


def check_invariants(report: RobustnessReport) -> None:
    """Raise ``AssertionError`` unless robust accuracy ≤ clean accuracy and, per threat model, the
    pointwise worst case ≤ every single attack's accuracy (pointwise: robust ⊆ each attack's
    survivors ⊆ clean-correct)."""
    cc = report.clean_correct
    clean = float(np.mean(cc))
    for threat, members in report.threat_models().items():
        rob = report.robust_mask(threat)
        if np.any(rob & ~cc) or float(np.mean(rob)) > clean:
            raise AssertionError(
                f"robust accuracy under {threat} exceeds clean accuracy ({np.mean(rob)} > {clean})"
            )
        for r in members:
            surv = r.robust_mask(cc)
            if np.any(surv & ~cc):
                raise AssertionError(f"{r.attack}@{r.eps_label}: survivor not correct on clean data")
            if np.any(rob & ~surv) or float(np.mean(rob)) > float(np.mean(surv)):
                raise AssertionError(
                    f"worst case under {threat} ({np.mean(rob)}) exceeds the accuracy of "
                    f"{r.attack}@{r.eps_label} ({np.mean(surv)})"
                )

