"""Speed and memory of per-example Jacobian power iteration (Roth et al. 2019, eq. 11).

For the SGR MNIST CNN (``benchmarks.common.build_model``) at batch 128 of mnist-5k digits:

* ``jacobian_top_singular(iters=10)`` ÷ (10 × one batched ``jax.jvp`` + ``jax.vjp`` of the model
  at the same inputs), for each way of forming J·v / Jᵀ·u (``JACOBIAN_METHODS``: ``linearize`` +
  ``linear_transpose`` (the default), ``jvp``/``vjp`` re-evaluated, ``vjp`` + its transpose).
  One iteration is one J·v and one Jᵀ·u, so 1.0 means the loop costs exactly its passes; the
  denominator's jvp and vjp each include a forward pass, which ``linearize`` does only once.
* peak memory of that call ÷ peak memory of one plain ERM gradient step (cross-entropy,
  ``value_and_grad`` in the parameters, SGD update), from XLA's compiled memory analysis.

Medians of ``--repeats`` (≥ 5) interleaved runs after a warm-up. Run alone:
``python benchmarks/spectral.py [--batch 128] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp

from benchmarks import common
from robustjax.core.jacobian import JACOBIAN_METHODS, jacobian_top_singular

ITERS = 10


def candidates(model, variables, x, y, *, methods=("linearize",), iters=ITERS,
               with_erm=False) -> dict[str, common.Candidate]:
    """``jvp_vjp`` (one batched jvp + vjp) and ``top_singular_<method>`` for each method;
    ``erm_sgd_step`` too when ``with_erm`` (the memory reference)."""
    v0 = jax.random.normal(jax.random.PRNGKey(2), x.shape)
    u0 = jax.random.normal(jax.random.PRNGKey(3), (x.shape[0], common.NUM_CLASSES))

    @jax.jit
    def one_jvp_vjp(v, xx, dv, du):
        f = partial(model.apply, v)
        jv = jax.jvp(f, (xx,), (dv,))[1]
        jtu = jax.vjp(f, xx)[1](du)[0]
        return jv, jtu

    out = {"jvp_vjp": common.Candidate(one_jvp_vjp, (variables, x, v0, u0))}
    for method in methods:
        def top(v, xx, dv, method=method):
            return jacobian_top_singular(partial(model.apply, v), xx, iters=iters, v0=dv,
                                         method=method)

        out[f"top_singular_{method}"] = common.Candidate(jax.jit(top), (variables, x, v0))
    if with_erm:
        @jax.jit
        def erm_sgd_step(v, xx, yy):
            def loss(p):
                logp = jax.nn.log_softmax(model.apply({**v, "params": p}, xx))
                return -jnp.mean(jnp.take_along_axis(logp, yy[:, None], 1))

            val, g = jax.value_and_grad(loss)(v["params"])
            return jax.tree.map(lambda a, b: a - 0.01 * b, v["params"], g), val

        out["erm_sgd_step"] = common.Candidate(erm_sgd_step, (variables, x, y))
    return out


def run(*, batch: int = 128, repeats: int = 7, iters: int = ITERS, methods=JACOBIAN_METHODS,
        progress=None) -> dict:
    model, variables, x, y, source = common.model_function(batch)
    cands = candidates(model, variables, x, y, methods=methods, iters=iters, with_erm=True)
    times = common.time_interleaved(cands, repeats=repeats, progress=progress)
    unit = iters * times["jvp_vjp"]["median_s"]
    erm_mem = times["erm_sgd_step"]["memory_bytes"]
    rows = {}
    for method in methods:
        t = times[f"top_singular_{method}"]
        rows[method] = {"ratio_to_iters_jvp_vjp": t["median_s"] / unit,
                        "memory_ratio_to_erm_step": (t["memory_bytes"] / erm_mem
                                                     if t["memory_bytes"] and erm_mem else None)}
    return {"batch": batch, "repeats": repeats, "iters": iters, "data": source, "times": times,
            "methods": rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--iters", type=int, default=ITERS)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be >= 5")
    res = run(batch=args.batch, repeats=args.repeats, iters=args.iters)
    t = res["times"]
    print(f"model: {common.MODEL_DESCRIPTION}; batch {args.batch}; {args.iters} power iterations; "
          f"median of {args.repeats} interleaved runs; backend {jax.default_backend()}")
    print(f"one batched jvp+vjp: {t['jvp_vjp']['median_s'] * 1e3:.2f} ms; one ERM SGD step: "
          f"{t['erm_sgd_step']['median_s'] * 1e3:.2f} ms, peak "
          f"{(t['erm_sgd_step']['memory_bytes'] or 0) / 2**20:.1f} MiB")
    print(f"{'method':<16}{'time ms':>10}{'÷ (iters × jvp+vjp)':>22}{'peak MiB':>10}"
          f"{'peak ÷ ERM step':>18}{'compile s':>11}")
    for method, row in res["methods"].items():
        tm = t[f"top_singular_{method}"]
        mem = row["memory_ratio_to_erm_step"]
        print(f"{method:<16}{tm['median_s'] * 1e3:>10.2f}{row['ratio_to_iters_jvp_vjp']:>22.3f}"
              f"{(tm['memory_bytes'] or 0) / 2**20:>10.1f}{(mem or float('nan')):>18.3f}"
              f"{tm['compile_s']:>11.1f}")
    return res


if __name__ == "__main__":
    main()
