"""Attack suites as data: a suite is a tuple of :class:`AttackSpec` (name -> attack + parameters).

The papers' own evaluation protocols are registered here under stable names (``list_suites()``):

* ``sgr-table3-mnist`` / ``sgr-table3-cifar10`` — Roth et al. 2018 (SGR), Table 3 and App. 7.2,
  Table 2: RAND, FGM, FGSM, PGD (10 steps, step ε/5) and DeepFool (overshoot 0.02, 100 iterations,
  reported as ρ = E‖r‖₂/‖x‖₂, DeepFool eq. 2). MNIST ε = 32/255 (and 64/255 of Table 4),
  CIFAR10 ε = 4/255 (and 8/255 of Table 1).
* ``sgr-lrc-mnist`` / ``sgr-lrc-cifar10`` — SGR §4.3: long-range-correlated Gaussian noise,
  worst of 100 draws, decay length ζ ∈ {1, 2, 4, 8, 16} at ε = 0.3 (Fig. 3 left) and an ε sweep
  at ζ = 8 (Fig. 4).
* ``soar-table1`` — Ma et al. 2020 (SOAR), Table 1: FGSM, PGD-7, PGD-20, ℓ∞ ε = 8/255, step 2/255.
* ``soar-table2`` — SOAR Table 2: ℓ2-PGD, 100 steps of 2.5ε/100, ε ∈ {20, 40, 60}/255.
* ``soar-table6`` — SOAR App. D, Table 6: random rotation + translation, weak (±10°, ±5 %),
  medium (±30°, ±10 %), strong (±50°, ±30 %).
* ``soar-table7`` — SOAR App. E, Table 7: additive Gaussian noise σ ∈ {0.05, 0.1, 0.15}.
* ``farnia-mnist`` / ``farnia-cifar10`` / ``farnia-svhn`` — Farnia et al. 2019 §5: ℓ2 FGM and PGM
  (r = 15 steps, α = 2ε/r) at ε ∈ {0.025, 0.05, 0.1}·E‖X‖₂ and WRM with Lagrangian coefficient
  γ = 0.04·E‖X‖₂ (MNIST) / 0.002·E‖X‖₂ (CIFAR10, SVHN), E‖X‖₂ the mean norm of the paper's input.
  MNIST inputs are [0, 1] pixels: the radii are relative to E‖x‖₂ of the evaluated data
  (resolved at evaluation time). CIFAR10/SVHN inputs were whitened per image (‖z‖₂ = √D, see
  ``robustjax.units``): the radii are converted to [0, 1] pixels here, ε = r·√D·s and
  γ = 0.002·√D/s² with D = 32·32·3 and s the RMS of the data set's per-channel stds (CIFAR10
  0.2508, SVHN 0.1987, taken as the per-image std).
* ``wen-linf`` — Wen et al. 2020 App. B.1: ℓ∞ PGD, 10 steps of 2/255, ε ∈ {4, 8, 16}/255.
* ``roth-l2-pga`` — Roth et al. 2019 §5 / Fig. 3 left: ℓ2 PGA, 10 iterations, α = 2ε/iters.
  The paper's radii (0.25 … 3.5, training ε = 1.75) are in standardized CIFAR-10 units (App.
  7.3 standardizes each image "when passing it to the classifier"; 1.75 [0, 1]-pixels would be
  far beyond "the smallest ε that fools almost all inputs"); here they are converted to [0, 1]
  pixel units with σ = 0.2508, the RMS of CIFAR-10's per-channel stds (as in
  ``configs/roth2019/``).
* ``mnist-quick`` — small default for mnist-5k: FGSM and PGD-20 (ℓ∞) at ε ∈ {0.1, 0.2, 0.3}
  plus uniform noise in the same ℓ∞ balls.

Transfer (black-box) attacks for :func:`robustjax.evaluation.transfer_matrix` are in
``TRANSFER_ATTACKS`` (SGR Table 4: PGD-40; SOAR Table 3: PGD-20).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from types import MappingProxyType
from typing import Any

from robustjax import attacks as _attacks
from robustjax.core import validation

# Attack kinds known to the evaluator (see ``registry.py`` for how each is called).
ATTACK_KINDS = (
    "fgm",
    "fgsm",
    "pgd",
    "wrm",
    "deepfool",
    "uniform",
    "gaussian",
    "lrc",
    "spatial",
)

# Kinds whose strength is an ℓp-ball radius: their results join the (norm, ε) threat model and
# the pointwise worst case over it.
LP_BALL_KINDS = ("fgm", "fgsm", "pgd", "uniform")
# Gradient-based attacks (used by the gradient-masking checks).
GRADIENT_KINDS = ("fgm", "fgsm", "pgd", "wrm", "deepfool")
# Minimal-perturbation attacks: run once, success at ε means adversarial with ‖δ‖₂ ≤ ε.
MINIMAL_KINDS = ("deepfool",)
# What the strength axis of each kind is called in tables and plots.
STRENGTH_NAMES = {
    "fgm": "eps",
    "fgsm": "eps",
    "pgd": "eps",
    "uniform": "eps",
    "deepfool": "eps",
    "wrm": "gamma",
    "gaussian": "sigma",
    "lrc": "eps",
    "spatial": "level",
}

EPS_SCALES = (None, "mean_l2_norm")

# SOAR App. D: (max rotation in degrees, max translation as a fraction of the image side).
SPATIAL_LEVELS = {
    name: (float(v["max_angle"]), float(v["max_shift"]))
    for name, v in _attacks.SPATIAL_STRENGTHS.items()
}


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """One named attack of a suite, evaluated at each strength in ``eps``.

    Attributes:
      name: display name (unique within a suite), e.g. ``"PGD-20"``.
      attack: an attack kind (``ATTACK_KINDS``) or a callable
        ``f(logits_fn, x, y, *, eps, key, **params) -> x_adv`` (treated as an ℓ``norm`` attack
        when ``norm`` is given, else as its own threat model).
      eps: strengths. For ℓp attacks the ball radius; floats or strings like ``"8/255"``.
        WRM: the Lagrangian coefficient γ; Gaussian: σ; LRC: the scale ε; spatial: level names
        (``"weak"``, ``"medium"``, ``"strong"``). DeepFool: ℓ2 thresholds (may be empty: then only
        ρ is reported).
      norm: ``2`` or ``math.inf`` for ℓp attacks (FGSM is ℓ∞ whatever is given).
      params: further keyword arguments of the attack (``steps``, ``random_start``,
        ``decay_length``, ``worst_of_n``, ...). ``step_size_factor`` sets ``step_size = factor·ε``.
      eps_scale: ``None`` (absolute ε) or ``"mean_l2_norm"``: ε (and WRM's γ) are multiples of
        E‖x‖₂ of the evaluated data (Farnia et al. 2019 §5).
      clip: valid input range, ``(0., 1.)`` for images, ``None`` for unbounded features.
    """

    name: str
    attack: str | Callable
    eps: tuple = ()
    norm: float | None = None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    eps_scale: str | None = None
    clip: tuple[float, float] | None = (0.0, 1.0)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"AttackSpec.name must be a non-empty string; got {self.name!r}")
        if isinstance(self.attack, str):
            if self.attack not in ATTACK_KINDS:
                raise ValueError(
                    f"unknown attack {self.attack!r} in spec {self.name!r}; known attacks: "
                    f"{', '.join(ATTACK_KINDS)} (or pass a callable)"
                )
        elif not callable(self.attack):
            raise ValueError(
                f"AttackSpec.attack must be an attack name or a callable; got {self.attack!r}"
            )
        eps = self.eps
        if isinstance(eps, (int, float, str, Fraction)):
            eps = (eps,)
        eps = tuple(eps)
        kind = self.kind
        for e in eps:
            if kind == "spatial":
                if e not in SPATIAL_LEVELS and not (isinstance(e, (tuple, list)) and len(e) == 2):
                    raise ValueError(
                        f"spatial strengths must be one of {sorted(SPATIAL_LEVELS)} or a pair "
                        f"(max_angle_degrees, max_translation_fraction); got {e!r} in {self.name!r}"
                    )
            else:
                value = parse_eps(e, name=f"eps of {self.name!r}")
                validation.check_nonnegative(value, name=f"eps of {self.name!r}")
        if kind != "deepfool" and not eps:
            raise ValueError(f"spec {self.name!r} needs at least one strength in eps")
        object.__setattr__(self, "eps", eps)
        norm = self.norm
        if kind == "fgsm":
            norm = math.inf
        elif kind in ("fgm", "pgd", "uniform") and norm is None:
            raise ValueError(f"spec {self.name!r} ({kind}) needs norm=2 or norm=jnp.inf")
        elif kind == "deepfool":
            norm = 2.0
        if norm is not None:
            norm = validation.check_norm(norm, name=f"norm of {self.name!r}")
        object.__setattr__(self, "norm", norm)
        validation.check_choice(self.eps_scale, name="eps_scale", allowed=EPS_SCALES)
        object.__setattr__(self, "clip", validation.check_clip(self.clip))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def kind(self) -> str:
        """The attack kind, ``"custom"`` for a callable."""
        return self.attack if isinstance(self.attack, str) else "custom"

    @property
    def is_lp(self) -> bool:
        """Whether the strength is an ℓp-ball radius (joins the (norm, ε) worst case)."""
        return self.kind in LP_BALL_KINDS or (self.kind == "custom" and self.norm is not None)

    @property
    def strength_name(self) -> str:
        return STRENGTH_NAMES.get(self.kind, "eps")

    def replace(self, **changes) -> AttackSpec:
        return dataclasses.replace(self, **changes)


def parse_eps(value: Any, *, name: str = "eps") -> float:
    """Return ε as a float; accepts numbers and strings ``"8/255"`` or ``"0.3"``."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number or a string like '8/255'; got {value!r}")
    if isinstance(value, (int, float, Fraction)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            pass
    raise ValueError(f"{name} must be a number or a string like '8/255'; got {value!r}")


def format_eps(value: float) -> str:
    """RobustBench-style ε: ``"8/255"`` when ε·255 is an integer, else a short decimal."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    v = float(value)
    if v == 0 or abs(round(v, 4) - v) <= 1e-9 * max(1.0, abs(v)):
        return f"{round(v, 4):g}"  # short decimals stay decimals: 0.3, 0.05, 1.75
    k = v * 255.0
    if abs(k - round(k)) < 1e-6 * max(1.0, abs(k)):
        return f"{int(round(k))}/255"
    return f"{v:.6g}"


def format_strength(spec: AttackSpec, nominal: Any) -> str:
    """Label of one strength of ``spec`` as written in suites and reports."""
    if spec.kind == "spatial":
        if isinstance(nominal, str):
            return nominal
        return f"{nominal[0]:g}deg/{100 * nominal[1]:g}%"
    if spec.eps_scale == "mean_l2_norm":
        return f"{parse_eps(nominal):g}*E|x|2"
    if isinstance(nominal, str):
        return nominal.replace(" ", "")
    return format_eps(parse_eps(nominal))


def spec_from_dict(d: Mapping[str, Any]) -> AttackSpec:
    """Build an :class:`AttackSpec` from a plain mapping (JSON/YAML suites).

    Known keys are the fields of ``AttackSpec``; every other key goes to ``params``.
    """
    if isinstance(d, AttackSpec):
        return d
    if not isinstance(d, Mapping):
        raise ValueError(f"a suite entry must be an AttackSpec or a mapping; got {d!r}")
    d = dict(d)
    fields = {f.name for f in dataclasses.fields(AttackSpec)}
    if "attack" not in d:
        raise ValueError(f"suite entry {d!r} has no 'attack'")
    d.setdefault("name", str(d["attack"]))
    params = dict(d.pop("params", {}) or {})
    for k in list(d):
        if k not in fields:
            params[k] = d.pop(k)
    if "clip" in d and d["clip"] is not None:
        d["clip"] = tuple(d["clip"])
    return AttackSpec(params=params, **d)


# ---------------------------------------------------------------------------------------------
# The registered suites.
# ---------------------------------------------------------------------------------------------

INF = math.inf


def _sgr_table3(eps: Sequence[str]) -> tuple[AttackSpec, ...]:
    # SGR App. 7.2, Table 2. CleverHans FGM (ord=2) at the same numerical ε as FGSM: Table 3's FGM
    # column (98.0 % vs 89.1 % FGSM on MNIST) is consistent with that tiny ℓ2 budget. RAND is
    # uniform noise in the ℓ∞ ball. PGD: ε_iter = ε/5, nb_iter = 10 (white-box table).
    return (
        AttackSpec("RAND", "uniform", eps=tuple(eps), norm=INF),
        AttackSpec("FGM", "fgm", eps=tuple(eps), norm=2),
        AttackSpec("FGSM", "fgsm", eps=tuple(eps), norm=INF),
        AttackSpec(
            "PGD-10", "pgd", eps=tuple(eps), norm=INF,
            params={"steps": 10, "step_size_factor": 0.2, "random_start": True},
        ),
        AttackSpec(
            "DeepFool", "deepfool", eps=(), norm=2,
            params={"overshoot": 0.02, "max_iter": 100},
        ),
    )


def _lrc(eps_sweep: Sequence[float]) -> tuple[AttackSpec, ...]:
    # SGR §4.3: ζ ∈ {1, 2, 4, 8, 16} at ε = 0.3 (Fig. 3 left); ε ∈ [0.01, 0.7] at ζ = 8 (Fig. 4).
    specs = [
        AttackSpec(f"LRC zeta={z}", "lrc", eps=(0.3,), params={"decay_length": float(z), "worst_of_n": 100})
        for z in (1, 2, 4, 16)
    ]
    specs.insert(
        3,
        AttackSpec("LRC zeta=8", "lrc", eps=tuple(eps_sweep), params={"decay_length": 8.0, "worst_of_n": 100}),
    )
    return tuple(specs)


def _farnia(gamma: float) -> tuple[AttackSpec, ...]:
    # Farnia et al. 2019 §5: ℓ2 attacks with ε = 0.05·E_P[‖X‖₂]; PGM r = 15 iterations, α = 2ε/r;
    # WRM Lagrangian coefficient γ·E_P[‖X‖₂]. The WRM step count is not given in the paper: we use
    # the same r = 15 as PGM.
    rel = (0.025, 0.05, 0.1)
    return (
        AttackSpec("FGM", "fgm", eps=rel, norm=2, eps_scale="mean_l2_norm"),
        AttackSpec(
            "PGM-15", "pgd", eps=rel, norm=2, eps_scale="mean_l2_norm",
            params={"steps": 15, "step_size_factor": 2.0 / 15, "random_start": False},
        ),
        AttackSpec("WRM", "wrm", eps=(gamma,), eps_scale="mean_l2_norm", params={"steps": 15}),
    )


def _farnia_whitened(s: float, gamma: float = 0.002, dim: int = 32 * 32 * 3) -> tuple[AttackSpec, ...]:
    # Farnia et al. 2019 §5 on per-image whitened CIFAR10/SVHN (robustjax.units, ``per_image``):
    # relative radius r·E‖z‖₂ = r·√D in the whitened space → r·√D·s pixels; γ·√D → γ·√D/s².
    root_d = math.sqrt(dim)
    eps = tuple(round(r * root_d * s, 4) for r in (0.025, 0.05, 0.1))
    return (
        AttackSpec("FGM", "fgm", eps=eps, norm=2),
        AttackSpec(
            "PGM-15", "pgd", eps=eps, norm=2,
            params={"steps": 15, "step_size_factor": 2.0 / 15, "random_start": False},
        ),
        AttackSpec("WRM", "wrm", eps=(round(gamma * root_d / s**2, 4),), params={"steps": 15}),
    )


SUITES: dict[str, tuple[AttackSpec, ...]] = {
    "mnist-quick": (
        AttackSpec("FGSM", "fgsm", eps=(0.1, 0.2, 0.3), norm=INF),
        AttackSpec(
            "PGD-20", "pgd", eps=(0.1, 0.2, 0.3), norm=INF,
            params={"steps": 20, "step_size_factor": 2.5 / 20, "random_start": True},
        ),
        AttackSpec("Uniform", "uniform", eps=(0.1, 0.2, 0.3), norm=INF),
    ),
    "sgr-table3-mnist": _sgr_table3(("32/255", "64/255")),
    "sgr-table3-cifar10": _sgr_table3(("4/255", "8/255")),
    "sgr-lrc-mnist": _lrc((0.01, 0.1, 0.3, 0.5, 0.7)),
    "sgr-lrc-cifar10": _lrc((0.01, 0.1, 0.3, 0.5, 0.7)),
    "soar-table1": (
        AttackSpec("FGSM", "fgsm", eps=("8/255",), norm=INF),
        AttackSpec(
            "PGD-7", "pgd", eps=("8/255",), norm=INF,
            params={"steps": 7, "step_size": 2 / 255, "random_start": True},
        ),
        AttackSpec(
            "PGD-20", "pgd", eps=("8/255",), norm=INF,
            params={"steps": 20, "step_size": 2 / 255, "random_start": True},
        ),
    ),
    "soar-table2": (
        AttackSpec(
            "L2-PGD-100", "pgd", eps=("20/255", "40/255", "60/255"), norm=2,
            params={"steps": 100, "step_size_factor": 2.5 / 100, "random_start": True},
        ),
    ),
    "soar-table6": (
        AttackSpec("Rotation+translation", "spatial", eps=("weak", "medium", "strong")),
    ),
    "soar-table7": (AttackSpec("Gaussian", "gaussian", eps=(0.05, 0.1, 0.15)),),
    "farnia-mnist": _farnia(0.04),
    "farnia-cifar10": _farnia_whitened(0.25082),  # RMS of (0.2470, 0.2435, 0.2616)
    "farnia-svhn": _farnia_whitened(0.19867),  # RMS of (0.1980, 0.2010, 0.1970)
    "wen-linf": (
        AttackSpec(
            "PGD-10", "pgd", eps=("4/255", "8/255", "16/255"), norm=INF,
            params={"steps": 10, "step_size": 2 / 255, "random_start": True},
        ),
    ),
    "roth-l2-pga": (
        AttackSpec(
            # (0.25, 0.5, 1.0, 1.75, 2.5, 3.5) standardized units × 0.2508
            "PGA-10", "pgd", eps=(0.0627, 0.1254, 0.2508, 0.4389, 0.6271, 0.8779), norm=2,
            params={"steps": 10, "step_size_factor": 0.2, "random_start": True},
        ),
    ),
}

TRANSFER_ATTACKS: dict[str, AttackSpec] = {
    # SGR Table 4: PGD with 40 iterations (transfer tables), ε_iter = ε/5.
    "sgr-table4-mnist-32": AttackSpec(
        "PGD-40", "pgd", eps=("32/255",), norm=INF,
        params={"steps": 40, "step_size_factor": 0.2, "random_start": True},
    ),
    "sgr-table4-mnist-64": AttackSpec(
        "PGD-40", "pgd", eps=("64/255",), norm=INF,
        params={"steps": 40, "step_size_factor": 0.2, "random_start": True},
    ),
    "sgr-table4-cifar10-4": AttackSpec(
        "PGD-40", "pgd", eps=("4/255",), norm=INF,
        params={"steps": 40, "step_size_factor": 0.2, "random_start": True},
    ),
    "sgr-table4-cifar10-8": AttackSpec(
        "PGD-40", "pgd", eps=("8/255",), norm=INF,
        params={"steps": 40, "step_size_factor": 0.2, "random_start": True},
    ),
    # SOAR Table 3: ℓ∞ PGD-20, ε = 8/255, step 2/255.
    "soar-table3": AttackSpec(
        "PGD-20", "pgd", eps=("8/255",), norm=INF,
        params={"steps": 20, "step_size": 2 / 255, "random_start": True},
    ),
}


def list_suites() -> list[str]:
    """Names of the registered suites."""
    return sorted(SUITES)


def register_suite(name: str, specs: Sequence[AttackSpec | Mapping]) -> tuple[AttackSpec, ...]:
    """Register (or replace) a suite under ``name``; returns the normalized specs."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"suite name must be a non-empty string; got {name!r}")
    suite = resolve_suite(specs)
    SUITES[name] = suite
    return suite


def get_suite(name: str) -> tuple[AttackSpec, ...]:
    """The registered suite ``name``; ``ValueError`` listing the known names otherwise."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; known suites: {', '.join(list_suites())}")
    return SUITES[name]


def resolve_suite(suite: Any) -> tuple[AttackSpec, ...]:
    """Normalize a suite given as a registered name, one spec, or a sequence of specs/mappings."""
    if isinstance(suite, str):
        return get_suite(suite)
    if isinstance(suite, (AttackSpec, Mapping)):
        suite = [suite]
    if not isinstance(suite, Sequence) or isinstance(suite, (bytes, bytearray)):
        raise ValueError(
            f"suite must be a suite name, an AttackSpec or a sequence of them; got {suite!r}"
        )
    specs = tuple(spec_from_dict(s) for s in suite)
    if not specs:
        raise ValueError("suite is empty: give at least one attack")
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"attack names in a suite must be unique; repeated: {dupes}")
    return specs
