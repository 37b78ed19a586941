"""Accuracy as a function of the attack strength ε (Roth et al. 2019, Fig. 3 left)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from robustjax.core import validation as V
from robustjax.evaluation import suites as _suites
from robustjax.evaluation.evaluator import RobustnessReport, evaluate


@dataclasses.dataclass
class AccuracyCurve:
    """Accuracy (fraction) at each ε, in the order given, with the report that produced it."""

    eps: np.ndarray
    accuracy: np.ndarray
    clean_accuracy: float
    attack: str
    norm: float | None
    report: RobustnessReport

    def to_dict(self) -> dict[str, Any]:
        from robustjax.evaluation.reports import pct

        return {
            "attack": self.attack,
            "norm": None if self.norm is None else ("Linf" if self.norm == math.inf else "L2"),
            "eps": [_suites.format_eps(e) for e in self.eps],
            "eps_value": [float(e) for e in self.eps],
            "robust_acc": [pct(a) for a in self.accuracy],
            "clean_acc": pct(self.clean_accuracy),
        }


def accuracy_vs_eps(
    logits_fn: Callable,
    data: Any,
    *,
    eps: Sequence[float | str],
    key: Any,
    attack: str | Callable = "pgd",
    norm: Any = 2,
    steps: int = 10,
    step_size_factor: float | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
    batch_size: int = 256,
    progress: bool = True,
    **params: Any,
) -> AccuracyCurve:
    """Accuracy under one attack for a list of ε in one call (Roth et al. 2019, Fig. 3 left:
    ℓ2 PGA with 10 iterations; the default step is α = 2.5ε/steps).

    ``attack`` is an attack kind (``"pgd"``, ``"fgm"``, ``"fgsm"``, ``"deepfool"``, ``"uniform"``,
    ...) or a callable ``f(logits_fn, x, y, *, eps, key, ...)``; ``params`` go to the attack.
    Every ε is one jitted program; the data is streamed in chunks of ``batch_size`` (see
    :func:`robustjax.evaluation.evaluate`). ``eps = 0`` gives the clean accuracy.
    """
    if isinstance(eps, (int, float, str)):
        eps = [eps]
    eps = list(eps)
    if not eps:
        raise ValueError("eps must be a non-empty list of strengths")
    values = [_suites.parse_eps(e, name="eps") for e in eps]
    for v in values:
        V.check_nonnegative(v, name="eps")
    kind = attack if isinstance(attack, str) else "custom"
    p = dict(params)
    if kind == "pgd":
        steps = V.check_positive_int(steps, name="steps")
        p.setdefault("steps", steps)
        if "step_size" not in p:
            p["step_size_factor"] = 2.5 / steps if step_size_factor is None else step_size_factor
    name = attack if isinstance(attack, str) else getattr(attack, "__name__", "attack")
    spec_norm = norm if kind in ("fgm", "pgd", "uniform", "custom") else None
    if kind == "deepfool":
        p.pop("steps", None)
    spec = _suites.AttackSpec(name, attack, eps=tuple(eps), norm=spec_norm, params=p, clip=clip)
    report = evaluate(logits_fn, data, suite=[spec], batch_size=batch_size, key=key,
                      progress=progress, name=f"accuracy vs eps ({name})")
    rs = [report.result(name, e) for e in spec.eps]
    acc = np.array([np.mean(r.robust_mask(report.clean_correct)) for r in rs])
    return AccuracyCurve(
        eps=np.array(values), accuracy=acc, clean_accuracy=report.clean_accuracy, attack=name,
        norm=spec.norm, report=report,
    )


def plot_accuracy_curves(curves: Mapping[str, AccuracyCurve], path: str, *,
                         title: str = "Accuracy vs perturbation strength") -> None:
    """One PNG with one line per model (Roth et al. 2019, Fig. 3 left), Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("curves must map at least one model name to an AccuracyCurve")
    fig, ax = plt.subplots(figsize=(6, 4.2))
    norms = set()
    for label, c in curves.items():
        order = np.argsort(c.eps)
        ax.plot(c.eps[order], 100 * c.accuracy[order], marker="o", label=f"{label} ({c.attack})")
        norms.add(c.norm)
    norm_name = {math.inf: "ℓ∞", 2.0: "ℓ2"}.get(next(iter(norms)), "") if len(norms) == 1 else ""
    ax.set_xlabel(f"ε {('(' + norm_name + ')') if norm_name else ''}".strip())
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 102)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
