"""The PyTorch side of the interleaved two-process train-step comparison (``benchmarks/race.py``).

A persistent worker (``benchmarks/peer/serve.py``) in the torch peer's own venv. It builds the
SGR MNIST CNN of ``torch_peer.SGRMnistCNN`` (layer for layer robustjax's ``sgr_cnn``), Adam
(lr 1e-3), and the batch the coordinator wrote (``--data``: an ``.npz`` with ``x`` NHWC float32
in [0, 1] and ``y`` int labels, the same digits the JAX worker trains on), then serves

==========  ==========================================================================
step name   one call is
==========  ==========================================================================
erm         ``model.train()``, ``zero_grad``, forward, mean cross-entropy, ``backward``,
            ``Adam.step()`` (the plain PyTorch training step)
pgd10_at    ``torchattacks.PGD(eps=0.1, alpha=0.01, steps=10, random_start=True)`` makes
            ``x_adv`` (torchattacks switches to eval mode and back), then the ERM step on it
param_grad  (diagnostic) the gradient of the mean cross-entropy w.r.t. the parameters
input_grad  (diagnostic) the gradient of the summed cross-entropy w.r.t. the input
forward     (diagnostic) a forward pass under ``torch.no_grad()``
==========  ==========================================================================

``torch.set_num_threads(--threads)`` and ``OMP_WAIT_POLICY`` (default ``passive``; see
``torch_peer.py`` for why) are set before the first step; each step is warmed up 3 times.
Run by the coordinator; by hand: ``benchmarks/.torch-venv/bin/python
benchmarks/peer/torch_steps.py --data batch.npz`` and type ``{"cmd": "run", "name": "erm",
"steps": 3}``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

WAIT_POLICIES = ("passive", "active", "inherit")
WARMUP = 3


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help=".npz with x (NHWC float32) and y")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", default="erm,pgd10_at", help="comma list of step names to serve")
    ap.add_argument("--omp-wait-policy", choices=WAIT_POLICIES, default="passive")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error(f"--threads must be >= 1; got {args.threads}")
    return args


def build_steps(args) -> tuple[dict, dict]:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from torch_peer import SGRMnistCNN

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with np.load(args.data) as d:
        x = torch.from_numpy(np.ascontiguousarray(d["x"].transpose(0, 3, 1, 2), dtype=np.float32))
        y = torch.from_numpy(d["y"].astype(np.int64))
    model = SGRMnistCNN().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def erm_on(inputs):
        opt.zero_grad()
        loss = F.cross_entropy(model(inputs), y)
        loss.backward()
        opt.step()
        return loss

    def erm():
        model.train()
        return erm_on(x)

    def param_grad():
        model.train()
        params = [p for p in model.parameters()]
        return torch.autograd.grad(F.cross_entropy(model(x), y), params)

    def input_grad():
        xg = x.detach().clone().requires_grad_(True)
        return torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)[0]

    def forward():
        with torch.no_grad():
            return model(x)

    steps = {"erm": erm, "param_grad": param_grad, "input_grad": input_grad, "forward": forward}
    wanted = [s for s in args.steps.split(",") if s]
    if "pgd10_at" in wanted:
        import torchattacks

        attack = torchattacks.PGD(model, eps=0.1, alpha=0.01, steps=10, random_start=True)

        def pgd10_at():
            model.train()
            return erm_on(attack(x, y))

        steps["pgd10_at"] = pgd10_at
    unknown = set(wanted) - set(steps)
    if unknown:
        raise SystemExit(f"unknown steps {sorted(unknown)}; known: {sorted(steps)}")
    steps = {k: steps[k] for k in wanted}
    for fn in steps.values():
        for _ in range(WARMUP):
            fn()
    info = {"side": "torch", "torch": torch.__version__, "threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
            "batch": int(x.shape[0]), "platform": platform.platform(), "pid": os.getpid()}
    return steps, info


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.omp_wait_policy != "inherit":  # before torch (and its OpenMP runtime) loads
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from serve import protocol_stream, serve

    proto = protocol_stream()
    steps, info = build_steps(args)
    serve(steps, info, proto=proto)
    return 0


if __name__ == "__main__":
    sys.exit(main())
