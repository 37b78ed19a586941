"""Throughput of the batch robustness evaluator on 1 and on 4 forced host devices.

``robustjax.evaluation.evaluate`` splits every chunk over the data mesh of all devices. This
measures examples per second of the ``mnist-quick`` suite (FGSM, PGD-20 and uniform noise at
ℓ∞ ε ∈ {0.1, 0.2, 0.3}: 7 input gradients per example for FGSM and the clean pass, 60 for PGD) on
the benchmark model (``common.MODEL_DESCRIPTION``, at initialization) over the first mnist-5k test
digits. The device count of a JAX process is fixed when its backend starts, so each count runs
in its own process (``python -m benchmarks.evaluation --devices D``); the runner alternates them.

On a CPU the forced host devices share the same cores: the ratio shows what splitting a chunk
costs or gains on this machine (XLA:CPU runs each device's shard on its own thread), not what
separate accelerators would give. On a machine shared with other jobs, wall-clock time favours
the process with more threads, so the CPU time of each evaluation (``time.process_time``, all
threads) is recorded too: its ratio says whether splitting costs extra work.

    python -m benchmarks.evaluation --devices 4 --examples 256 --batch 128 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SUITE = "mnist-quick"
ROOT = Path(__file__).resolve().parents[1]


def measure(*, devices: int, examples: int, batch: int, repeats: int) -> dict:
    """In this process (whose backend must not have started): evaluate ``examples`` digits on
    ``devices`` forced host devices; one warm-up evaluation (compilation), then ``repeats`` timed."""
    import jax

    jax.config.update("jax_num_cpu_devices", devices)
    from benchmarks import common
    from robustjax import data as rj_data
    from robustjax import evaluation

    if len(jax.devices()) != devices:
        raise RuntimeError(f"asked for {devices} devices, JAX has {jax.devices()}")
    model = common.build_model()
    test = rj_data.subset(rj_data.load("mnist-5k", "test"), examples)
    variables = model.init(jax.random.PRNGKey(0), test.images[:1])

    def logits_fn(x):
        return model.apply(variables, x)

    def once():
        start, cpu = time.perf_counter(), time.process_time()
        report = evaluation.evaluate(logits_fn, test, suite=SUITE, batch_size=batch, key=0,
                                     progress=False, checks=False)
        return time.perf_counter() - start, time.process_time() - cpu, report

    warm, _, report = once()
    timed = [once()[:2] for _ in range(repeats)]
    times, cpu = [t for t, _ in timed], [c for _, c in timed]
    median = statistics.median(times)
    return {"devices": devices, "examples": examples, "batch": batch, "rows_per_chunk":
            -(-batch // devices) * devices, "warmup_s": warm, "times_s": times, "cpu_s": cpu,
            "median_s": median, "examples_per_s": examples / median,
            "clean_accuracy": report.clean_accuracy}


def run(*, examples: int, batch: int, repeats: int, rounds: int = 2, timeout: float = 3600,
        progress=None) -> dict:
    """Each device count (1, 4) in its own process, alternating for ``rounds`` rounds; per count
    the median over every timed evaluation. Returns throughputs and their ratio."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    times: dict[int, list[float]] = {1: [], 4: []}
    cpu: dict[int, list[float]] = {1: [], 4: []}
    runs = []
    for r in range(rounds):
        for devices in (1, 4):
            if progress:
                progress(f"evaluation throughput: {devices} device(s), round {r + 1}/{rounds}")
            cmd = [sys.executable, "-m", "benchmarks.evaluation", "--devices", str(devices),
                   "--examples", str(examples), "--batch", str(batch), "--repeats", str(repeats)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                                  cwd=ROOT)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            runs.append(res)
            times[devices].extend(res["times_s"])
            cpu[devices].extend(res["cpu_s"])
    med = {d: statistics.median(t) for d, t in times.items()}
    med_cpu = {d: statistics.median(t) for d, t in cpu.items()}
    throughput = {d: examples / med[d] for d in med}
    return {"suite": SUITE, "examples": examples, "batch": batch, "median_s": med,
            "median_cpu_s": med_cpu, "examples_per_s": throughput,
            "ratio_4_to_1": throughput[4] / throughput[1],
            "cpu_ratio_1_to_4": med_cpu[1] / med_cpu[4], "runs": runs}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.evaluation", description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, required=True, help="forced host devices in this process")
    ap.add_argument("--examples", type=int, default=256, help="mnist-5k test digits evaluated")
    ap.add_argument("--batch", type=int, default=128, help="evaluation batch size (examples per chunk)")
    ap.add_argument("--repeats", type=int, default=5, help="timed evaluations after the warm-up")
    args = ap.parse_args(argv)
    for name in ("devices", "examples", "batch", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1")
    print(json.dumps(measure(devices=args.devices, examples=args.examples, batch=args.batch,
                             repeats=args.repeats)))


if __name__ == "__main__":
    main()
