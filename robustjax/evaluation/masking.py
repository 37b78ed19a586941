"""Gradient-masking checks: named warnings, each with what it means (in the spirit of
AutoAttack's flags and Athalye et al. 2018's list of symptoms of obfuscated gradients).

A model that *masks* gradients is not robust, it only defeats gradient-based attacks; its white-box
robust accuracy is then an overestimate. These checks compare numbers that are already in a
:class:`~robustjax.evaluation.evaluator.RobustnessReport` (or a transfer matrix) and fire when they
are inconsistent with an honest gradient:

* ``iterative_weaker_than_single_step`` — PGD accuracy above FGSM/FGM accuracy at the same ε;
* ``accuracy_increases_with_eps`` — accuracy under a gradient attack rises with ε;
* ``accuracy_increases_with_steps`` — PGD accuracy rises with more iterations;
* ``noise_stronger_than_attack`` — uniform noise in the ε-ball breaks more points than a
  gradient attack in the same ball;
* ``zero_gradients`` / ``nonfinite_gradients`` — ∇ₓ loss at the clean input is exactly zero for
  many points, or NaN/∞ somewhere;
* ``saturated_softmax`` — mean max-probability near 1 (SOAR, Ma et al. 2020, Table 5 and App. B);
* ``nondeterministic_logits`` — the same input gives different logits (a randomized model);
* ``transfer_stronger_than_whitebox`` — black-box (transfer) accuracy below white-box accuracy
  (SOAR Table 4; SGR Table 4) — from :func:`check_transfer`;
* ``attack_exceeds_budget`` — an ℓp attack returned a perturbation outside its ε-ball (a bug in
  the attack, not in the model: its numbers are not trustworthy).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from robustjax.evaluation import suites as _suites

EXPLANATIONS = {
    "iterative_weaker_than_single_step": (
        "An iterative attack (PGD) includes the single-step attack as its first step, so on an "
        "honest model it is at least as strong. A higher PGD accuracy means the gradient stops "
        "being informative after the first step (noisy, shattered or vanishing gradients): "
        "gradient masking. Try more random restarts, a margin (CW) loss, or a transfer attack."
    ),
    "accuracy_increases_with_eps": (
        "A larger ε-ball contains the smaller one, so the true robust accuracy cannot increase "
        "with ε. If the measured accuracy does, the attack failed to find adversarial examples "
        "that exist: the gradient is misleading at larger ε (gradient masking), or the step size "
        "is badly tuned."
    ),
    "accuracy_increases_with_steps": (
        "More iterations of the same attack should never make it weaker. Accuracy rising with the "
        "number of PGD steps points to a loss surface the attack cannot follow (gradient masking) "
        "or to a step size that makes PGD oscillate."
    ),
    "noise_stronger_than_attack": (
        "Random noise in the ε-ball is a very weak attack. If it breaks more points than a "
        "gradient-based attack in the same ball, the gradients do not point towards the decision "
        "boundary: gradient masking. Evaluate with gradient-free or transfer attacks."
    ),
    "zero_gradients": (
        "The input gradient of the loss is exactly zero at many clean points, so gradient-based "
        "attacks cannot move (e.g. saturated softmax, stop_gradient, quantization or "
        "non-differentiable preprocessing). Accuracy under gradient attacks is then meaningless; "
        "use transfer, gradient-free or margin-loss attacks."
    ),
    "nonfinite_gradients": (
        "The logits or the input gradient of the loss are NaN or infinite for some clean points: "
        "attacks following these gradients produce garbage and their failure says nothing about "
        "robustness."
    ),
    "saturated_softmax": (
        "The average highest softmax probability is close to 1 (SOAR, Ma et al. 2020, Table 5: "
        "models that mask gradients had ~99.6 %). The cross-entropy loss is then flat around "
        "correctly classified points and its gradient vanishes numerically, which defeats "
        "gradient attacks without making the model robust. Check with a margin (CW) loss or a "
        "transfer attack. Very accurate models on easy data can also trip this flag."
    ),
    "nondeterministic_logits": (
        "The model returns different logits for the same input (a randomized defence, dropout "
        "left on, or hidden state). Gradients of a random model are noisy estimates, which masks "
        "gradients; evaluate with Expectation over Transformation (average gradients over "
        "draws) and report accuracy over several draws. Per-example results are not reproducible."
    ),
    "transfer_stronger_than_whitebox": (
        "Adversarial examples crafted on another model break this model more often than attacks "
        "that use its own gradients. A white-box attack should be at least as strong as a "
        "black-box one, so the model's own gradients are misleading: gradient masking (SOAR, "
        "Ma et al. 2020, Table 4)."
    ),
    "attack_exceeds_budget": (
        "An ℓp attack returned perturbations larger than its ε. This is a bug in the attack or "
        "its parameters, not a property of the model; the reported accuracy for that row is not "
        "a valid robust accuracy."
    ),
}


@dataclasses.dataclass(frozen=True)
class MaskingWarning:
    """A named gradient-masking flag: ``name`` (a key of ``EXPLANATIONS``), ``message`` (the
    numbers that triggered it) and ``explanation`` (what it means and what to do)."""

    name: str
    message: str
    explanation: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "message": self.message, "explanation": self.explanation}

    def __str__(self) -> str:
        return f"[{self.name}] {self.message}"


def _warn(name: str, message: str) -> MaskingWarning:
    return MaskingWarning(name, message, EXPLANATIONS[name])


def _pct(a: float) -> str:
    return f"{100 * a:.2f}%"


def _reach(r) -> float | None:
    """``steps · step_size`` of a PGD result (how far it can travel), if known."""
    steps = r.params.get("steps")
    if steps is None or r.eps is None:
        return None
    if "step_size" in r.params:
        return float(steps) * float(r.params["step_size"])
    if "step_size_factor" in r.params:
        return float(steps) * float(r.params["step_size_factor"]) * r.eps
    return None


def check_report(
    report: Any,
    *,
    tolerance: float = 0.01,
    confidence_threshold: float = 0.995,
    zero_gradient_fraction: float = 0.01,
    determinism_rtol: float = 1e-5,
) -> list[MaskingWarning]:
    """All checks on one evaluation report. ``tolerance`` (absolute accuracy, default 1 %, at
    least one example) absorbs sampling noise of random starts when comparing attacks."""
    out: list[MaskingWarning] = []
    tol = max(float(tolerance), 1.0 / max(report.n, 1))
    cc = report.clean_correct
    acc = {id(r): float(np.mean(r.robust_mask(cc))) for r in report.results}
    compare = not report.meta.get("skip_broken", False)

    # Clean-input gradients and logits.
    finite = np.asarray(report.clean_finite)
    if not np.all(finite):
        out.append(_warn(
            "nonfinite_gradients",
            f"{int(np.sum(~finite))} of {report.n} clean points have NaN/inf logits or input "
            "gradients",
        ))
    g = np.asarray(report.grad_norm)
    zero = finite & (g <= 1e-30)
    if np.mean(zero) > zero_gradient_fraction:
        out.append(_warn(
            "zero_gradients",
            f"the input gradient of the cross-entropy is exactly zero at {_pct(np.mean(zero))} of "
            f"the clean points (threshold {_pct(zero_gradient_fraction)})",
        ))
    conf = report.mean_max_prob
    if conf >= confidence_threshold:
        out.append(_warn(
            "saturated_softmax",
            f"mean max softmax probability {_pct(conf)} >= {_pct(confidence_threshold)} "
            f"(clean accuracy {_pct(report.clean_accuracy)})",
        ))
    det = report.meta.get("determinism") or {}
    spread = max(det.get("eager_rel_diff", 0.0), det.get("jit_rel_diff", 0.0) / 100.0)
    if not math.isfinite(spread) or spread > determinism_rtol:
        out.append(_warn(
            "nondeterministic_logits",
            f"two calls on the same inputs differ by {det.get('eager_rel_diff', 0.0):.3g} "
            f"(eager) / {det.get('jit_rel_diff', 0.0):.3g} (jit vs eager), relative to max |logit|",
        ))

    # Budget sanity of ℓp attacks.
    for r in report.results:
        if r.kind in _suites.LP_BALL_KINDS and r.eps is not None:
            ev = r.evaluated
            size = r.perturbation_norm[ev]
            limit = r.eps * (1 + 1e-4) + 1e-6
            if size.size and np.nanmax(size) > limit:
                out.append(_warn(
                    "attack_exceeds_budget",
                    f"{r.attack} at eps={r.eps_label}: max perturbation norm "
                    f"{float(np.nanmax(size)):.6g} > eps = {r.eps:.6g}",
                ))

    if not compare:
        return out

    groups = report.threat_models()
    for threat, members in groups.items():
        single = [r for r in members if r.kind in ("fgm", "fgsm")]
        iterative = [r for r in members if r.kind == "pgd"]
        gradient = [r for r in members if r.kind in _suites.GRADIENT_KINDS]
        noise = [r for r in members if r.kind == "uniform"]
        for p in iterative:
            for f in single:
                if acc[id(p)] > acc[id(f)] + tol:
                    reach = _reach(p)
                    hint = (f" (note: steps x step_size = {reach:.4g} < eps = {p.eps:.4g}, so "
                            f"{p.attack} cannot reach the boundary of the ball: under-powered)"
                            if reach is not None and p.eps is not None and reach < p.eps else "")
                    out.append(_warn(
                        "iterative_weaker_than_single_step",
                        f"{threat}: {p.attack} accuracy {_pct(acc[id(p)])} > {f.attack} accuracy "
                        f"{_pct(acc[id(f)])}{hint}",
                    ))
        for u in noise:
            for a in gradient:
                if acc[id(u)] < acc[id(a)] - tol:
                    out.append(_warn(
                        "noise_stronger_than_attack",
                        f"{threat}: {u.attack} accuracy {_pct(acc[id(u)])} < {a.attack} accuracy "
                        f"{_pct(acc[id(a)])}",
                    ))
        # Steps: PGD results of one threat model ordered by their number of steps.
        by_steps = sorted(
            (r for r in iterative if "steps" in r.params), key=lambda r: int(r.params["steps"])
        )
        for i, lo in enumerate(by_steps):
            for hi in by_steps[i + 1 :]:
                if int(hi.params["steps"]) > int(lo.params["steps"]) and acc[id(hi)] > acc[id(lo)] + tol:
                    out.append(_warn(
                        "accuracy_increases_with_steps",
                        f"{threat}: {hi.attack} ({hi.params['steps']} steps) accuracy "
                        f"{_pct(acc[id(hi)])} > {lo.attack} ({lo.params['steps']} steps) accuracy "
                        f"{_pct(acc[id(lo)])}",
                    ))

    # ε monotonicity per gradient attack.
    by_attack: dict[str, list] = {}
    for r in report.results:
        if r.kind in _suites.GRADIENT_KINDS and r.kind != "wrm" and r.eps is not None:
            by_attack.setdefault(r.attack, []).append(r)
    for attack, rs in by_attack.items():
        rs = sorted(rs, key=lambda r: r.eps)
        for a, b in zip(rs, rs[1:]):
            if b.eps > a.eps and acc[id(b)] > acc[id(a)] + tol:
                out.append(_warn(
                    "accuracy_increases_with_eps",
                    f"{attack}: accuracy {_pct(acc[id(b)])} at eps={b.eps_label} > "
                    f"{_pct(acc[id(a)])} at eps={a.eps_label}",
                ))
    return out


def check_transfer(matrix: Any, *, tolerance: float = 0.01) -> list[MaskingWarning]:
    """``transfer_stronger_than_whitebox`` for every target model whose accuracy on examples
    transferred from another source is below its own white-box accuracy (``matrix.accuracy`` is
    ``[target, source]``, ``matrix.white_box`` is ``[target]``)."""
    out = []
    tol = max(float(tolerance), 1.0 / max(matrix.n, 1))
    for t, target in enumerate(matrix.targets):
        white = float(matrix.white_box[t])
        for s, source in enumerate(matrix.sources):
            if source != target and matrix.accuracy[t, s] < white - tol:
                out.append(_warn(
                    "transfer_stronger_than_whitebox",
                    f"{target}: accuracy {_pct(matrix.accuracy[t, s])} under {matrix.attack} "
                    f"transferred from {source} < white-box accuracy {_pct(white)}",
                ))
    return out
