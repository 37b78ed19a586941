"""Train-step cost of every method relative to ERM, beside the pass-count theory.

Model: the SGR MNIST CNN (``robustjax.nn.create("sgr_cnn", 10)``), batch 128 of mnist-5k,
Adam, one jitted train step per method (the same ``training.step.train_step`` the fit loop
uses). Each time is the median of ``--repeats`` (≥ 5) steps after a warm-up (compilation
excluded); the ratio divides by ERM's median measured in the same run. Peak memory is XLA's
compiled memory analysis (temporaries + arguments + outputs) of each step ÷ ERM's.

Pass-count theory (forward+backward passes per step relative to ERM's one): PGD-10 AT ≈ 11,
SNR-10 ≈ 11, SOAR ≈ 4, SGR ≈ 3, SN ≈ 1.1. Run: ``python benchmarks/train_step.py``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import jax
import numpy as np
import optax

from robustjax import data as rj_data
from robustjax import nn as rj_nn
from robustjax.training.objectives import init_method_state, make_objective
from robustjax.training.state import create_train_state
from robustjax.training.step import train_step

METHODS = [
    # (label, method, kwargs, spectral normalization beta, theory)
    ("ERM", "erm", {}, None, 1.0),
    ("PGD-10 AT (ℓ∞)", "adversarial", {"attack": "pgd_linf", "eps": 0.1, "steps": 10}, None, 11.0),
    ("FGSM AT", "adversarial", {"attack": "fgsm", "eps": 0.1}, None, 2.0),
    ("SNR-10 (eq. 13)", "snr", {"form": "sos", "eps": 1.75, "iters": 10}, None, 11.0),
    ("global SNR", "global_snr", {"lam": 3e-4}, None, 1.1),
    ("GN", "gn", {"lam": 1.0}, None, 3.0),
    ("SGR (FGSM Σ)", "sgr", {"lam": 0.5, "source": "fgsm", "eps": 0.1}, None, 3.0),
    ("SOAR", "soar", {"lam": 0.5, "eps": 0.1, "alpha": 0.1}, None, 4.0),
    ("SN (β = 2)", "erm", {}, 2.0, 1.1),
]


def _memory(compiled) -> float:
    m = compiled.memory_analysis()
    if m is None:
        return float("nan")
    return float(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)


def measure(label, method, kwargs, sn_beta, *, batch, repeats, x, y):
    mean, std = rj_data.dataset_stats("mnist-5k")
    if sn_beta is None:
        model = rj_nn.create("sgr_cnn", 10, width="mnist", mean=mean, std=std)
    else:
        model = rj_nn.spectral_normalized("sgr_cnn", 10, beta=sn_beta, width="mnist", mean=mean, std=std)
    tx = optax.adam(1e-3)
    state = create_train_state(model, tx, key=jax.random.PRNGKey(0), input_shape=x.shape[1:])
    state = state.replace(method_state=init_method_state(
        method, model=model, variables=state.variables(), input_shape=x.shape[1:], batch_size=batch,
        key=jax.random.PRNGKey(1), data_variance=float(np.var(x)), **kwargs))
    objective = make_objective(method, model, **kwargs)
    step = jax.jit(lambda s, b: train_step(s, b, objective=objective, tx=tx))
    start = time.perf_counter()
    compiled = step.lower(state, (x, y)).compile()
    compile_seconds = time.perf_counter() - start
    state, metrics = compiled(state, (x, y))
    jax.block_until_ready(metrics)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        state, metrics = compiled(state, (x, y))
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - start)
    return {"method": label, "seconds": statistics.median(times), "memory_bytes": _memory(compiled),
            "compile_seconds": compile_seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    args = parser.parse_args(argv)
    train = rj_data.load("mnist-5k", "train")
    x, y = np.asarray(train.images[: args.batch]), np.asarray(train.labels[: args.batch])
    rows = [measure(*m[:4], batch=args.batch, repeats=args.repeats, x=x, y=y) for m in METHODS]
    erm = rows[0]
    print(f"jax {jax.__version__}, {platform.machine()}, {jax.device_count()} x {jax.devices()[0].platform}, "
          f"batch {args.batch}, median of {args.repeats}")
    print(f"{'method':18s} {'step s':>8s} {'÷ ERM':>7s} {'theory':>7s} {'memory ÷ ERM':>13s} {'compile s':>10s}")
    for row, (_, _, _, _, theory) in zip(rows, METHODS):
        row["ratio"] = row["seconds"] / erm["seconds"]
        row["theory"] = theory
        row["memory_ratio"] = row["memory_bytes"] / erm["memory_bytes"]
        print(f"{row['method']:18s} {row['seconds']:8.3f} {row['ratio']:7.2f} {theory:7.1f} "
              f"{row['memory_ratio']:13.2f} {row['compile_seconds']:10.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
