"""SOAR penalty cost in units of one jitted input gradient (Ma, Faghri & Farahmand 2020, eq. 9–11).

Times ``robustjax.regularizers.soar_penalty`` (the value, jitted, batch 128 of mnist-5k on
the SGR MNIST CNN, ℓ∞, ε = 0.3, α = 0.01, one Gaussian direction per example) with
``hvp="fd"`` and ``hvp="exact"``, beside one jitted input gradient of the summed cross-entropy,
interleaved, medians of ``repeats`` (≥ 5) runs after a warm-up.

Gradient-evaluation count (the denominator's multiplier), read from
``robustjax/regularizers/soar.py`` and ``robustjax/core/hvp.py``:

* ``hvp="fd"``: **2**. ``input_hvp_finite_difference(..., return_grad=True)`` computes
  ``∇ℓ(x)`` and ``∇ℓ(x + h ẑ)`` — two input gradients, each one forward + one backward pass;
  everything else (``H z`` assembly, norms, clipping) is elementwise.
* ``hvp="exact"``: **2**. ``input_grad`` gives ``∇ℓ(x)`` (one gradient) and ``input_hvp`` is
  ``jax.jvp`` of the input gradient (forward-over-reverse). That jvp re-evaluates the primal
  gradient — the same computation as ``input_grad``, which XLA can merge (CSE) — plus the
  tangent sweep, which for this ReLU / max-pool / linear network is one more forward and one
  more backward pass through the same linear ops (the nonlinearities contribute fixed masks):
  about one more gradient. So the floor is 2 gradients; a ratio near 1.5 would mean the
  duplicate primal gradient is not shared, near 1 that it is.

Ratio = median ÷ (count × median of one input gradient). Run alone:
``python benchmarks/soar.py [--batch 128] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax

from benchmarks import common
from robustjax.regularizers import soar_penalty

# gradient evaluations per call of soar_penalty, per hvp method (see the module docstring)
GRADIENT_EVALUATIONS = {"fd": 2, "exact": 2}
SOAR_KWARGS = dict(eps=0.3, alpha=0.01, norm=float("inf"))


def candidates(model, variables, x, y, *, hvps=("fd", "exact"),
               with_grad=True) -> dict[str, common.Candidate]:
    key = jax.random.PRNGKey(5)
    out = {}
    if with_grad:
        out["input_grad"] = common.Candidate(common.input_grad_fn(model), (variables, x, y))
    for hvp in hvps:
        def penalty(v, xx, yy, hvp=hvp):
            return soar_penalty(partial(model.apply, v), xx, yy, key=key, hvp=hvp, **SOAR_KWARGS)

        out[f"soar_{hvp}"] = common.Candidate(jax.jit(penalty), (variables, x, y))
    return out


def run(*, batch: int = 128, repeats: int = 7, progress=None) -> dict:
    model, variables, x, y, source = common.model_function(batch)
    times = common.time_interleaved(candidates(model, variables, x, y), repeats=repeats,
                                    progress=progress)
    grad = times["input_grad"]["median_s"]
    ratios = {hvp: times[f"soar_{hvp}"]["median_s"] / (n * grad)
              for hvp, n in GRADIENT_EVALUATIONS.items()}
    return {"batch": batch, "repeats": repeats, "data": source, "times": times,
            "gradient_evaluations": GRADIENT_EVALUATIONS, "ratios": ratios}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    if args.repeats < 5:
        ap.error("--repeats must be >= 5")
    res = run(batch=args.batch, repeats=args.repeats)
    t = res["times"]
    print(f"model: {common.MODEL_DESCRIPTION}; batch {args.batch}; median of {args.repeats} "
          f"interleaved runs; one input gradient {t['input_grad']['median_s'] * 1e3:.1f} ms")
    for hvp, n in GRADIENT_EVALUATIONS.items():
        tm = t[f"soar_{hvp}"]
        print(f"soar_penalty(hvp={hvp!r}): {tm['median_s'] * 1e3:.1f} ms = "
              f"{res['ratios'][hvp]:.2f} × ({n} × gradient); compile {tm['compile_s']:.1f} s")
    return res


if __name__ == "__main__":
    main()
