"""Shared helpers of the benchmarks: model, batch, timing, compile time, memory, machine info.

Timing rule (issue 7): every time is the median of ``repeats`` (≥ 5 outside ``--quick``) runs
after one warm-up run, each run ending in ``jax.block_until_ready``. Functions compared with
each other are timed *interleaved* (:func:`time_interleaved`: round r runs every candidate once)
so that the load of this shared machine falls on numerator and denominator alike.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

# The model of issue 7: the SGR MNIST CNN (Roth et al. / SGR paper's MNIST network,
# conv32-conv32-pool-conv64-conv64-pool-fc200-fc200-fc10, 3x3 VALID convs, ReLU, 2x2 max-pool),
# standardized with the MNIST mean / std, exactly as benchmarks/peer/torch_peer.py builds it.
MODEL_NAME = "sgr_cnn"
MODEL_KWARGS = dict(width="mnist", mean=0.1307, std=0.3081)
MODEL_DESCRIPTION = ('robustjax.nn.create("sgr_cnn", 10, width="mnist", mean=0.1307, std=0.3081): '
                     "conv32-conv32-pool-conv64-conv64-pool-fc200-fc200-fc10")
INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10

# Attack settings shared with the torch peer (torchattacks PGD(eps, alpha, steps, random_start)).
PGD_STEPS = 10
PGD_LINF = dict(eps=0.3, step_size=0.01)
PGD_L2 = dict(eps=2.0, step_size=0.2)


#: Extra keyword arguments of ``robustjax.nn.create`` for every non-SN benchmark model; the
#: runner's ``--flax-conv`` sets ``{"conv": flax.linen.Conv}`` (the plain Flax convolution, the
#: "before" figure of the zoo's own ``robustjax.nn.conv.Conv``).
MODEL_OVERRIDES: dict = {}


def use_flax_conv() -> None:
    """Build the benchmark models with ``flax.linen.Conv`` instead of the zoo's default conv."""
    import flax.linen as nn

    MODEL_OVERRIDES["conv"] = nn.Conv


def build_model(*, sn_beta: float | None = None):
    """The benchmark model (unbound Linen module); with ``sn_beta`` every layer spectrally
    normalized (``MODEL_OVERRIDES`` apply only without ``sn_beta``)."""
    from robustjax import nn as rj_nn

    if sn_beta is None:
        return rj_nn.create(MODEL_NAME, NUM_CLASSES, **MODEL_KWARGS, **MODEL_OVERRIDES)
    return rj_nn.spectral_normalized(MODEL_NAME, NUM_CLASSES, beta=sn_beta, **MODEL_KWARGS)


def make_batch(batch: int, *, seed: int = 0) -> tuple[jax.Array, jax.Array, str]:
    """``(x[B, 28, 28, 1] in [0, 1], y[B] int32, source)``: the first ``batch`` mnist-5k train
    digits (cycled if ``batch`` > 4000); uniform noise with random labels if that fails."""
    try:
        from robustjax import data as rj_data

        train = rj_data.load("mnist-5k", "train")
        idx = np.arange(batch) % len(train.labels)
        x = np.asarray(train.images)[idx].astype(np.float32)
        y = np.asarray(train.labels)[idx].astype(np.int32)
        return jnp.asarray(x), jnp.asarray(y), "mnist-5k train"
    except Exception:  # noqa: BLE001 — timing does not depend on the pixel values
        kx, ky = jax.random.split(jax.random.PRNGKey(seed))
        x = jax.random.uniform(kx, (batch,) + INPUT_SHAPE)
        y = jax.random.randint(ky, (batch,), 0, NUM_CLASSES)
        return x, y, "uniform noise"


def model_function(batch: int):
    """``(model, variables, x, y, source)`` of the benchmark model at initialization.

    Benchmarked functions take ``variables`` as an argument (as in training and as the torch
    peer holds its weights), never as closure constants XLA could pre-transform at compile time.
    """
    model = build_model()
    x, y, source = make_batch(batch)
    variables = model.init(jax.random.PRNGKey(0), x[:1])
    return model, variables, x, y, source


def input_grad_fn(model):
    """One jitted input gradient ``(variables, x, y) -> ∇ₓ Σ CE(f(x), y)`` (the unit of the
    fused-loop ratios): one forward and one backward pass, exactly what one PGD step computes."""
    from robustjax.core import losses as L

    def grad(variables, x, y):
        return jax.grad(lambda xa: jnp.sum(L.cross_entropy(model.apply(variables, xa), y)))(x)

    return jax.jit(grad)


# ------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Candidate:
    """One function to time: ``fn(*args)``. ``jit``: a ``jax.jit`` object, compiled (and its
    compile time measured) with ``lower(*args).compile()``; otherwise ``fn`` is called as is
    (e.g. a Python loop around jitted pieces) and its warm-up stands in for compilation."""

    fn: Callable
    args: tuple
    jit: bool = True
    compiled: Any = None
    compile_s: float | None = None
    memory_bytes: int | None = None
    output: Any = None  # the warm-up run's result (for agreement checks)


def compile_candidate(c: Candidate) -> Candidate:
    if c.jit and c.compiled is None:
        start = time.perf_counter()
        c.compiled = c.fn.lower(*c.args).compile()
        c.compile_s = time.perf_counter() - start
        c.memory_bytes = peak_bytes(c.compiled)
    return c


def _call(c: Candidate):
    return (c.compiled if c.compiled is not None else c.fn)(*c.args)


def summarize(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "runs": len(times)}


def time_interleaved(candidates: dict[str, Candidate], *, repeats: int, warmup: int = 1,
                     progress: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Compile every candidate, warm each up ``warmup`` times, then ``repeats`` rounds in which
    every candidate runs once (blocked until ready). Returns ``{name: {median_s, min_s, max_s,
    runs, compile_s, memory_bytes}}``."""
    for name, c in candidates.items():
        if progress:
            progress(f"compiling {name}")
        compile_candidate(c)
        for _ in range(max(warmup, 1)):
            c.output = jax.block_until_ready(_call(c))
    times = {name: [] for name in candidates}
    for r in range(repeats):
        if progress:
            progress(f"round {r + 1}/{repeats}")
        for name, c in candidates.items():
            start = time.perf_counter()
            jax.block_until_ready(_call(c))
            times[name].append(time.perf_counter() - start)
    return {name: {**summarize(times[name]), "compile_s": c.compile_s, "memory_bytes": c.memory_bytes}
            for name, c in candidates.items()}


def median_time(fn, *args, repeats: int, warmup: int = 1) -> dict:
    """Median (and min/max) seconds of ``fn(*args)`` over ``repeats`` runs after ``warmup``."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return summarize(times)


def peak_bytes(compiled) -> int | None:
    """Peak bytes of a compiled XLA program from its memory analysis: arguments + outputs +
    temporaries − aliased (what XLA must hold at once; not the process RSS)."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 — some backends do not report it
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
               - m.alias_size_in_bytes)


# ------------------------------------------------------------------------------------------
# machine and versions
# ------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict:
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "load_average_1_5_15": load_average(),
    }


def library_versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for dist in ("jax", "jaxlib", "flax", "optax", "numpy"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out
