"""Capacity scores Φ of Farnia, Zhang, Tse 2019, Theorems 1–4, from the layers' spectra.

For a ``d``-layer network ``f(x) = W_d σ(W_{d−1} ⋯ σ(W_1 x))`` with layer operators ``W_i``
(in input-to-output order), spectral norms ``‖W_i‖₂`` and Frobenius norms ``‖W_i‖_F``:

* ``P = Π_i ‖W_i‖₂``, ``R = Σ_i ‖W_i‖_F² / ‖W_i‖₂²``,
* ``lip(∇ℓ∘f) = P · Σ_{i=1}^{d} Π_{j=1}^{i} ‖W_j‖₂`` (Thm. 3, Lemma 7: an upper bound on the
  Lipschitz constant of ``∇ₓ ℓ(f(x), y)``),
* ERM (Thm. 1):  ``Φ_erm = P² R``,
* FGM (Thm. 2):  ``Φ_fgm = {P (1 + (ε/κ) · lip)}² R``,
* PGM (Thm. 3):  ``Φ_pgm = {P (1 + (α/κ) · G_r · lip)}² R`` with
  ``G_r = (1 − (2α/κ)^r lip^r) / (1 − (2α/κ) lip) = Σ_{i<r} ((2α/κ) lip)^i``,
* WRM (Thm. 4):  ``Φ_wrm = {P (1 + lip / (λ − lip))}² R``, valid when ``lip < λ`` (else ∞).

ε: ℓ2 attack radius; κ: a lower bound on ``‖∇ₓ ℓ(f(x), y)‖₂`` near the data (measure it with
``input_gradient_norms``); α, r: PGM step size and number of steps; λ: WRM's Lagrangian
coefficient (the ``gamma`` of ``robustjax.attacks.wrm``).

Reading of the garbled text (derived, not copied): the theorem statements and their proofs in
App. C agree on the forms above once the PDF's broken sub/superscripts are restored. Thm. 3's
statement and proof both carry the prefactor ``α/κ`` while Lemma 6 has ``2α/κ`` (absorbed in
the O(·)); we follow the theorem, so ``r = 1`` (one step of size α ≤ ε) gives Φ_fgm with
ε = α. Thm. 4's "1 + 1/(λ − lip) (Π‖W_i‖₂) Σ Π‖W_j‖₂" is ``1 + lip/(λ − lip) = λ/(λ − lip)``.
The bounds' other factors (``B``, ``d``, ``h``, ``n``, γ) are not part of Φ and not computed.

Everything is computed in log space (products of many norms overflow), so ``log10_phi_*`` are
always finite when the norms are positive; ``phi_*`` may be ``inf``. The layers come from
``network_spectral_report`` (operator norms and operator Frobenius norms, call order: a chain;
for residual networks or batch normalization the formula is the paper's chain bound applied to
the recorded linear layers only).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from robustjax.analysis.layer_spectra import SpectralReport
from robustjax.analysis.results import AnalysisResult
from robustjax.core.validation import check_positive, check_positive_int

__all__ = ["CapacityScores", "capacity_scores", "ATTACK_SCHEMES"]

ATTACK_SCHEMES = ("erm", "fgm", "pgm", "wrm")
_TINY = 1e-300


def _norms(spectra: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(spectra, SpectralReport):
        rows = spectra.rows
        if any(r.get("frobenius") is None for r in rows):
            raise ValueError("spectra (a SpectralReport) must carry each layer's 'frobenius' norm")
        pairs = [(r["sigma_operator"], r["frobenius"]) for r in rows]
    else:
        try:
            pairs = [(float(a), float(b)) for a, b in spectra]
        except (TypeError, ValueError):
            raise ValueError(
                "spectra must be a SpectralReport or a sequence of (spectral_norm, frobenius_norm) "
                f"pairs in layer order; got {type(spectra).__name__}"
            ) from None
    arr = np.asarray(pairs, np.float64).reshape(-1, 2)
    if arr.shape[0] == 0:
        raise ValueError("spectra must describe at least one layer")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("spectra must hold finite, non-negative norms")
    if np.any(arr[:, 1] < arr[:, 0] * (1 - 1e-6)):
        raise ValueError("spectra: every Frobenius norm must be >= the spectral norm of its layer")
    return arr[:, 0], arr[:, 1]


def _logsumexp(values: np.ndarray) -> float:
    m = float(np.max(values))
    if not math.isfinite(m):
        return m
    return m + math.log(float(np.sum(np.exp(values - m))))


def _log1p_exp(a: float) -> float:
    """``log(1 + e^a)`` stably."""
    return float(np.logaddexp(0.0, a))


def _exp10(log10: float | None) -> float | None:
    if log10 is None:
        return None
    return math.inf if log10 > 300 else 10.0 ** log10


@dataclasses.dataclass(frozen=True)
class CapacityScores(AnalysisResult):
    """Φ of Farnia Theorems 1–4 (see the module docstring).

    ``spectral_norms [d]``, ``frobenius_norms [d]`` (layer order); ``params``: the attack
    parameters used (``eps``, ``kappa``, ``step_size``, ``steps``, ``lam``); ``log10_lip``;
    ``log10_phi``: ``{scheme: log10 Φ or None}`` for ``ATTACK_SCHEMES`` (``None`` when a needed
    parameter is missing, or for WRM when ``lip ≥ λ``: the bound does not hold);
    ``wrm_condition``: ``lip < λ`` (``None`` without λ). ``phi`` (property): ``10**log10_phi``.
    """

    spectral_norms: np.ndarray
    frobenius_norms: np.ndarray
    params: dict
    log10_lip: float
    log10_phi: dict
    wrm_condition: bool | None

    @property
    def phi(self) -> dict:
        return {k: _exp10(v) for k, v in self.log10_phi.items()}

    @property
    def lip(self) -> float:
        return _exp10(self.log10_lip)

    def summary(self) -> dict[str, Any]:
        return {
            "num_layers": int(self.spectral_norms.size),
            "product_spectral_norms": _exp10(float(np.sum(np.log10(np.maximum(self.spectral_norms, _TINY))))),
            "lip": self.lip,
            "log10_lip": self.log10_lip,
            "phi": self.phi,
            "log10_phi": dict(self.log10_phi),
            "wrm_condition": self.wrm_condition,
            "params": dict(self.params),
        }


def capacity_scores(
    spectra: Any,
    *,
    eps: float | None = None,
    kappa: float | None = None,
    step_size: float | None = None,
    steps: int | None = None,
    lam: float | None = None,
) -> CapacityScores:
    """Capacity scores Φ_erm, Φ_fgm, Φ_pgm, Φ_wrm (Farnia et al. 2019, Theorems 1–4).

    Args:
      spectra: ``network_spectral_report(...)`` of the model, or ``[(‖W_i‖₂, ‖W_i‖_F), ...]``
        from the input layer to the output layer.
      eps: ℓ2 radius ε of FGM (Thm. 2); kappa: κ > 0, the lower bound on the input-gradient
        norm (Thms. 2–3); step_size, steps: PGM's α and r (Thm. 3); lam: WRM's λ (Thm. 4).
        A score whose parameters are not all given is ``None``.
    """
    sig, frob = _norms(spectra)
    for name, value in (("eps", eps), ("kappa", kappa), ("step_size", step_size), ("lam", lam)):
        if value is not None:
            check_positive(value, name=name)
    if steps is not None:
        steps = check_positive_int(steps, name="steps")
    log_s = np.log(np.maximum(sig, _TINY))
    log_p = float(np.sum(log_s))
    log_lip = log_p + _logsumexp(np.cumsum(log_s))
    ratio = np.where(frob > 0, np.square(frob) / np.maximum(np.square(sig), _TINY), 0.0)
    log_r = math.log(max(float(np.sum(ratio)), _TINY))
    ln10 = math.log(10.0)

    def phi(log_factor: float) -> float:  # log10 of {P · factor}² · R, factor given as log
        return (2.0 * (log_p + log_factor) + log_r) / ln10

    out: dict[str, float | None] = {"erm": phi(0.0), "fgm": None, "pgm": None, "wrm": None}
    if eps is not None and kappa is not None:
        out["fgm"] = phi(_log1p_exp(math.log(eps / kappa) + log_lip))
    if step_size is not None and steps is not None and kappa is not None:
        log_q = math.log(2.0 * step_size / kappa) + log_lip
        log_g = _logsumexp(np.arange(steps, dtype=np.float64) * log_q)
        out["pgm"] = phi(_log1p_exp(math.log(step_size / kappa) + log_g + log_lip))
    condition = None
    if lam is not None:
        condition = log_lip < math.log(lam)
        if condition:
            lip = math.exp(log_lip)
            out["wrm"] = phi(math.log(lam) - math.log(lam - lip))
    params = {"eps": eps, "kappa": kappa, "step_size": step_size, "steps": steps, "lam": lam}
    return CapacityScores(spectral_norms=sig, frobenius_norms=frob, params=params,
                          log10_lip=log_lip / ln10, log10_phi=out, wrm_condition=condition)
