"""How the evaluator calls each attack kind of ``robustjax.attacks`` at one resolved strength.

``attack_call(spec, strength)`` returns ``f(logits_fn, x, y, key, strength) -> x_adv`` for a
batch. Random attacks (``is_random``) are ``vmap``-ed by the evaluator over examples with one key
per example (derived from the example's global index), so every random draw is a function of the
example, not of the chunk it fell in; deterministic ones run on the batch as is. For the kinds in
``TRACED_KINDS`` the strength is a traced argument, so one compiled program serves every ε of a
spec; the others (spatial, custom callables) are compiled once per strength.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

from robustjax import attacks as A
from robustjax.evaluation.suites import AttackSpec

# Parameters the evaluator consumes itself (never passed to an attack).
_EVALUATOR_PARAMS = ("step_size_factor",)
# Kinds whose strength may be a traced scalar (one compilation for all ε of a spec).
TRACED_KINDS = ("fgm", "fgsm", "pgd", "wrm", "uniform", "gaussian", "lrc")


def is_random(spec: AttackSpec) -> bool:
    """Whether the attack draws random numbers (then it needs per-example keys)."""
    kind = spec.kind
    if kind in ("fgm", "fgsm", "wrm", "deepfool"):
        return False
    if kind == "pgd":
        return bool(spec.params.get("random_start", True))
    if kind == "spatial":
        return spec.params.get("mode", "random") == "random"
    return True  # noise attacks and custom callables


def is_traced(spec: AttackSpec) -> bool:
    return spec.kind in TRACED_KINDS


def _params(spec: AttackSpec) -> dict[str, Any]:
    p = {k: v for k, v in spec.params.items() if k not in _EVALUATOR_PARAMS}
    if "step_size_factor" in spec.params and "step_size" in spec.params:
        raise ValueError(f"spec {spec.name!r}: give step_size or step_size_factor, not both")
    return p


def _step_size(spec: AttackSpec, p: dict, eps: Any) -> dict:
    if "step_size_factor" in spec.params:
        return dict(p, step_size=float(spec.params["step_size_factor"]) * eps)
    return p


def _check_keys(spec: AttackSpec, params: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"spec {spec.name!r} ({spec.kind}): unknown parameter(s) {unknown}; "
            f"allowed: {sorted(allowed)}"
        )


def attack_call(spec: AttackSpec, strength: Any = None) -> Callable:
    """``f(logits_fn, x, y, key, strength) -> x_adv`` running ``spec``.

    For ``TRACED_KINDS`` the strength (ε, γ, σ) is the last argument (may be traced); otherwise
    it is fixed here: ``(max_angle, max_shift)`` for spatial attacks, ε for custom callables
    (DeepFool has none).
    """
    kind = spec.kind
    clip = spec.clip
    if kind == "spatial":
        max_angle, max_shift = strength
        p = dict(spec.params)
        _check_keys(spec, p, ("mode", "num_angles", "num_shifts", "n", "loss"))
        p.setdefault("mode", "random")  # SOAR App. D: random rotations and translations

        def run(logits_fn, x, y, key, _strength=None):
            k = key if p["mode"] == "random" else None
            return A.spatial(
                logits_fn, x, y, max_angle=max_angle, max_shift=max_shift, key=k, clip=clip, **p
            )

        return run

    p = _params(spec)
    if kind in ("fgm", "fgsm"):
        _check_keys(spec, p, ("targeted", "loss"))
        norm = math.inf if kind == "fgsm" else spec.norm

        def run(logits_fn, x, y, key, eps):
            return A.fgm(logits_fn, x, y, eps=eps, norm=norm, clip=clip, **p)

    elif kind == "pgd":
        _check_keys(
            spec, p, ("step_size", "steps", "random_start", "targeted", "loss", "temperature",
                      "unroll"),
        )
        for req in ("steps", "step_size"):
            if req not in _step_size(spec, p, 1.0):
                raise ValueError(
                    f"spec {spec.name!r} (pgd) needs '{req}' (or step_size_factor) in params"
                )
        random_start = p.pop("random_start", True)
        # unroll: the attack's default (unrolled up to 20 steps, one rolled loop beyond: with the
        # zoo's convolution both run equally fast and the rolled loop compiles once).

        def run(logits_fn, x, y, key, eps):
            return A.pgd(
                logits_fn, x, y, eps=eps, norm=spec.norm, key=key if random_start else None,
                random_start=random_start, clip=clip, **_step_size(spec, p, eps),
            )

    elif kind == "wrm":
        _check_keys(spec, p, ("steps", "step_size", "unroll"))
        p.setdefault("steps", 15)

        def run(logits_fn, x, y, key, gamma):
            return A.wrm(logits_fn, x, y, gamma=gamma, clip=clip, **_step_size(spec, p, gamma))

    elif kind == "deepfool":
        _check_keys(spec, p, ("overshoot", "max_iter", "num_classes"))

        def run(logits_fn, x, y, key, _strength=None):
            # DeepFool attacks the model's own prediction (label-free, SGR Table 3 "FOOL").
            return A.deepfool(logits_fn, x, clip=clip, **p)[0]

    elif kind == "uniform":
        _check_keys(spec, p, ())

        def run(logits_fn, x, y, key, eps):
            return A.uniform_noise(x, key=key, eps=eps, norm=spec.norm, clip=clip)

    elif kind == "gaussian":
        _check_keys(spec, p, ("worst_of_n", "loss"))
        n = p.pop("worst_of_n", 1)

        def run(logits_fn, x, y, key, sigma):
            sampler = functools.partial(A.gaussian_noise, sigma=sigma, clip=clip)
            if n == 1:
                return sampler(x, key=key)
            return A.worst_of_n(logits_fn, x, y, sampler=sampler, n=n, key=key, **p)

    elif kind == "lrc":
        _check_keys(spec, p, ("decay_length", "worst_of_n", "loss"))
        if "decay_length" not in p:
            raise ValueError(f"spec {spec.name!r} (lrc) needs 'decay_length' (ζ) in params")
        n = p.pop("worst_of_n", 100)
        decay_length = float(p.pop("decay_length"))

        def run(logits_fn, x, y, key, eps):
            sampler = functools.partial(A.lrc_noise, eps=eps, decay_length=decay_length, clip=clip)
            if n == 1:
                return sampler(x, key=key)
            return A.worst_of_n(logits_fn, x, y, sampler=sampler, n=n, key=key, **p)

    elif kind == "custom":
        fn = spec.attack
        sig = inspect.signature(fn)
        takes_key = "key" in sig.parameters or any(
            q.kind == q.VAR_KEYWORD for q in sig.parameters.values()
        )

        eps = None if strength is None else float(strength)

        def run(logits_fn, x, y, key, _strength=None):
            kw = dict(_step_size(spec, p, eps), eps=eps)
            if takes_key:
                kw["key"] = key
            if clip is not None and "clip" in sig.parameters:
                kw["clip"] = clip
            return fn(logits_fn, x, y, **kw)

    else:  # pragma: no cover - AttackSpec validates kinds
        raise ValueError(f"unknown attack kind {kind!r}")
    return run
