"""PyTorch / torchattacks peer timings for robustjax's benchmarks (issue 7, point 2).

What it measures. The SGR MNIST CNN of ``robustjax.nn.create("sgr_cnn", 10, width="mnist",
mean=0.1307, std=0.3081)`` rebuilt in plain PyTorch (see :class:`SGRMnistCNN`), float32, a
batch of ``--batch`` (128) random 28x28x1 images uniform in [0, 1] with random labels (seeded),
on the CPU with ``torch.set_num_threads(--threads)`` (2). Each quantity is the median wall time
(``time.perf_counter``) of ``--repeats`` (>= 5, default 7) runs after 2 warm-up runs; the runs
are interleaved (each round times one run of every quantity) so that load from other processes
on a shared machine affects all of them alike:

==================  ==========================================================================
JSON key            one run is
==================  ==========================================================================
forward_s           a forward pass under ``torch.no_grad()`` (eval mode)
input_grad_s        one input gradient of the summed cross-entropy (the cost of one PGD step)
pgd10_linf_s        ``torchattacks.PGD(model, eps=0.3, alpha=0.01, steps=10, random_start=True)``
pgd10_l2_s          ``torchattacks.PGDL2(model, eps=2.0, alpha=0.2, steps=10, random_start=True)``
==================  ==========================================================================

Training steps (ERM, PGD-10 AT) are timed by the two-process race instead
(``benchmarks/race.py`` with ``benchmarks/peer/torch_steps.py``): both sides alive and
alternating, which this one-shot subprocess cannot do (issue 18).

It also counts the forward and backward passes one torchattacks PGD call makes (expected: 10
each) and prints ``pgd10_*_s / (10 * input_grad_s)``, the attack's cost in units of its own
gradients (1.0 = no overhead beyond the 10 gradients).

How to run. In the peer's own virtual environment (``bash benchmarks/peer/setup_torch_env.sh``
creates it; robustjax never depends on torch, and this file never imports jax or robustjax)::

    benchmarks/.torch-venv/bin/python benchmarks/peer/torch_peer.py --json out.json

Options: ``--batch 128 --threads 2 --repeats 7 --seed 0 --json PATH --omp-wait-policy
passive``. It prints a table and, with ``--json``, writes the keys above (seconds) plus
``torch_version``, ``torchattacks_version``, ``threads``, ``batch``, ``repeats``,
``param_count``, ``platform`` and, for the curious, ``expected_param_count``, ``ratios``,
``pass_counts``, ``omp_wait_policy`` and ``samples`` (every timed run).

``--omp-wait-policy`` sets ``OMP_WAIT_POLICY`` before torch loads (default ``passive``;
``inherit`` leaves the environment alone); the value in force is recorded in the JSON. Why:
torch's OpenMP threads spin at barriers by default, and on a machine shared with other busy
processes that costs them far more than their share. Measured here under load (2 cores, load
average ~5-7 from other jobs), medians of 7 interleaved runs with 2 threads: torchattacks
PGD-10 linf took 3.8-7.9 s with the default policy and 1.24 s with ``PASSIVE``; one input
gradient 0.38-0.77 s against 0.12 s. The passive figure is the one close to torch's speed on an
idle machine (about 0.9 s for the same PGD-10), so it is the fair peer. ``active`` keeps
idle threads spinning (libgomp's own default spins a while before sleeping), which can only
help when the machine is otherwise idle.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable

WAIT_POLICIES = ("passive", "active", "inherit")


def _preset_omp_wait_policy(argv) -> None:
    """Apply ``--omp-wait-policy`` to the environment; must run before torch (and its OpenMP
    runtime, which reads ``OMP_WAIT_POLICY`` once when it loads) is imported."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--omp-wait-policy", choices=WAIT_POLICIES, default="passive")
    policy = pre.parse_known_args(argv)[0].omp_wait_policy
    if policy != "inherit":
        os.environ["OMP_WAIT_POLICY"] = policy.upper()


if __name__ == "__main__":
    _preset_omp_wait_policy(sys.argv[1:])

import torch  # noqa: E402  (after the OpenMP setting above)
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

#: The SGR MNIST widths of robustjax.nn.convnets.SGR_WIDTHS["mnist"]: four 3x3 convolutions,
#: then two hidden dense layers.
CONV_WIDTHS = (32, 32, 64, 64)
DENSE_WIDTHS = (200, 200)
NUM_CLASSES = 10
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
IMAGE_SHAPE = (1, 28, 28)  # NCHW without the batch; robustjax's inputs are 28x28x1 NHWC

WARMUP = 2
STEPS = 10


class Standardize(nn.Module):
    """``(x - mean) / std`` with constant (buffer, not parameter) mean and std, as robustjax's
    ``Standardize`` layer: it adds nothing to the parameter count."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x):
        return (x - self.mean) / self.std


class SGRMnistCNN(nn.Module):
    """robustjax's ``SGRCNN(width="mnist")`` in PyTorch, layer for layer.

    standardize -> [conv3x3 32, ReLU, conv3x3 32, ReLU, maxpool 2x2/2,
    conv3x3 64, ReLU, conv3x3 64, ReLU, maxpool 2x2/2] -> flatten -> dense 200, ReLU ->
    dense 200, ReLU -> dense 10. Convolutions are unpadded ('VALID'), stride 1, with bias, as
    flax's ``nn.Conv`` / ``nn.Dense`` defaults; 28-26-24-12-10-8-4 gives 4*4*64 = 1024 features.
    The layout is NCHW (torch's native one) where robustjax is NHWC, so ``Flatten`` orders the
    1024 features (c, h, w) instead of (h, w, c): the same function up to a fixed permutation of
    the rows of the first dense weight, the same cost, and the same parameter count.
    """

    def __init__(self, mean: float = MNIST_MEAN, std: float = MNIST_STD):
        super().__init__()
        c1, c2, c3, c4 = CONV_WIDTHS
        f1, f2 = DENSE_WIDTHS
        self.standardize = Standardize(mean, std)
        self.features = nn.Sequential(
            nn.Conv2d(IMAGE_SHAPE[0], c1, kernel_size=3), nn.ReLU(),
            nn.Conv2d(c1, c2, kernel_size=3), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(c2, c3, kernel_size=3), nn.ReLU(),
            nn.Conv2d(c3, c4, kernel_size=3), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(4 * 4 * c4, f1), nn.ReLU(),
            nn.Linear(f1, f2), nn.ReLU(),
            nn.Linear(f2, NUM_CLASSES),
        )

    def forward(self, x):
        return self.classifier(self.features(self.standardize(x)))


def expected_param_count() -> int:
    """The parameter count of robustjax's SGR MNIST CNN, from its layer list alone (kernel +
    bias of every layer), independently of how torch or flax store them: 312,202."""
    total, c_in = 0, IMAGE_SHAPE[0]
    for c in CONV_WIDTHS:
        total += 3 * 3 * c_in * c + c
        c_in = c
    d_in = 4 * 4 * c_in
    for d in DENSE_WIDTHS + (NUM_CLASSES,):
        total += d_in * d + d
        d_in = d
    return total


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Wall times of every ``fns[key]()``: ``WARMUP`` untimed runs of each, then ``repeats``
    rounds that each time one run of every function in turn.

    Interleaving spreads the load of other processes on a shared machine over all measurements
    alike, so their ratios stay meaningful even when absolute times are noisy. PyTorch on the
    CPU is synchronous: when a function returns, its work is done.
    """
    for fn in fns.values():
        for _ in range(WARMUP):
            fn()
    samples: dict[str, list[float]] = {key: [] for key in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[key].append(time.perf_counter() - t0)
    return samples


def count_passes(model: nn.Module, run: Callable[[nn.Module], object]) -> dict[str, int]:
    """Forward and backward passes through a copy of ``model`` during ``run(copy)``, via module
    hooks (on a copy so the timed model carries no hooks)."""
    counted = copy.deepcopy(model)
    counts = {"forward": 0, "backward": 0}

    def on_forward(module, inputs, output):
        counts["forward"] += 1

    def on_backward(module, grad_input, grad_output):
        counts["backward"] += 1

    counted.register_forward_hook(on_forward)
    counted.register_full_backward_hook(on_backward)
    run(counted)
    return counts


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--repeats", type=int, default=7,
                    help="timed runs per measurement, median reported (>= 5, default 7)")
    ap.add_argument("--seed", type=int, default=0, help="seed for weights and data (default 0)")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    ap.add_argument("--omp-wait-policy", choices=WAIT_POLICIES, default="passive",
                    help="OMP_WAIT_POLICY for torch's OpenMP threads: passive (default; robust "
                         "on a shared machine), active (spin), or inherit the environment's")
    args = ap.parse_args(argv)
    if args.batch < 1:
        ap.error(f"--batch must be >= 1; got {args.batch}")
    if args.threads < 1:
        ap.error(f"--threads must be >= 1; got {args.threads}")
    if args.repeats < 5:
        ap.error(f"--repeats must be >= 5; got {args.repeats}")
    return args


def run(args) -> dict:
    import torchattacks  # imported here so --help works without it

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.rand((args.batch,) + IMAGE_SHAPE, generator=gen, dtype=torch.float32)
    y = torch.randint(0, NUM_CLASSES, (args.batch,), generator=gen)

    model = SGRMnistCNN().eval()
    n_params, n_expected = param_count(model), expected_param_count()

    def forward():
        with torch.no_grad():
            return model(x)

    def input_grad():
        xg = x.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(xg), y, reduction="sum")
        return torch.autograd.grad(loss, xg)[0]

    pgd_linf = torchattacks.PGD(model, eps=0.3, alpha=0.01, steps=STEPS, random_start=True)
    pgd_l2 = torchattacks.PGDL2(model, eps=2.0, alpha=0.2, steps=STEPS, random_start=True)

    measurements = [
        ("forward_s", "forward (no_grad)", forward),
        ("input_grad_s", "input gradient (sum CE)", input_grad),
        ("pgd10_linf_s", "torchattacks PGD-10 linf eps .3", lambda: pgd_linf(x, y)),
        ("pgd10_l2_s", "torchattacks PGDL2-10 eps 2", lambda: pgd_l2(x, y)),
    ]
    samples = time_interleaved({key: fn for key, _, fn in measurements}, args.repeats)
    results = {key: statistics.median(s) for key, s in samples.items()}
    labels = {key: label for key, label, _ in measurements}

    passes = {
        "pgd10_linf": count_passes(
            model, lambda m: torchattacks.PGD(m, eps=0.3, alpha=0.01, steps=STEPS)(x, y)),
        "pgd10_l2": count_passes(
            model, lambda m: torchattacks.PGDL2(m, eps=2.0, alpha=0.2, steps=STEPS)(x, y)),
    }
    g = results["input_grad_s"]
    ratios = {
        "pgd10_linf_over_10_grads": results["pgd10_linf_s"] / (STEPS * g),
        "pgd10_l2_over_10_grads": results["pgd10_l2_s"] / (STEPS * g),
        "input_grad_over_forward": g / results["forward_s"],
    }

    out = dict(results)
    out.update(
        torch_version=torch.__version__,
        torchattacks_version=getattr(torchattacks, "__version__", "unknown"),
        threads=torch.get_num_threads(),
        batch=args.batch,
        repeats=args.repeats,
        param_count=n_params,
        expected_param_count=n_expected,
        platform=platform.platform(),
        python_version=platform.python_version(),
        cpu_count=os.cpu_count(),
        mkldnn=bool(torch.backends.mkldnn.is_available()),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "unset"),
        seed=args.seed,
        ratios=ratios,
        pass_counts=passes,
        samples=samples,
        labels=labels,
    )
    return out


def print_report(out: dict) -> None:
    print(f"PyTorch peer: SGR MNIST CNN, batch {out['batch']}, float32, torch "
          f"{out['torch_version']} ({out['threads']} threads, mkldnn={out['mkldnn']}), "
          f"torchattacks {out['torchattacks_version']}; median of {out['repeats']} interleaved "
          f"runs after {WARMUP} warm-ups")
    print(f"platform: {out['platform']}, python {out['python_version']}, "
          f"{out['cpu_count']} CPUs, OMP_WAIT_POLICY {out['omp_wait_policy']}")
    same = "equal" if out["param_count"] == out["expected_param_count"] else "DIFFERENT"
    print(f"parameters: torch {out['param_count']:,}; robustjax SGRCNN(width='mnist') layer "
          f"list {out['expected_param_count']:,} ({same})")
    print()
    print(f"| {'measurement':<33} | {'key':<16} | {'median ms':>9} | {'min ms':>8} | "
          f"{'max ms':>8} |")
    print(f"|{'-' * 35}|{'-' * 18}|{'-' * 11}|{'-' * 10}|{'-' * 10}|")
    for key, label in out["labels"].items():
        s = out["samples"][key]
        print(f"| {label:<33} | {key:<16} | {out[key] * 1e3:9.1f} | {min(s) * 1e3:8.1f} | "
              f"{max(s) * 1e3:8.1f} |")
    print()
    r, p = out["ratios"], out["pass_counts"]
    print(f"passes per attack call (forward/backward, expected {STEPS}/{STEPS}): "
          f"PGD linf {p['pgd10_linf']['forward']}/{p['pgd10_linf']['backward']}, "
          f"PGDL2 {p['pgd10_l2']['forward']}/{p['pgd10_l2']['backward']}")
    print(f"pgd10_linf_s / (10 * input_grad_s) = {r['pgd10_linf_over_10_grads']:.2f}")
    print(f"pgd10_l2_s   / (10 * input_grad_s) = {r['pgd10_l2_over_10_grads']:.2f}")
    print(f"input_grad_s / forward_s           = {r['input_grad_over_forward']:.2f}")


def main(argv=None) -> int:
    args = parse_args(argv)
    out = run(args)
    print_report(out)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
            fh.write("\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
