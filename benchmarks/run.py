"""One table of every performance goal of issue 7, measured in one run on this machine.

Usage::

    python -m benchmarks                       # everything; table on stdout, JSON to
                                               # benchmarks/results/latest.json
    python benchmarks/run.py --markdown        # the same, plus the table as Markdown
    python -m benchmarks --only fused,compile  # a subset: fused, peers, training, compile,
                                               # evaluation, reuse
    python -m benchmarks --quick               # tiny batch, 1 repeat: a smoke run that never
                                               # claims a goal (met = "n/a (quick)")
    python -m benchmarks --torch-venv PATH     # where the torch peer's venv lives (default
                                               # $ROBUSTJAX_TORCH_VENV or benchmarks/.torch-venv)
    python -m benchmarks --flax-conv           # the model with plain flax.linen.Conv ("before")
    python -m benchmarks --no-ynnpack          # train steps with XLA:CPU's YNNPACK fusions off
                                               # (ROBUSTJAX_CPU_YNNPACK=0; before issue 18 the
                                               # default of robustjax.core.compile)

Sections and how each ratio is defined (every time: median of ``--repeats`` ≥ 5 runs after a
warm-up, compilation excluded; the functions of one section run interleaved, round by round,
so machine load hits numerator and denominator alike):

* **fused** — fused loops at their pass-count limit (goal 1):
  PGD-10 (ℓ∞ ε=0.3 α=0.01, ℓ2 ε=2 α=0.2, random start; unrolled ``unroll=True`` and rolled
  ``unroll=False``) ÷ (10 × one jitted input gradient of the summed cross-entropy) ≤ 1.10;
  ``jacobian_top_singular(iters=10)`` (default method) ÷ (10 × one batched jvp + vjp) ≤ 1.15;
  ``soar_penalty`` (``hvp="fd"`` and ``"exact"``) ÷ (2 × one input gradient) ≤ 1.15, 2 being its
  gradient-evaluation count (see ``benchmarks/soar.py`` for why both methods count 2).
* **peers** — (goal 2) torchattacks PGD-10 time ÷ robustjax PGD-10 time (robustjax with
  ``pgd``'s default ``unroll``), ℓ∞ and ℓ2, ≥ 1.0 (stretch ≥ 1.5); Python-loop JAX PGD-10
  (jitted gradient, eager step/projection: cleverhans style) ÷ robustjax PGD-10 ℓ∞ ≥ 3. Torch
  runs in its own venv (``benchmarks/peer/torch_peer.py`` in a subprocess, same model, batch
  and thread count); missing venv → "peer not installed". Train steps (issue 18): PyTorch ERM
  step ÷ robustjax's library ERM step (``jit_train_step``) and ÷ a plain ``jax.jit`` user step,
  ≥ 1.0 (goal 1.2), and PyTorch PGD-10 AT step ÷ robustjax's ≥ 1.0, timed by
  ``benchmarks/race.py``: two persistent worker processes (JAX, PyTorch) on the same digits,
  alternating round by round, medians of ≥ 7 rounds (the peer subprocess above runs after the
  JAX timings, under different load: its ERM ratio drifted 0.92–1.09 between runs where the
  race measured 0.67–0.75).
* **training** — (goal 3) each method's ``train_step`` time ÷ ERM's, against ≈ 1.1 × its pass
  count; peak XLA memory of the SNR-10 and SOAR steps ÷ ERM's ≤ 3.
* **compile** — (goal 4) ``lower().compile()`` seconds of PGD-10 ℓ∞ (unrolled and rolled) and of
  every train step, < 10 s.
* **evaluation** — (issue 16, no goal) throughput of ``evaluation.evaluate`` on the ``mnist-quick``
  suite, 4 forced host devices ÷ 1 device (examples per second; ``benchmarks/evaluation.py``):
  each device count in its own process, alternating over 2 rounds; the forced devices share this
  machine's cores.
* **reuse** — (issue 15) compiled programs reused across parameters: PGD-10 ℓ∞,
  ``jacobian_top_singular``, ``soar_penalty`` and ``evaluate`` called eagerly on
  ``jax.tree_util.Partial(model.apply, variables)``, first with one set of parameters, then with
  new ones; compile seconds (``jax.monitoring``: trace + lower + XLA) of the second call ÷ those
  of the first ≤ 0.05, with each call's compile and run seconds and, for reference, the compile
  seconds of a new closure over new parameters (``benchmarks/reuse.py``). One call each, as a
  notebook user meets them: not medians.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import attacks as bench_attacks
from benchmarks import common
from benchmarks import evaluation as bench_eval
from benchmarks import race as bench_race
from benchmarks import reuse as bench_reuse
from benchmarks import soar as bench_soar
from benchmarks import spectral as bench_spectral
from benchmarks import train_step as bench_train
from benchmarks.report import (
    build_rows,
    default_jacobian_method,
    format_header,
    format_markdown,
    format_text,
)
from robustjax.core import compile as compile_
from robustjax.core import host_memory

SECTIONS = ("fused", "peers", "training", "compile", "evaluation", "reuse")
BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_JSON = BENCH_DIR / "results" / "latest.json"
PEER_SCRIPT = BENCH_DIR / "peer" / "torch_peer.py"
PEER_SETUP = "bash benchmarks/peer/setup_torch_env.sh"
VENV_ENV_VAR = "ROBUSTJAX_TORCH_VENV"
QUICK_BATCH = 8


def default_venv() -> Path:
    return Path(os.environ.get(VENV_ENV_VAR) or BENCH_DIR / ".torch-venv")


def _log(msg: str) -> None:
    print(f"[benchmarks {datetime.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# measurements
# ------------------------------------------------------------------------------------------


def measure_jax(sections, *, batch, repeats, quick=False) -> dict:
    """Time every JAX function the chosen sections need, in two interleaved pools (one of
    attack-like functions at the benchmark batch, one of train steps). Returns the raw times."""
    raw = {}
    style = bench_attacks.default_style()
    want_fused = "fused" in sections
    want_peers = "peers" in sections
    model, variables, x, y, source = common.model_function(batch)
    raw["data"] = source
    pool = {}
    if want_fused or want_peers:
        names = set()
        if want_fused:
            names |= {"input_grad"} | {f"pgd_{n}_{s}" for n in ("linf", "l2")
                                       for s in ("unrolled", "rolled")}
        if want_peers:
            names |= {f"pgd_linf_{style}", f"pgd_l2_{style}", "pgd_linf_python", "input_grad",
                      "forward"}
        pool.update(bench_attacks.candidates(model, variables, x, y, names=names))
    if want_fused:
        pool.update(bench_spectral.candidates(model, variables, x, y,
                                              methods=(default_jacobian_method(),)))
        pool.update(bench_soar.candidates(model, variables, x, y, with_grad=False))
    if pool:
        _log(f"timing {len(pool)} functions interleaved: {', '.join(pool)}")
        raw["functions"] = common.time_interleaved(pool, repeats=repeats, progress=_log)
        raw["max_abs_difference"] = bench_attacks.agreement(pool)
    steps = list(bench_train.METHODS) if "training" in sections else []
    if steps:
        _log(f"timing train steps interleaved: {', '.join(steps)}")
        raw["training"] = bench_train.run(batch=batch, repeats=repeats, keys=steps, progress=_log)
    if "compile" in sections:
        raw["compile"] = measure_compile(raw, model, variables, x, y, batch)
    if "evaluation" in sections:
        raw["evaluation"] = bench_eval.run(examples=2 * batch if quick else batch, batch=batch,
                                           repeats=1 if quick else -(-repeats // 2),
                                           rounds=1 if quick else 2, progress=_log)
    if "reuse" in sections:
        raw["reuse"] = bench_reuse.run(batch=batch, progress=_log)
    return raw


def measure_compile(raw, model, variables, x, y, batch) -> dict:
    """Compile seconds of PGD-10 ℓ∞ (unrolled, rolled) and every train step, reusing those
    the timed sections already compiled (each was compiled exactly once, by a fresh jit)."""
    out = {}
    funcs = raw.get("functions", {})
    names = ["pgd_linf_unrolled", "pgd_linf_rolled"]
    missing = [n for n in names if n not in funcs]
    if missing:
        cands = bench_attacks.candidates(model, variables, x, y, names=set(missing))
        for n, c in cands.items():
            _log(f"compiling {n}")
            common.compile_candidate(c)
            funcs = {**funcs, n: {"compile_s": c.compile_s}}
    for n in names:
        out[n] = funcs[n]["compile_s"]
    steps = raw.get("training", {}).get("steps", {})
    if set(steps) != set(bench_train.METHODS):
        steps = bench_train.run(batch=batch, compile_only=True, progress=_log)["steps"]
    for k, row in steps.items():
        out[f"step_{k}"] = row["compile_s"]
    return out


def run_peer(*, venv: Path, batch: int, repeats: int, threads: int, timeout: float = 3600) -> dict:
    """Run the torch peer in its own venv; ``{"status": "ok", ...keys}`` or a status saying why not."""
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists() or not PEER_SCRIPT.exists():
        missing = python if not python.exists() else PEER_SCRIPT
        return {"status": "not installed", "missing": str(missing),
                "hint": f"install with: {PEER_SETUP}"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peer.json"
        cmd = [str(python), str(PEER_SCRIPT), "--json", str(out), "--batch", str(batch),
               "--repeats", str(repeats), "--threads", str(threads)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        _log("running the torch peer: " + " ".join(cmd))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                                  cwd=BENCH_DIR.parent)
        except subprocess.TimeoutExpired:
            return {"status": "failed", "error": f"timed out after {timeout:.0f} s"}
        if proc.returncode != 0 or not out.exists():
            return {"status": "failed", "returncode": proc.returncode,
                    "error": (proc.stderr or proc.stdout)[-2000:]}
        with open(out) as f:
            res = json.load(f)
    return {"status": "ok", "command": " ".join(cmd), **res}


def parse_sections(values) -> list[str]:
    if not values:
        return list(SECTIONS)
    out = []
    for v in values:
        for s in v.split(","):
            s = s.strip()
            if s not in SECTIONS:
                raise SystemExit(f"--only must name sections among {', '.join(SECTIONS)}; got {s!r}")
            if s not in out:
                out.append(s)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks",
                                 description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--only", action="append", metavar="SECTION",
                    help=f"run only these sections (comma-separated or repeated): {', '.join(SECTIONS)}")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: batch {QUICK_BATCH}, 1 repeat; never claims a goal")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 128; quick: 8)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per function (≥ 5; quick: 1)")
    ap.add_argument("--threads", type=int, default=common.usable_cores(),
                    help="torch threads (default: the cores JAX's CPU backend uses)")
    ap.add_argument("--torch-venv", type=Path, default=None,
                    help=f"torch peer venv (default ${VENV_ENV_VAR} or benchmarks/.torch-venv)")
    ap.add_argument("--torch-malloc", choices=bench_race.TORCH_MALLOC, default="default",
                    help="glibc malloc settings of the race's PyTorch worker: its defaults, or "
                         "the ones robustjax applies to itself (the stricter comparison)")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the JSON result")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    ap.add_argument("--flax-conv", action="store_true",
                    help="build the model with plain flax.linen.Conv instead of the zoo's default "
                         "convolution (the 'before' figure of the conv optimization)")
    ap.add_argument("--no-ynnpack", action="store_true",
                    help="compile train steps with XLA:CPU's YNNPACK fusions off (sets "
                         "ROBUSTJAX_CPU_YNNPACK=0; the default of robustjax.core.compile before "
                         "issue 18)")
    args = ap.parse_args(argv)
    sections = parse_sections(args.only)
    batch = args.batch or (QUICK_BATCH if args.quick else 128)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 5)
    if repeats < 1 or (repeats < 5 and not args.quick):
        ap.error("--repeats must be >= 5 (or use --quick)")
    venv = args.torch_venv or default_venv()
    if args.flax_conv:
        common.use_flax_conv()
    if args.no_ynnpack:
        os.environ["ROBUSTJAX_CPU_YNNPACK"] = "0"

    meta = {"timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "quick": args.quick, "sections": sections, "batch": batch, "repeats": repeats,
            "threads": args.threads, "machine": common.machine_info(),
            "versions": common.library_versions(), "torch_venv": str(venv),
            "pgd": {"steps": common.PGD_STEPS, "linf": common.PGD_LINF, "l2": common.PGD_L2,
                    "default_unroll": bench_attacks.default_unroll()},
            "soar_gradient_evaluations": bench_soar.GRADIENT_EVALUATIONS,
            "conv": "flax.linen.Conv" if args.flax_conv else "zoo default",
            "host_malloc_tuned": host_memory.is_tuned(), "torch_malloc": args.torch_malloc,
            "train_step_compiler_options": compile_.cpu_compiler_options(
                ynnpack=compile_.ynnpack_setting(default=True)),  # as jit_train_step
            "note": "medians on a shared machine: absolute seconds are noisy; ratios are measured "
                    "interleaved in one run"}
    raw = measure_jax(sections, batch=batch, repeats=repeats, quick=args.quick)
    meta["data"] = raw.get("data")
    peer = race = None
    if "peers" in sections:
        # the peer insists on >= 5 repeats; in quick mode its numbers are not claimed anyway
        peer = run_peer(venv=venv, batch=batch, repeats=max(repeats, 5), threads=args.threads)
        meta["peer"] = peer
        rounds = 1 if args.quick else max(repeats, bench_race.MIN_ROUNDS)
        _log(f"train steps: interleaved two-process race, {rounds} rounds")
        race = bench_race.run_race(venv=venv, batch=batch, rounds=rounds, threads=args.threads,
                                   progress=_log, torch_malloc=args.torch_malloc)
        raw["race"] = race
    meta["load_average_end"] = common.load_average()
    rows = build_rows(sections, raw, peer or {}, quick=args.quick, race=race or {})
    result = {"meta": meta, "rows": rows, "raw": raw}

    print(format_header(meta))
    print()
    print(format_text(rows))
    if args.markdown:
        print()
        print(format_markdown(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str, ensure_ascii=False)
        print(f"\nwrote {args.json}")
    return result


if __name__ == "__main__":
    main()
