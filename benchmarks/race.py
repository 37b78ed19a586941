"""Train steps of PyTorch and robustjax timed in two persistent processes, turn by turn (issue 18).

Why this and not the peer's own timings. ``benchmarks/peer/torch_peer.py`` times PyTorch in
one subprocess *after* the JAX measurements, so on a shared machine the two sides see
different load (minutes apart), and the ratio drifts with it: the same code gave PyTorch ERM
step ÷ robustjax 0.92 and 1.09 in two README runs and 0.67–0.75 in an interleaved
two-process series. Here both sides stay alive for the whole measurement and run in
alternation, so every round times both under the same conditions:

* a coordinator (this module, inside ``python -m benchmarks``) writes one batch (the first
  ``batch`` mnist-5k training digits) to a temporary ``.npz`` and starts two workers, each
  in its own process and environment: ``benchmarks/step_worker.py`` (JAX, this venv) and
  ``benchmarks/peer/torch_steps.py`` (PyTorch 2.13, the torch peer's venv, ``--threads``
  threads, ``OMP_WAIT_POLICY=passive``); each builds its steps on the same digits and
  warms them up;
* round r asks one worker, then the other, to run a block of each of its steps (3 steps of
  an ERM step, 1 of a PGD-10 AT step); the side that goes first alternates between rounds,
  and so does the order of the steps within a side. The waiting worker is blocked on its
  stdin, so the two never share the cores;
* a step's time is the median over rounds of its block median; both wall time and the CPU
  time of the worker process (all threads, user + system; less sensitive to other jobs on the
  machine) are kept. A ratio is PyTorch's median ÷ robustjax's median; ``paired`` is the
  median over rounds of the per-round ratio, whose spread (min–max) shows the noise.

Rows (``PAIRS``): the fit loop's ``jit_train_step`` ERM step and a user's plain ``jax.jit``
ERM step (``value_and_grad`` + optax, default compile options), both against PyTorch's ERM
step, and the PGD-10 AT library step against a torchattacks PGD-10 AT step.
Both sides run as their users get them: robustjax with the glibc settings its import applies
(``robustjax.core.host_memory``), PyTorch with glibc's defaults; ``--torch-malloc tuned`` gives
the PyTorch worker the same settings (environment variables read at its start), the stricter
comparison. Run alone: ``python -m benchmarks.race [--rounds 9] [--torch-malloc tuned]
[--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robustjax.core import host_memory  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
TORCH_WORKER = BENCH_DIR / "peer" / "torch_steps.py"
MIN_ROUNDS = 7
#: glibc settings ``robustjax.core.host_memory`` applies in the JAX worker (at ``import
#: robustjax``); ``torch_malloc="tuned"`` gives the PyTorch worker the same as environment
#: variables, read by glibc when the process starts
TUNED_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(host_memory.MMAP_THRESHOLD),
                    "MALLOC_TRIM_THRESHOLD_": str(host_memory.TRIM_THRESHOLD),
                    "MALLOC_TOP_PAD_": str(host_memory.TOP_PAD)}
TORCH_MALLOC = ("default", "tuned")

# (key, torch step, jax step, goal text, target, stretch)
PAIRS = (
    ("erm_library", "erm", "erm_library",
     "PyTorch ERM step ÷ robustjax library ERM step (jit_train_step)", 1.0, 1.2),
    ("erm_plain_jit", "erm", "erm_plain_jit",
     "PyTorch ERM step ÷ plain jax.jit ERM step (value_and_grad + optax)", 1.0, 1.2),
    ("pgd10_at_library", "pgd10_at", "pgd10_at_library",
     "PyTorch PGD-10 AT step ÷ robustjax PGD-10 AT step (jit_train_step)", 1.0, None),
)
#: diagnostic pairs (``--only``; not rows of ``python -m benchmarks``)
DIAGNOSTIC_PAIRS = (
    ("param_grad", "param_grad", "param_grad", "PyTorch ÷ JAX parameter gradient (plain jit)", None, None),
    ("input_grad", "input_grad", "input_grad", "PyTorch ÷ JAX input gradient (plain jit)", None, None),
    ("forward", "forward", "forward", "PyTorch ÷ JAX forward pass (plain jit)", None, None),
)
#: steps per block: enough to amortize a round trip, little enough to interleave finely
BLOCK = {"erm": 3, "erm_library": 3, "erm_plain_jit": 3, "pgd10_at": 1, "pgd10_at_library": 1,
         "param_grad": 3, "input_grad": 3, "forward": 5}


class Worker:
    """A worker process speaking ``benchmarks/peer/serve.py``'s line protocol."""

    def __init__(self, side: str, cmd: list[str], *, env: dict, log, timeout: float):
        self.side, self.timeout = side, timeout
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log, env=env, text=True, bufsize=1,
                                     cwd=BENCH_DIR.parent)
        self.ready: list[str] = []
        self.info: dict = {}

    def _read(self) -> dict:
        end = time.monotonic() + self.timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.side} worker gave no answer within {self.timeout:.0f} s")
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"{self.side} worker exited (code {self.proc.poll()})")
                msg = json.loads(line)
                if "error" in msg:
                    raise RuntimeError(f"{self.side} worker: {msg['error']}")
                return msg

    def wait_ready(self) -> None:
        msg = self._read()
        self.ready, self.info = msg["ready"], msg["info"]

    def run(self, name: str, steps: int) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": "run", "name": name, "steps": steps}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait()


def write_batch(path: Path, batch: int) -> str:
    """The benchmark batch (``common.make_batch``) as ``x`` NHWC float32 and ``y`` int32."""
    import numpy as np

    from benchmarks import common

    x, y, source = common.make_batch(batch)
    np.savez(path, x=np.asarray(x, np.float32), y=np.asarray(y, np.int32))
    return source


def _median(values):
    return statistics.median(values) if values else float("nan")


def summarize(samples: dict[str, dict[str, list[list[float]]]]) -> dict:
    """Per ``side:step``: per-round block medians, their median, min, max (wall and CPU)."""
    out = {}
    for name, kinds in samples.items():
        row = {}
        for kind, blocks in kinds.items():
            per_round = [_median(b) for b in blocks]
            row[kind] = {"median_s": _median(per_round), "min_s": min(min(b) for b in blocks),
                         "max_s": max(max(b) for b in blocks), "per_round_s": per_round}
        out[name] = row
    return out


def pair_ratios(steps: dict, torch_name: str, jax_name: str) -> dict:
    t, j = steps[f"torch:{torch_name}"], steps[f"jax:{jax_name}"]
    paired = [a / b for a, b in zip(t["wall"]["per_round_s"], j["wall"]["per_round_s"])]
    return {"wall": t["wall"]["median_s"] / j["wall"]["median_s"],
            "cpu": t["cpu"]["median_s"] / j["cpu"]["median_s"],
            "paired_median": _median(paired), "paired_min": min(paired), "paired_max": max(paired),
            "torch_s": t["wall"]["median_s"], "jax_s": j["wall"]["median_s"],
            "torch_cpu_s": t["cpu"]["median_s"], "jax_cpu_s": j["cpu"]["median_s"]}


def run_race(*, venv: Path, batch: int = 128, rounds: int = 9, threads: int = 2,
             pairs=PAIRS, progress=None, timeout: float = 900.0,
             torch_malloc: str = "default") -> dict:
    """Time ``pairs`` in two workers, alternating (see the module docstring). ``torch_malloc``:
    ``"default"`` runs PyTorch with glibc's defaults (as a PyTorch user has it), ``"tuned"``
    with robustjax's glibc settings (``TUNED_MALLOC_ENV``; the stricter comparison). Returns
    ``{"status": "ok", "steps": ..., "pairs": {key: ratios}, ...}`` or a status saying why not."""
    if torch_malloc not in TORCH_MALLOC:
        raise ValueError(f"torch_malloc must be one of {TORCH_MALLOC}; got {torch_malloc!r}")
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists():
        return {"status": "not installed", "missing": str(python),
                "hint": "install with: bash benchmarks/peer/setup_torch_env.sh"}
    torch_names = list(dict.fromkeys(p[1] for p in pairs))
    jax_names = list(dict.fromkeys(p[2] for p in pairs))
    say = progress or (lambda msg: None)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "batch.npz"
        source = write_batch(data, batch)
        log_path = Path(tmp) / "workers.log"
        with open(log_path, "w") as log:
            torch_env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
            for k in (*TUNED_MALLOC_ENV, "MALLOC_ARENA_MAX"):  # none leaks in from the coordinator
                torch_env.pop(k, None)
            if torch_malloc == "tuned":
                torch_env.update(TUNED_MALLOC_ENV)
            workers = {}
            try:
                workers["jax"] = Worker("jax", [sys.executable, "-m", "benchmarks.step_worker",
                                                "--data", str(data), "--steps", ",".join(jax_names)],
                                        env=dict(os.environ), log=log, timeout=timeout)
                workers["torch"] = Worker("torch", [str(python), str(TORCH_WORKER), "--data", str(data),
                                                    "--threads", str(threads),
                                                    "--steps", ",".join(torch_names)],
                                          env=torch_env, log=log, timeout=timeout)
                say("race: waiting for both workers to build and warm up their steps")
                for w in workers.values():
                    w.wait_ready()
                names = {"jax": jax_names, "torch": torch_names}
                samples = {f"{side}:{n}": {"wall": [], "cpu": []}
                           for side in ("jax", "torch") for n in names[side]}
                for r in range(rounds):
                    say(f"race: round {r + 1}/{rounds}")
                    for side in (("jax", "torch") if r % 2 == 0 else ("torch", "jax")):
                        order = names[side] if r % 2 == 0 else names[side][::-1]
                        for name in order:
                            res = workers[side].run(name, BLOCK.get(name, 1))
                            samples[f"{side}:{name}"]["wall"].append(res["wall"])
                            samples[f"{side}:{name}"]["cpu"].append(res["cpu"])
            except (OSError, RuntimeError, TimeoutError, KeyError, ValueError) as exc:
                for w in workers.values():
                    w.close()
                log.flush()
                tail = log_path.read_text()[-1500:]
                return {"status": "failed", "error": f"{exc}\n{tail}"}
            for w in workers.values():
                w.close()
    steps = summarize(samples)
    return {"status": "ok", "rounds": rounds, "batch": batch, "data": source, "threads": threads,
            "torch_malloc": torch_malloc,
            "block": {n: BLOCK.get(n.split(":", 1)[1], 1) for n in samples},
            "info": {side: w.info for side, w in workers.items()},
            "steps": steps,
            "pairs": {key: pair_ratios(steps, t, j) for key, t, j, *_ in pairs}}


def row_specs(res: dict, pairs=PAIRS) -> list[dict]:
    """The ``python -m benchmarks`` rows of a race result: ``goal``, ``measured`` (wall ratio),
    ``target``, ``stretch``, ``seconds`` and ``note`` per pair (``measured`` None if it failed)."""
    ok = res.get("status") == "ok"
    specs = []
    for key, _, _, goal, target, stretch in pairs:
        spec = {"goal": goal, "measured": None, "target": target, "stretch": stretch, "seconds": {}}
        if ok:
            p = res["pairs"][key]
            spec.update(measured=p["wall"], seconds={"torch": p["torch_s"], "robustjax": p["jax_s"]},
                        note=f"CPU time ratio {p['cpu']:.2f} ({1e3 * p['torch_cpu_s']:.0f} vs "
                             f"{1e3 * p['jax_cpu_s']:.0f} ms); per-round ratios "
                             f"{p['paired_min']:.2f}–{p['paired_max']:.2f}; two persistent "
                             f"processes, {res['rounds']} alternating rounds")
        elif res.get("status") == "not installed":
            spec["note"] = "peer not installed — " + res.get("hint", "")
        else:
            spec["note"] = f"race failed: {str(res.get('error', ''))[-200:]}"
        specs.append(spec)
    return specs


def format_table(res: dict) -> str:
    lines = [f"interleaved two-process race: batch {res['batch']} ({res['data']}), "
             f"{res['rounds']} rounds, torch threads {res['threads']}, torch malloc "
             f"{res.get('torch_malloc', 'default')}, robustjax malloc "
             f"{'tuned' if res.get('info', {}).get('jax', {}).get('host_malloc_tuned') else 'default'}",
             f"{'pair':62s} {'wall ratio':>10s} {'paired (min-max)':>18s} {'CPU ratio':>9s}  "
             f"{'torch ms':>8s} {'jax ms':>7s}"]
    for key, _, _, goal, _, _ in PAIRS + DIAGNOSTIC_PAIRS:
        p = res["pairs"].get(key)
        if p:
            lines.append(f"{goal[:62]:62s} {p['wall']:10.2f} {p['paired_median']:6.2f} "
                         f"({p['paired_min']:.2f}-{p['paired_max']:.2f}) {p['cpu']:9.2f}  "
                         f"{1e3 * p['torch_s']:8.1f} {1e3 * p['jax_s']:7.1f}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--torch-venv", type=Path,
                    default=Path(os.environ.get("ROBUSTJAX_TORCH_VENV") or BENCH_DIR / ".torch-venv"))
    ap.add_argument("--only", default="", help="comma list of pair keys (default: the PAIRS rows; "
                    "diagnostics: param_grad, input_grad, forward)")
    ap.add_argument("--torch-malloc", choices=TORCH_MALLOC, default="default",
                    help="glibc malloc settings of the PyTorch worker: its defaults, or the ones "
                         "robustjax applies to itself (robustjax.core.host_memory)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.rounds < MIN_ROUNDS:
        ap.error(f"--rounds must be >= {MIN_ROUNDS}")
    only = [k for k in args.only.split(",") if k]
    pairs = [p for p in PAIRS + DIAGNOSTIC_PAIRS if (p[0] in only if only else p in PAIRS)]
    res = run_race(venv=args.torch_venv, batch=args.batch, rounds=args.rounds,
                   threads=args.threads, pairs=pairs, torch_malloc=args.torch_malloc,
                   progress=lambda m: print(m, file=sys.stderr, flush=True))
    if res["status"] != "ok":
        print(res, file=sys.stderr)
        return res
    print(format_table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == "__main__":
    main()
