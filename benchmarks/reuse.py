"""Compiled programs reused across parameters (issue 15): compile vs run time of a first call and
of a second call with *new* parameters, for the public functions a notebook user calls eagerly.

For each of PGD-10 ℓ∞ (``attacks.pgd``), ``core.jacobian_top_singular`` (10 iterations),
``regularizers.soar_penalty`` (``hvp="fd"``) and ``evaluation.evaluate`` (FGSM + PGD-10 at
ℓ∞ ε = 0.1 over ``batch`` mnist-5k test digits, one chunk), on the SGR MNIST CNN:

1. **first call**: ``fn(jax.tree_util.Partial(model.apply, variables_1))`` on an empty program
   cache (``robustjax.core.programs.clear_cache()``);
2. **second call, new parameters**: ``fn(Partial(model.apply, variables_2))`` — reuses the
   program (the arrays of a ``Partial`` are dynamic arguments);
3. **new closure** (the "before"): ``fn(lambda x: model.apply(variables_3, x))`` — a closure
   cannot be split, so a new one compiles again (core functions and regularizers run it inline,
   op by op, instead; see ``robustjax/core/programs.py``).

Compile seconds are what ``jax.monitoring`` reports for tracing, lowering and XLA compilation
during the call (``programs.compile_stats``); run seconds are the call's wall time minus those.
Each call is timed once, as a user meets it, so absolute numbers follow the machine's load; the
goal is the ratio *compile seconds of the second call ÷ compile seconds of the first* ≈ 0.
Run alone: ``python benchmarks/reuse.py [--batch 128]``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from benchmarks import common
from robustjax import attacks, evaluation, regularizers
from robustjax.core import jacobian_top_singular, programs

#: Target of the "second call with new parameters" ratio: compile seconds ≈ 0.
REUSE_TARGET = 0.05

FUNCTIONS = {
    "pgd10": "PGD-10 ℓ∞ (attacks.pgd)",
    "top_singular": "jacobian_top_singular 10 iters",
    "soar": "soar_penalty (fd)",
    "evaluate": "evaluation.evaluate (FGSM + PGD-10)",
}


def _calls(x, y, data):
    key = jax.random.PRNGKey(3)
    suite = [evaluation.AttackSpec("FGSM", "fgsm", eps=(0.1,), norm=math.inf),
             evaluation.AttackSpec("PGD-10", "pgd", eps=(0.1,), norm=math.inf,
                                   params={"steps": common.PGD_STEPS, "step_size": 0.025})]
    return {
        "pgd10": lambda f: attacks.pgd(f, x, y, norm=math.inf, steps=common.PGD_STEPS, key=key,
                                       **common.PGD_LINF),
        "top_singular": lambda f: jacobian_top_singular(f, x, iters=10, key=key),
        "soar": lambda f: regularizers.soar_penalty(f, x, y, eps=0.3, alpha=0.01, key=key),
        "evaluate": lambda f: evaluation.evaluate(
            f, data, suite=suite, batch_size=x.shape[0], key=0, progress=False,
            checks=False).robust_accuracy(),
    }


def timed(fn, logits_fn) -> dict:
    """One call: wall seconds, compile seconds (trace + lower + XLA), run = wall − compile."""
    with programs.compile_stats() as stats:
        start = time.perf_counter()
        jax.block_until_ready(fn(logits_fn))
        wall = time.perf_counter() - start
    return {"wall_s": wall, "compile_s": stats.seconds, "run_s": max(wall - stats.seconds, 0.0),
            "compiles": stats.compiles}


def run(*, batch: int = 128, progress=None) -> dict:
    model = common.build_model()
    from robustjax import data as rj_data

    test = rj_data.load("mnist-5k", "test")
    x = jnp.asarray(np.asarray(test.images[:batch], np.float32))
    y = jnp.asarray(np.asarray(test.labels[:batch], np.int32))
    variables = [model.init(jax.random.PRNGKey(s), x[:1]) for s in range(3)]
    calls = _calls(x, y, (np.asarray(x), np.asarray(y)))
    out = {}
    for name, fn in calls.items():
        if progress:
            progress(f"compile reuse: {name}")
        programs.clear_cache()
        first = timed(fn, Partial(model.apply, variables[0]))
        second = timed(fn, Partial(model.apply, variables[1]))
        closure = timed(fn, lambda v, p=variables[2]: model.apply(p, v))
        out[name] = {"label": FUNCTIONS[name], "first": first, "second_new_params": second,
                     "new_closure": closure,
                     "compile_ratio": second["compile_s"] / max(first["compile_s"], 1e-9)}
    return {"batch": batch, "functions": out}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args(argv)
    res = run(batch=args.batch)
    print(f"model: {common.MODEL_DESCRIPTION}; batch {args.batch}")
    print(f"{'function':38s} {'1st compile':>11s} {'1st run':>8s} {'2nd compile':>11s} "
          f"{'2nd run':>8s} {'ratio':>6s} {'closure compile':>15s}")
    for r in res["functions"].values():
        a, b, c = r["first"], r["second_new_params"], r["new_closure"]
        print(f"{r['label']:38s} {a['compile_s']:11.2f} {a['run_s']:8.2f} {b['compile_s']:11.3f} "
              f"{b['run_s']:8.2f} {r['compile_ratio']:6.3f} {c['compile_s']:15.2f}")


if __name__ == "__main__":
    main()
