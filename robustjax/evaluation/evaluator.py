"""Batch robustness evaluation: run a suite of attacks over a dataset in fixed-size chunks.

Design (the contract of :func:`evaluate`):

* **Bounded memory.** The data stays where it is (NumPy, memmap, a dataset object); one chunk of
  ``batch_size`` examples is on the device at a time. Per-example *results* (a few scalars per
  example and attack) are kept, never adversarial images.
* **Chunk-size invariance.** Each attack is ``vmap``-ed over examples with a per-example key
  ``fold_in(fold_in(key, hash(attack, strength)), global_index)``, so every random draw (PGD's
  random start, noise, worst-of-n, random transforms) depends on the example and the attack only.
  Chunked and single-pass evaluation give the same per-example results.
* **One compilation per (attack, strength).** Every chunk is padded to ``batch_size`` (repeating
  its last example) and the padding is masked out, so each jitted program sees one shape.
* **Pointwise worst case.** Results are grouped into threat models: ℓp attacks of the same norm
  and radius ε form one group (e.g. FGSM, PGD-20 and uniform noise at ℓ∞ ε = 0.3, or DeepFool
  thresholded at ℓ2 ε); every other attack/strength is a group of its own. A point is robust
  under a threat model only if it is classified correctly and *every* attack of the group fails
  on it. Robust accuracy ≤ each attack's accuracy ≤ clean accuracy, checked in the code.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.core import losses as _losses
from robustjax.core import norms as _norms
from robustjax.core import validation as V
from robustjax.evaluation import registry as _registry
from robustjax.evaluation import suites as _suites
from robustjax.evaluation.suites import AttackSpec

_FLOOR = 1e-12


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def as_arrays(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` as host arrays from a pair, a mapping or an object with
    ``.images``/``.labels`` (``robustjax.data.load``). Raises ``ValueError`` on empty or
    inconsistent data, non-float images and non-integer labels."""
    if hasattr(data, "images") and hasattr(data, "labels"):
        images, labels = data.images, data.labels
    elif isinstance(data, Mapping):
        keys = [("images", "labels"), ("image", "label"), ("x", "y")]
        for ki, kl in keys:
            if ki in data and kl in data:
                images, labels = data[ki], data[kl]
                break
        else:
            raise ValueError(
                f"data mapping must have keys 'images' and 'labels'; got {sorted(data)}"
            )
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = data
    else:
        raise ValueError(
            "data must be a pair (images, labels), a mapping with 'images'/'labels' or an object "
            f"with .images and .labels; got {type(data).__name__}"
        )
    if not isinstance(images, np.ndarray):
        images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim < 2:
        raise ValueError(f"data images must have shape [N, ...] with rank >= 2; got {images.shape}")
    if images.shape[0] == 0:
        raise ValueError("data is empty: the dataset has 0 examples; nothing to evaluate")
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"data images must be floating point (float32 in [0, 1]); got dtype {images.dtype}. "
            "Convert integer images with images.astype('float32') / 255."
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"data labels must be a vector of integers [N]; got shape {labels.shape}, "
            f"dtype {labels.dtype}"
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"data images and labels must have the same length; got {images.shape[0]} images "
            f"and {labels.shape[0]} labels"
        )
    return images, labels


def _chunks(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield np.arange(start, min(start + batch_size, n))


def _pad(idx: np.ndarray, batch_size: int) -> np.ndarray:
    """Pad an index vector to ``batch_size`` by repeating its last entry."""
    if len(idx) == batch_size:
        return idx
    return np.concatenate([idx, np.full(batch_size - len(idx), idx[-1], idx.dtype)])


def _check_finite_chunked(images: np.ndarray, batch_size: int) -> None:
    for idx in _chunks(images.shape[0], max(batch_size, 1024)):
        block = np.asarray(images[idx[0] : idx[-1] + 1])
        if not np.all(np.isfinite(block)):
            raise ValueError("data images contain NaN or infinite values")


def mean_l2_norm(images: np.ndarray, *, batch_size: int = 1024) -> float:
    """``E‖x‖₂`` over the dataset (per-example ℓ2 norm over all non-batch axes), chunked.
    The scale of Farnia et al.'s relative ε (``ε = 0.05·E_P[‖X‖₂]``)."""
    total = 0.0
    n = images.shape[0]
    for idx in _chunks(n, batch_size):
        block = np.asarray(images[idx[0] : idx[-1] + 1], np.float64).reshape(len(idx), -1)
        total += float(np.sum(np.sqrt(np.sum(block * block, axis=1))))
    return total / n


def _as_key(key: Any) -> jax.Array:
    if key is None:
        raise ValueError("key must be a jax.random key (or an int seed); got None")
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if not hasattr(key, "dtype"):
        raise ValueError(f"key must be a jax.random key (or an int seed); got {key!r}")
    return key


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Run:
    spec: AttackSpec
    strength: Any  # resolved: float, (angle, shift) or None (DeepFool)
    label: str
    eps: float | None
    threat: str | None
    base_key: jax.Array
    fn: Callable | None = None
    arg: Any = None


def _resolve_strength(spec: AttackSpec, nominal: Any, scale: float | None):
    if spec.kind == "spatial":
        if isinstance(nominal, str):
            return _suites.SPATIAL_LEVELS[nominal], None
        return (float(nominal[0]), float(nominal[1])), None
    value = _suites.parse_eps(nominal)
    if spec.eps_scale == "mean_l2_norm":
        value = value * scale
    return value, value


def _plan(specs: Sequence[AttackSpec], key: jax.Array, scale: float | None) -> list[_Run]:
    runs = []
    for spec in specs:
        if spec.kind in _suites.MINIMAL_KINDS:
            runs.append(_Run(spec, None, "-", None, None, _run_key(key, spec.name, "-")))
            continue
        for nominal in spec.eps:
            strength, eps = _resolve_strength(spec, nominal, scale)
            label = _suites.format_strength(spec, nominal)
            if spec.is_lp:
                threat = threat_label(spec.norm, eps)
            else:
                threat = f"{spec.name} {spec.strength_name}={label}"
            runs.append(_Run(spec, strength, label, eps, threat, _run_key(key, spec.name, label)))
    return runs


def _skip_order(run: _Run, index: int) -> tuple:
    """ℓp runs first, by (norm, ε); then the others in suite order."""
    if run.spec.is_lp and run.eps is not None:
        return (0, float(run.spec.norm), run.eps, index)
    return (1, 0.0, 0.0, index)


def _inherited(broken: dict, runs: list[_Run], run: _Run, n: int) -> np.ndarray:
    """Points broken under ``run``'s threat model or an ℓp ball of the same norm inside it."""
    out = broken.get(run.threat, np.zeros(n, bool)).copy()
    if run.spec.is_lp and run.eps is not None:
        for other in runs:
            if (other.threat in broken and other.threat != run.threat and other.spec.is_lp
                    and other.spec.norm == run.spec.norm and other.eps is not None
                    and other.eps < run.eps):
                out |= broken[other.threat]
    return out


def _run_key(key: jax.Array, name: str, label: str) -> jax.Array:
    # Independent of the suite's order: adding an attack does not change the others' draws.
    return jax.random.fold_in(key, zlib.crc32(f"{name}|{label}".encode()) & 0x7FFFFFFF)


# Compiled programs are cached per (logits_fn object, attack, strength): evaluating the same model
# again (another suite, accuracy_vs_eps, skip_broken) reuses them. Small LRU: the cache holds
# references to the model functions.
_PROGRAMS: "collections.OrderedDict[tuple, Callable]" = collections.OrderedDict()
_PROGRAMS_MAX = 64


def _cached(key: tuple, build: Callable[[], Callable]) -> Callable:
    try:
        hash(key)
    except TypeError:
        return build()
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    fn = build()
    _PROGRAMS[key] = fn
    while len(_PROGRAMS) > _PROGRAMS_MAX:
        _PROGRAMS.popitem(last=False)
    return fn


def _make_clean_fn(logits_fn: Callable) -> Callable:
    return _cached(("clean", logits_fn), lambda: _build_clean_fn(logits_fn))


def _build_clean_fn(logits_fn: Callable) -> Callable:
    def clean(x, y):
        def total_loss(xx):
            logits = logits_fn(xx)
            return jnp.sum(_losses.cross_entropy(logits, y)), logits

        g, logits = jax.grad(total_loss, has_aux=True)(x)
        probs = jax.nn.softmax(logits, axis=1)
        return {
            "pred": jnp.argmax(logits, axis=1).astype(jnp.int32),
            "margin": _losses.margin(logits, y),
            "max_prob": jnp.max(probs, axis=1),
            "grad_norm": _norms.l2_norm(g),
            "finite": jnp.all(jnp.isfinite(logits), axis=1)
            & jnp.all(jnp.isfinite(g.reshape(g.shape[0], -1)), axis=1),
        }

    return jax.jit(clean)


def _make_attack_fn(logits_fn: Callable, call: Callable, *, per_example_keys: bool,
                    to_space: Callable | None = None) -> Callable:
    """Jitted ``(x, y_attack, y_true, gidx, base_key, strength) -> per-example outcome``.

    Random attacks are ``vmap``-ed over examples with key ``fold_in(base_key, global_index)``;
    deterministic ones run on the whole batch (examples are independent either way). With
    ``to_space`` the ratio ``‖T(x_adv) − T(x)‖/‖T(x)‖`` is also returned (``rel_l2_space``)."""

    def run(x, y_attack, y_true, gidx, base_key, strength):
        if per_example_keys:
            keys = jax.vmap(lambda i: jax.random.fold_in(base_key, i))(gidx)

            def one(xi, yi, ki):
                return call(logits_fn, xi[None], yi[None], ki, strength)[0]

            x_adv = jax.vmap(one)(x, y_attack, keys)
        else:
            x_adv = call(logits_fn, x, y_attack, base_key, strength)
        logits = logits_fn(x_adv)
        delta = x_adv - x
        return {
            "pred": jnp.argmax(logits, axis=1).astype(jnp.int32),
            "margin": _losses.margin(logits, y_true),
            "norm_l2": _norms.l2_norm(delta),
            "norm_linf": _norms.linf_norm(delta),
            "rel_l2": _norms.l2_norm(delta) / jnp.maximum(_norms.l2_norm(x), _FLOOR),
            "finite": jnp.all(jnp.isfinite(logits), axis=1),
        } | ({} if to_space is None else {"rel_l2_space": _space_ratio(to_space, x, x_adv)})

    return jax.jit(run)


def _space_ratio(to_space: Callable, x: jax.Array, x_adv: jax.Array) -> jax.Array:
    t_x = to_space(x)
    return _norms.l2_norm(to_space(x_adv) - t_x) / jnp.maximum(_norms.l2_norm(t_x), _FLOOR)


def _attach_programs(logits_fn: Callable, runs: list[_Run], rho_space: Callable | None = None) -> None:
    """One jitted program per spec for kinds with a traced strength, else per (spec, strength);
    DeepFool's program also measures ρ in ``rho_space`` when given."""
    cache: dict[str, Callable] = {}
    for run in runs:
        spec = run.spec
        random = _registry.is_random(spec)
        if _registry.is_traced(spec):
            strength, run.arg = None, jnp.asarray(run.strength, jnp.float32)
        else:  # spatial: (angle, shift); custom: ε; DeepFool: none
            strength = run.strength if spec.kind == "spatial" else run.eps
            run.arg = None
        to_space = rho_space if spec.kind in _suites.MINIMAL_KINDS else None
        key = ("attack", logits_fn, repr(spec), strength, random, to_space)
        if key not in cache:
            cache[key] = _cached(key, lambda: _make_attack_fn(
                logits_fn, _registry.attack_call(spec, strength), per_example_keys=random,
                to_space=to_space))
        run.fn = cache[key]


def _determinism(logits_fn: Callable, x: np.ndarray) -> dict[str, Any]:
    """Call ``logits_fn`` eagerly twice and once jitted on the same inputs; report the spread."""
    xj = jnp.asarray(x)
    a = np.asarray(logits_fn(xj), np.float64)
    b = np.asarray(logits_fn(xj), np.float64)
    c = np.asarray(jax.jit(logits_fn)(xj), np.float64)
    scale = max(float(np.max(np.abs(a))) if a.size else 0.0, 1e-30)
    eager = float(np.max(np.abs(a - b))) / scale if a.size else 0.0
    jitted = float(np.max(np.abs(a - c))) / scale if a.size else 0.0
    return {"eager_rel_diff": eager, "jit_rel_diff": jitted}


def evaluate(
    logits_fn: Callable,
    data: Any,
    *,
    suite: Any,
    batch_size: int = 256,
    key: Any,
    skip_broken: bool = False,
    attack_labels: str = "true",
    progress: bool = True,
    checks: bool = True,
    name: str | None = None,
    rho_space: Callable | None = None,
) -> RobustnessReport:
    """Run a suite of attacks over ``data`` in chunks; return a :class:`RobustnessReport`.

    Args:
      logits_fn: ``x[B, ...] -> logits[B, K]`` (any JAX function; it is ``vmap``-ed and jitted).
      data: ``(images, labels)``, a mapping, or a ``robustjax.data.load`` object; images float
        in the attacks' ``clip`` range, labels int.
      suite: a registered suite name (``list_suites()``), an :class:`AttackSpec`, or a sequence
        of specs / mappings (see ``suites.py``).
      batch_size: examples per chunk (the last chunk is padded and masked).
      key: PRNG key (or int seed); per-example randomness is ``fold_in`` of it with the attack's
        name and strength and the example's global index.
      skip_broken: attack only points that are still robust (clean correct, not broken by an
        earlier attack of the same threat model or, for ℓp balls, of a smaller ball of the same
        norm), compacted into full batches, attack by attack: ℓp runs go by (norm, ε) ascending.
        Saves most of the work on non-robust models and gives the same worst case; per-attack
        accuracies are then cumulative worst cases in that order, and the masking checks that
        compare attacks are skipped.
      attack_labels: ``"true"`` (default) or ``"predicted"``: the labels the attacks maximize the
        loss of (SGR §7.2 attacks predicted labels to avoid label leaking). Success is always
        measured against the true labels.
      progress: show a tqdm progress bar (examples processed).
      checks: run the gradient-masking checks (``masking.check_report``).
      name: a label for the report (defaults to the suite name).
      rho_space: ``T(x)`` mapping a batch of inputs to the input space a paper measured DeepFool's
        ρ in (``robustjax.units.space_transform``, e.g. ``"per_image"`` for SGR Table 3); then
        DeepFool also reports ``rho_space = mean_i ‖T(x_i + r_i) − T(x_i)‖₂/‖T(x_i)‖₂``.

    Robust accuracy follows RobustBench/AutoAttack: correct on the clean input *and* every attack
    of the threat model fails. Invariants (robust ≤ each attack ≤ clean) are checked before
    returning. DeepFool (Moosavi-Dezfooli et al. 2016, eq. 2) also reports
    ``rho = mean_i ‖r_i‖₂/‖x_i‖₂`` over the evaluated points (SGR Table 3, "FOOL"), in pixels and
    (with ``rho_space``) in the paper's units, and ``fooled``, the fraction of evaluated points
    whose prediction it changed (ρ of a clipped run averages unfooled points too).
    """
    if rho_space is not None and not callable(rho_space):
        raise ValueError(f"rho_space must be None or a callable x -> T(x); got {rho_space!r}")
    if not callable(logits_fn):
        raise ValueError(f"logits_fn must be callable x[B, ...] -> logits[B, K]; got {logits_fn!r}")
    specs = _suites.resolve_suite(suite)
    suite_name = suite if isinstance(suite, str) else (name or "custom")
    batch_size = V.check_positive_int(batch_size, name="batch_size")
    V.check_choice(attack_labels, name="attack_labels", allowed=("true", "predicted"))
    key = _as_key(key)
    images, labels = as_arrays(data)
    _check_finite_chunked(images, batch_size)
    n = images.shape[0]

    k_out = jax.eval_shape(logits_fn, jax.ShapeDtypeStruct((1,) + images.shape[1:], jnp.float32))
    if not hasattr(k_out, "shape") or len(k_out.shape) != 2:
        raise ValueError(
            f"logits_fn must map x[B, ...] to logits[B, K]; got output {k_out} for one example"
        )
    num_classes = int(k_out.shape[1])
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"data labels must be in [0, {num_classes}); got labels in [{lo}, {hi}]")

    scale = None
    if any(s.eps_scale == "mean_l2_norm" for s in specs):
        scale = mean_l2_norm(images)
    runs = _plan(specs, key, scale)
    _attach_programs(logits_fn, runs, rho_space)
    clean_fn = _make_clean_fn(logits_fn)

    # Per-example storage.
    clean = {
        "pred": np.zeros(n, np.int32), "margin": np.zeros(n, np.float32),
        "max_prob": np.zeros(n, np.float32), "grad_norm": np.zeros(n, np.float32),
        "finite": np.zeros(n, bool),
    }
    store = []
    for _ in runs:
        store.append({
            "pred": np.full(n, -1, np.int32), "margin": np.full(n, np.nan, np.float32),
            "norm_l2": np.full(n, np.nan, np.float32), "norm_linf": np.full(n, np.nan, np.float32),
            "rel_l2": np.full(n, np.nan, np.float32), "finite": np.ones(n, bool),
            "evaluated": np.zeros(n, bool), "rel_l2_space": np.full(n, np.nan, np.float32),
        })

    from tqdm.auto import tqdm

    def load(sel: np.ndarray):
        psel = _pad(sel, batch_size)
        xs = jnp.asarray(np.asarray(images[psel], np.float32))
        ys = jnp.asarray(np.asarray(labels[psel], np.int32))
        return psel, xs, ys

    def attack_batch(run: _Run, st: dict, sel: np.ndarray, psel, xs, ys) -> np.ndarray:
        ya = jnp.asarray(clean["pred"][psel]) if attack_labels == "predicted" else ys
        res = jax.device_get(
            run.fn(xs, ya, ys, jnp.asarray(psel, jnp.int32), run.base_key, run.arg))
        k = sel.size
        for f in ("pred", "margin", "norm_l2", "norm_linf", "rel_l2", "finite", "rel_l2_space"):
            if f in res:
                st[f][sel] = res[f][:k]
        st["evaluated"][sel] = True
        return res["pred"][:k] != labels[sel]

    determinism = None
    total = n * (1 + (0 if skip_broken else len(runs)))
    bar = tqdm(total=total, desc=f"evaluate [{suite_name}]", unit="ex", disable=not progress,
               leave=False)
    try:
        # Clean pass (and, without skip_broken, every attack on the same chunk).
        for idx in _chunks(n, batch_size):
            psel, x, y = load(idx)
            if determinism is None:
                determinism = _determinism(logits_fn, np.asarray(x[: min(len(idx), 32)]))
            out = jax.device_get(clean_fn(x, y))
            for k in clean:
                clean[k][idx] = out[k][: len(idx)]
            bar.update(len(idx))
            if not skip_broken:
                for run, st in zip(runs, store):
                    bar.set_postfix_str(f"{run.spec.name} {run.label}", refresh=False)
                    attack_batch(run, st, idx, psel, x, y)
                    bar.update(len(idx))
        if skip_broken:
            # Attack by attack over the points still robust, compacted into full batches:
            # ℓp runs by (norm, ε) ascending, so a point broken in a smaller ball of the same
            # norm (which lies inside the larger one) is never attacked again.
            correct = clean["pred"] == labels
            broken: dict[str, np.ndarray] = {}
            order = sorted(range(len(runs)), key=lambda i: _skip_order(runs[i], i))
            bar.total = n + len(order) * int(correct.sum())
            bar.refresh()
            for i in order:
                run, st = runs[i], store[i]
                if run.threat is None:  # DeepFool spans several ℓ2 thresholds
                    alive = correct.copy()
                else:
                    alive = correct & ~_inherited(broken, runs, run, n)
                sel_all = np.flatnonzero(alive)
                bar.set_postfix_str(f"{run.spec.name} {run.label}", refresh=False)
                succ_all = np.zeros(n, bool)
                for start in range(0, sel_all.size, batch_size):
                    sel = sel_all[start : start + batch_size]
                    psel, xs, ys = load(sel)
                    succ_all[sel] = attack_batch(run, st, sel, psel, xs, ys)
                bar.update(int(correct.sum()))
                if run.threat is not None:
                    broken[run.threat] = broken.get(run.threat, np.zeros(n, bool)) | succ_all
    finally:
        bar.close()

    results = []
    for run, st in zip(runs, store):
        results.extend(_results_of(run, st, labels, specs, scale, clean["pred"]))

    meta = {
        "batch_size": batch_size,
        "skip_broken": bool(skip_broken),
        "attack_labels": attack_labels,
        "num_classes": num_classes,
        "input_shape": list(images.shape[1:]),
        "mean_l2_norm": scale,
        "determinism": determinism,
        "name": name or suite_name,
        "rho_space": None if rho_space is None else getattr(rho_space, "space", "custom"),
    }
    report = RobustnessReport(
        suite=suite_name, specs=specs, labels=labels.astype(np.int32), clean_pred=clean["pred"],
        clean_margin=clean["margin"], max_prob=clean["max_prob"], grad_norm=clean["grad_norm"],
        clean_finite=clean["finite"], results=results, meta=meta,
    )
    check_invariants(report)
    if checks:
        from robustjax.evaluation import masking

        report.warnings = masking.check_report(report)
    return report


def _results_of(run: _Run, st: dict, labels: np.ndarray, specs, scale,
                clean_pred: np.ndarray) -> list[AttackResult]:
    spec = run.spec
    changed = st["evaluated"] & (st["pred"] != labels)
    common = dict(
        attack=spec.name, kind=spec.kind, norm=spec.norm, strength_name=spec.strength_name,
        params=dict(spec.params), evaluated=st["evaluated"], pred=st["pred"], margin=st["margin"],
        norm_l2=st["norm_l2"], norm_linf=st["norm_linf"], finite=st["finite"],
    )
    if spec.kind not in _suites.MINIMAL_KINDS:
        return [AttackResult(threat=run.threat, eps=run.eps, eps_label=run.label,
                             success=changed, lp=spec.is_lp, **common)]
    # DeepFool: one run, thresholded at each ℓ2 ε (success: adversarial with ‖δ‖₂ ≤ ε).
    ev = st["evaluated"]
    rho = float(np.mean(st["rel_l2"][ev])) if np.any(ev) else None
    rho_space = st["rel_l2_space"][ev]
    extras = {"rho": rho,
              "rho_space": float(np.mean(rho_space)) if np.any(ev) and np.all(np.isfinite(rho_space))
              else None,
              "fooled": float(np.mean(st["pred"][ev] != clean_pred[ev])) if np.any(ev) else None}
    out = [AttackResult(threat=f"{spec.name} (minimal l2)", eps=None, eps_label="-",
                        success=changed, extras=dict(extras), **common)]
    for nominal in spec.eps:
        eps = _suites.parse_eps(nominal) * (scale if spec.eps_scale == "mean_l2_norm" else 1.0)
        within = changed & (st["norm_l2"] <= eps * (1 + 1e-6))
        out.append(AttackResult(threat=threat_label(2.0, eps), eps=eps,
                                eps_label=_suites.format_strength(spec, nominal),
                                success=within, extras=dict(extras), lp=True, **common))
    return out
