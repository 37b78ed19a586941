"""The evaluation plan and its compiled programs: one run per (attack, strength) with its own key,
one jitted program per attack (per strength for kinds whose strength is static), and the
per-example results of a run.

* **Chunk-size invariance.** Random attacks are ``vmap``-ed over examples with the key
  ``fold_in(fold_in(key, hash(attack, strength)), global_index)``, so every random draw depends
  on the example and the attack only, never on the chunk or the device it lands on.
* **One compilation per (attack, strength).** Programs are cached per model structure, attack
  and strength (``robustjax.core.programs``), so evaluating the same model again, or another
  checkpoint of it as a pytree callable, reuses them.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.core import losses as _losses
from robustjax.core import norms as _norms
from robustjax.core import programs as _programs
from robustjax.evaluation import registry as _registry
from robustjax.evaluation import suites as _suites
from robustjax.evaluation.results import AttackResult, threat_label
from robustjax.evaluation.suites import AttackSpec

_FLOOR = 1e-12


@dataclasses.dataclass
class AttackRun:
    """One attack at one resolved strength: its threat model, key and compiled program."""

    spec: AttackSpec
    strength: Any  # resolved: float, (angle, shift) or None (DeepFool)
    label: str
    eps: float | None
    threat: str | None
    base_key: jax.Array
    fn: Callable | None = None
    arg: Any = None


def resolve_strength(spec: AttackSpec, nominal: Any, scale: float | None):
    if spec.kind == "spatial":
        if isinstance(nominal, str):
            return _suites.SPATIAL_LEVELS[nominal], None
        return (float(nominal[0]), float(nominal[1])), None
    value = _suites.parse_eps(nominal)
    if spec.eps_scale == "mean_l2_norm":
        value = value * scale
    return value, value


def plan_runs(specs: Sequence[AttackSpec], key: jax.Array, scale: float | None) -> list[AttackRun]:
    runs = []
    for spec in specs:
        if spec.kind in _suites.MINIMAL_KINDS:
            runs.append(AttackRun(spec, None, "-", None, None, run_key(key, spec.name, "-")))
            continue
        for nominal in spec.eps:
            strength, eps = resolve_strength(spec, nominal, scale)
            label = _suites.format_strength(spec, nominal)
            if spec.is_lp:
                threat = threat_label(spec.norm, eps)
            else:
                threat = f"{spec.name} {spec.strength_name}={label}"
            runs.append(AttackRun(spec, strength, label, eps, threat, run_key(key, spec.name, label)))
    return runs


def skip_order(run: AttackRun, index: int) -> tuple:
    """ℓp runs first, by (norm, ε); then the others in suite order."""
    if run.spec.is_lp and run.eps is not None:
        return (0, float(run.spec.norm), run.eps, index)
    return (1, 0.0, 0.0, index)


def inherited_broken(broken: dict, runs: list[AttackRun], run: AttackRun, n: int) -> np.ndarray:
    """Points broken under ``run``'s threat model or an ℓp ball of the same norm inside it."""
    out = broken.get(run.threat, np.zeros(n, bool)).copy()
    if run.spec.is_lp and run.eps is not None:
        for other in runs:
            if (other.threat in broken and other.threat != run.threat and other.spec.is_lp
                    and other.spec.norm == run.spec.norm and other.eps is not None
                    and other.eps < run.eps):
                out |= broken[other.threat]
    return out


def run_key(key: jax.Array, name: str, label: str) -> jax.Array:
    # Independent of the suite's order: adding an attack does not change the others' draws.
    return jax.random.fold_in(key, zlib.crc32(f"{name}|{label}".encode()) & 0x7FFFFFFF)


# Compiled programs are cached by ``robustjax.core.programs`` per (structure of logits_fn, attack,
# strength): the arrays of a pytree logits_fn (``jax.tree_util.Partial(model.apply, variables)``,
# an NNX or Equinox module) are dynamic arguments, so evaluating another checkpoint of the same
# model reuses every program; an opaque logits_fn is keyed by (weak) identity. No entry holds
# arrays.


def clean_program(logits_fn: Callable) -> Callable:
    """Jitted ``(x, y) -> per-example clean outcome`` (prediction, margin, max probability,
    ‖∇ₓ CE‖₂, finiteness)."""
    return _programs.compiled(lambda: _clean_body, (logits_fn,), key=("evaluate/clean",))


def _clean_body(logits_fn, x, y):
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


def attack_body(call: Callable, *, per_example_keys: bool,
                to_space: Callable | None = None) -> Callable:
    """``(logits_fn, x, y_attack, y_true, gidx, base_key, strength) -> per-example outcome``.

    Random attacks are ``vmap``-ed over examples with key ``fold_in(base_key, global_index)``;
    deterministic ones run on the whole batch (examples are independent either way). With
    ``to_space`` the ratio ``‖T(x_adv) − T(x)‖/‖T(x)‖`` is also returned (``rel_l2_space``)."""

    def run(logits_fn, x, y_attack, y_true, gidx, base_key, strength):
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

    return run


def _space_ratio(to_space: Callable, x: jax.Array, x_adv: jax.Array) -> jax.Array:
    t_x = to_space(x)
    return _norms.l2_norm(to_space(x_adv) - t_x) / jnp.maximum(_norms.l2_norm(t_x), _FLOOR)


def attach_programs(logits_fn: Callable, runs: list[AttackRun],
                    rho_space: Callable | None = None) -> None:
    """One jitted program per spec for kinds with a traced strength, else per (spec, strength);
    DeepFool's program also measures ρ in ``rho_space`` when given."""
    for run in runs:
        spec = run.spec
        random = _registry.is_random(spec)
        if _registry.is_traced(spec):
            strength, run.arg = None, jnp.asarray(run.strength, jnp.float32)
        else:  # spatial: (angle, shift); custom: ε; DeepFool: none
            strength = run.strength if spec.kind == "spatial" else run.eps
            run.arg = None

        to_space = rho_space if spec.kind in _suites.MINIMAL_KINDS else None

        def build(spec=spec, strength=strength, random=random, to_space=to_space):
            return attack_body(_registry.attack_call(spec, strength), per_example_keys=random,
                               to_space=to_space)

        run.fn = _programs.compiled(
            build, (logits_fn,), key=("evaluate/attack", repr(spec), strength, random, to_space))


def _apply(logits_fn, x):
    return logits_fn(x)


def determinism(logits_fn: Callable, x: np.ndarray) -> dict[str, Any]:
    """Call ``logits_fn`` eagerly twice and once jitted on the same inputs; report the spread."""
    xj = jnp.asarray(x)
    a = np.asarray(logits_fn(xj), np.float64)
    b = np.asarray(logits_fn(xj), np.float64)
    c = np.asarray(_programs.compiled(lambda: _apply, (logits_fn,), key=("evaluate/apply",))(xj),
                   np.float64)
    scale = max(float(np.max(np.abs(a))) if a.size else 0.0, 1e-30)
    eager = float(np.max(np.abs(a - b))) / scale if a.size else 0.0
    jitted = float(np.max(np.abs(a - c))) / scale if a.size else 0.0
    return {"eager_rel_diff": eager, "jit_rel_diff": jitted}


def results_of(run: AttackRun, st: dict, labels: np.ndarray, specs, scale,
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
