"""PGD-10 cost in units of one jitted input gradient, for each loop style and norm.

Model: the SGR MNIST CNN (``benchmarks.common.build_model``), batch 128 of mnist-5k digits,
PGD-10 with random start, ℓ∞ ε = 0.3, α = 0.01 and ℓ2 ε = 2.0, α = 0.2, on this machine's
default JAX backend (XLA:CPU here).

Candidates (``candidates()``):
  * ``input_grad``         — one jitted ``∇ₓ Σ CE(f(x), y)``: one forward + one backward pass.
  * ``forward``            — one jitted forward pass (logits), for reference.
  * ``pgd_<norm>_unrolled`` — ``robustjax.attacks.pgd(..., unroll=True)``, one jit program.
  * ``pgd_<norm>_rolled``   — ``pgd(..., unroll=False)``: one jit program, ``lax.fori_loop``.
  * ``pgd_<norm>_python``   — the jitted input gradient called from a Python loop, the step,
    projection and clipping as eager ops (how the cleverhans JAX attacks run).

``run()`` times them interleaved (median of ``repeats`` ≥ 5 rounds after a warm-up,
compilation excluded and reported separately) and returns a dict; the ratio of a PGD-10 row is
its median ÷ (10 × the median of ``input_grad``): 1 means the attack costs exactly its ten
gradients. Run alone: ``python benchmarks/attacks.py [--repeats 7] [--batch 128]``.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp

from benchmarks import common
from robustjax.attacks import _common, pgd
from robustjax.core import norms as N

NORMS = {"linf": (jnp.inf, common.PGD_LINF), "l2": (2, common.PGD_L2)}
STYLES = ("unrolled", "rolled", "python")


def default_unroll():
    """``pgd``'s default ``unroll`` (what a user gets without choosing)."""
    return inspect.signature(pgd).parameters["unroll"].default


def default_style() -> str:
    """``"rolled"`` if ``pgd``'s default leaves the loop rolled (``False``, 0 or 1), else ``"unrolled"``
    (``True`` or an unroll factor > 1, measured here as full unrolling)."""
    u = _common.resolve_unroll(default_unroll(), common.PGD_STEPS)
    return "rolled" if u is False or (type(u) is int and u <= 1) else "unrolled"


def python_loop_pgd(grad_fn, key, *, eps, step_size, norm, steps=common.PGD_STEPS):
    """PGD from a Python loop: jitted gradient, eager step / projection / clip (cleverhans style)."""

    def attack(variables, x, y):
        x_adv = jnp.clip(x + N.sample_uniform_ball(key, x.shape, eps=eps, norm=norm), 0.0, 1.0)
        for _ in range(steps):
            g = grad_fn(variables, x_adv, y)
            x_adv = x_adv + step_size * N.steepest_ascent_direction(g, norm=norm)
            x_adv = jnp.clip(x + N.project_to_ball(x_adv - x, eps=eps, norm=norm), 0.0, 1.0)
        return x_adv

    return attack


def candidates(model, variables, x, y, *, names=None, key=None) -> dict[str, common.Candidate]:
    """``{name: Candidate}`` of the functions above (``names``: a subset; default all); each
    is called as ``fn(variables, x, y)``."""
    key = jax.random.PRNGKey(3) if key is None else key
    grad_fn = common.input_grad_fn(model)
    args = (variables, x, y)
    out = {"input_grad": common.Candidate(grad_fn, args),
           "forward": common.Candidate(jax.jit(lambda v, xx, yy: model.apply(v, xx)), args)}
    for norm_name, (norm, hp) in NORMS.items():
        for style in STYLES:
            name = f"pgd_{norm_name}_{style}"
            if style == "python":
                out[name] = common.Candidate(
                    python_loop_pgd(grad_fn, key, norm=norm, **hp), args, jit=False)
            else:
                def attack(v, xx, yy, norm=norm, hp=hp, unroll=(style == "unrolled")):
                    return pgd(partial(model.apply, v), xx, yy, norm=norm, steps=common.PGD_STEPS,
                               key=key, unroll=unroll, **hp)

                out[name] = common.Candidate(jax.jit(attack), args)
    if names is not None:
        out = {k: v for k, v in out.items() if k in names}
    return out


def agreement(cands: dict[str, common.Candidate]) -> dict[str, float]:
    """Max |difference| between the warm-up results of the PGD styles of each norm."""
    out = {}
    for norm_name in NORMS:
        res = [c.output for n, c in cands.items() if n.startswith(f"pgd_{norm_name}_")
               and c.output is not None]
        if len(res) > 1:
            out[norm_name] = max(float(jnp.max(jnp.abs(r - res[0]))) for r in res[1:])
    return out


def run(*, batch: int = 128, repeats: int = 7, names=None, progress=None) -> dict:
    """Time the candidates; returns ``{"times": {name: {...}}, "ratios": {...}, ...}``."""
    model, variables, x, y, source = common.model_function(batch)
    cands = candidates(model, variables, x, y, names=names)
    times = common.time_interleaved(cands, repeats=repeats, progress=progress)
    ratios = {}
    if "input_grad" in times:
        unit = common.PGD_STEPS * times["input_grad"]["median_s"]
        ratios = {n: t["median_s"] / unit for n, t in times.items() if n.startswith("pgd_")}
    return {"batch": batch, "repeats": repeats, "data": source, "default_unroll": default_unroll(),
            "times": times, "ratios_to_10_grads": ratios, "max_abs_difference": agreement(cands)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args(argv)
    if args.repeats < 5:
        ap.error("--repeats must be >= 5")
    res = run(batch=args.batch, repeats=args.repeats)
    print(f"model: {common.MODEL_DESCRIPTION}; batch {args.batch} ({res['data']}); backend "
          f"{jax.default_backend()}; PGD-{common.PGD_STEPS}; median of {args.repeats} interleaved runs; "
          f"pgd default unroll={res['default_unroll']}")
    t_grad = res["times"]["input_grad"]
    print(f"one jitted input gradient: {t_grad['median_s'] * 1e3:.1f} ms "
          f"(min {t_grad['min_s'] * 1e3:.1f}, max {t_grad['max_s'] * 1e3:.1f}); one forward pass: "
          f"{res['times']['forward']['median_s'] * 1e3:.1f} ms")
    print(f"max |difference| between loop styles: {res['max_abs_difference']}")
    print(f"| {'PGD-10 implementation':<22} | {'median s':>8} | {'min s':>7} | {'max s':>7} | "
          f"{'÷ (10 × grad)':>13} | {'compile s':>9} |")
    print(f"|{'-' * 24}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 15}|{'-' * 11}|")
    for name, t in res["times"].items():
        if not name.startswith("pgd_"):
            continue
        comp = "—" if t["compile_s"] is None else f"{t['compile_s']:.1f}"
        print(f"| {name:<22} | {t['median_s']:8.3f} | {t['min_s']:7.3f} | {t['max_s']:7.3f} | "
              f"{res['ratios_to_10_grads'][name]:13.2f} | {comp:>9} |")
    return res


if __name__ == "__main__":
    main()
