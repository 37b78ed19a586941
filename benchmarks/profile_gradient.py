"""Where the time of a gradient goes, and what robustjax's convolution changes (issue 7).

Model: the SGR MNIST CNN (``robustjax.nn.create("sgr_cnn", 10, width="mnist")``), batch 128 of
28x28x1, float32, built twice in one process: with ``flax.linen.Conv`` ("flax") and with
``robustjax.nn.Conv`` ("robustjax", the zoo default). For each it times, interleaving the two so
that load from other jobs hits both alike (medians and minima over ``--repeats`` runs after
a warm-up; compile time excluded):

  forward, input gradient, parameter gradient, jvp+vjp (one power-iteration step on the input
  Jacobian), ERM step (SGD on cross-entropy), GN step (gradient w.r.t. parameters of
  CE + ‖∇ₓCE‖², double backprop), PGD-10 ℓ∞ unrolled and rolled (``lax.fori_loop``).

``--trace`` adds a per-op breakdown of one input gradient from a ``jax.profiler`` trace: the
XLA:CPU thunks (fusions, convolutions) with the JAX operation each came from (HLO metadata).
``--xla-flags`` sets ``XLA_FLAGS`` before JAX starts (e.g.
``--xla-flags=--xla_cpu_experimental_ynn_fusion_type=`` disables XLA's YNNPACK fusions), to
compare XLA CPU options. Run: ``python benchmarks/profile_gradient.py [--repeats 7] [--trace]
[--only gx,gp] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import time


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--pgd-repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--only", default="", help="comma list of: fwd,gx,gp,jvpvjp,erm,gn,pgd_unrolled,pgd_rolled")
    ap.add_argument("--variants", default="flax,robustjax")
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--xla-flags", default=None)
    ap.add_argument("--json", default=None)
    return ap.parse_args()


ARGS = parse()
if ARGS.xla_flags is not None:
    os.environ["XLA_FLAGS"] = ARGS.xla_flags

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from robustjax.attacks import pgd  # noqa: E402
from robustjax.nn import create  # noqa: E402

try:
    from robustjax.nn.conv import Conv as FastConv  # noqa: E402
except ImportError:  # before the layer existed
    FastConv = None


def build(batch):
    key = jax.random.PRNGKey(0)
    kx, ky, ki = jax.random.split(key, 3)
    x = jax.random.uniform(kx, (batch, 28, 28, 1))
    y = jax.random.randint(ky, (batch,), 0, 10)
    models = {"flax": create("sgr_cnn", 10, width="mnist", conv=nn.Conv)}
    if FastConv is not None:
        models["robustjax"] = create("sgr_cnn", 10, width="mnist", conv=FastConv)
    params = models["flax"].init(ki, x[:1])
    return models, params, x, y, key


def cross_entropy(logits, y):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))


def tasks(model, params, x, y, key):
    apply = model.apply

    def loss(p, x):
        return cross_entropy(apply(p, x), y)

    def jvpvjp(p, x, v):
        f = lambda z: apply(p, z)  # noqa: E731
        out, jv = jax.jvp(f, (x,), (v,))
        _, vjp = jax.vjp(f, x)
        return vjp(jv)[0]

    def erm(p, x):
        g = jax.grad(loss)(p, x)
        return jax.tree.map(lambda a, b: a - 0.01 * b, p, g)

    def gn(p, x):
        def obj(p):
            gx = jax.grad(loss, argnums=1)(p, x)
            return loss(p, x) + 0.1 * jnp.sum(gx ** 2)
        g = jax.grad(obj)(p)
        return jax.tree.map(lambda a, b: a - 0.01 * b, p, g)

    def attack(unroll):
        f = lambda z: apply(params, z)  # noqa: E731 — params as constants, as users write it
        return lambda x: pgd(f, x, y, eps=0.3, norm=jnp.inf, step_size=0.01, steps=10, key=key,
                             unroll=unroll)

    v = jax.random.normal(key, x.shape)
    return {
        "fwd": (jax.jit(apply), (params, x)),
        "gx": (jax.jit(jax.grad(loss, argnums=1)), (params, x)),
        "gp": (jax.jit(jax.grad(loss)), (params, x)),
        "jvpvjp": (jax.jit(jvpvjp), (params, x, v)),
        "erm": (jax.jit(erm), (params, x)),
        "gn": (jax.jit(gn), (params, x)),
        "pgd_unrolled": (attack(True), (x,)),
        "pgd_rolled": (attack(False), (x,)),
    }


def hlo_names(compiled_text):
    """instruction name -> JAX op_name, from the optimized HLO's metadata."""
    names = {}
    for line in compiled_text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = .*?metadata=\{op_name=\"([^\"]+)\"", line)
        if m:
            names[m.group(1)] = m.group(2)
    return names


def trace_breakdown(fn, args, label, runs=5):
    compiled = fn.lower(*args).compile()
    names = hlo_names(compiled.as_text())
    for _ in range(2):
        jax.block_until_ready(fn(*args))
    d = tempfile.mkdtemp(prefix="rj_trace_")
    with jax.profiler.trace(d):
        for _ in range(runs):
            jax.block_until_ready(fn(*args))
    files = glob.glob(d + "/**/*.trace.json.gz", recursive=True)
    events = json.load(gzip.open(files[0]))["traceEvents"]
    acc = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and (e["name"] in names or "fusion" in e["name"]
                                   or e["name"].startswith("convolution")):
            acc[e["name"]].append(e["dur"] / 1e3)
    total = sum(statistics.median(v) for v in acc.values())
    print(f"\nper-op breakdown of one input gradient ({label}); median ms per call over {runs} "
          f"calls; thunk sum {total:.1f} ms (thunks may overlap or run asynchronously)")
    rows = sorted(acc.items(), key=lambda kv: -statistics.median(kv[1]))
    for name, v in rows[:14]:
        print(f"  {statistics.median(v):8.2f} ms  {name:28s} {names.get(name, '')[-70:]}")
    return {name: statistics.median(v) for name, v in rows}


def main():
    models, params, x, y, key = build(ARGS.batch)
    wanted = [v for v in ARGS.variants.split(",") if v in models]
    allt = {name: tasks(models[name], params, x, y, key) for name in wanted}
    only = [t for t in ARGS.only.split(",") if t] or list(next(iter(allt.values())))
    print(f"jax {jax.__version__}, devices {jax.devices()}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
          f"batch {ARGS.batch}, cpu count {os.cpu_count()}")
    results = {}
    ref_out = {}
    for t in only:
        compile_s = {}
        for name in wanted:
            fn, args = allt[name][t]
            t0 = time.perf_counter()
            out = jax.block_until_ready(fn(*args))
            compile_s[name] = time.perf_counter() - t0
            if t in ("gx", "gp", "jvpvjp"):
                leaves = jax.tree.leaves(out)
                if t not in ref_out:
                    ref_out[t] = leaves
                else:
                    err = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30))
                              for a, b in zip(leaves, ref_out[t]))
                    print(f"  {t}: max relative difference {name} vs {wanted[0]}: {err:.1e}")
        reps = ARGS.pgd_repeats if t.startswith("pgd") else ARGS.repeats
        times = {name: [] for name in wanted}
        for _ in range(reps):
            for name in wanted:
                fn, args = allt[name][t]
                t0 = time.perf_counter()
                jax.block_until_ready(fn(*args))
                times[name].append(time.perf_counter() - t0)
        row = {}
        for name in wanted:
            row[name] = dict(median_ms=1e3 * statistics.median(times[name]),
                             min_ms=1e3 * min(times[name]), first_call_s=compile_s[name])
        results[t] = row
        line = "  ".join(f"{name} {r['median_ms']:9.1f} (min {r['min_ms']:8.1f})" for name, r in row.items())
        ratio = ""
        if len(wanted) == 2:
            a, b = (row[n]["median_ms"] for n in wanted)
            ratio = f"   {wanted[1]}/{wanted[0]} = {b / a:.2f}"
        print(f"{t:13s} ms: {line}{ratio}", flush=True)
    if ARGS.trace:
        for name in wanted:
            fn, args = allt[name]["gx"]
            results.setdefault("trace", {})[name] = trace_breakdown(fn, args, name)
    if ARGS.json:
        with open(ARGS.json, "w") as fh:
            json.dump(dict(jax=jax.__version__, xla_flags=os.environ.get("XLA_FLAGS", ""),
                           batch=ARGS.batch, results=results), fh, indent=1)


if __name__ == "__main__":
    sys.exit(main())
