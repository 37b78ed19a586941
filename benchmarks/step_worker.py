"""The JAX side of the interleaved two-process train-step comparison (``benchmarks/race.py``).

A persistent worker (``benchmarks/peer/serve.py``) that builds the benchmark model
(``benchmarks.common.build_model``: the zoo's SGR MNIST CNN with its default convolution),
Adam (1e-3) and the coordinator's batch (``--data``), and serves these steps, each feeding
its outputs back as the next step's inputs, as a training loop does:

=================  ======================================================================
step name          one call is
=================  ======================================================================
erm_library        ``robustjax.training.step.jit_train_step(objective=erm, tx=adam,
                   mesh=data_mesh())``: the fit loop's step (state replicated, batch sharded,
                   state donated, the metrics the loop logs), compiled by
                   ``robustjax.core.compile.jit``
erm_plain_jit      what a user writes in a notebook: ``jax.jit`` of ``jax.value_and_grad`` of
                   the mean cross-entropy of ``model.apply`` + ``tx.update`` +
                   ``optax.apply_updates``, with JAX's default compile options
pgd10_at_library   ``jit_train_step`` of the ``adversarial`` objective, PGD-10 ℓ∞ (ε 0.1,
                   α 0.01, random start), as torchattacks' step on the PyTorch side
param_grad         (diagnostic) plain ``jax.jit`` gradient of the mean cross-entropy w.r.t.
                   the parameters
input_grad         (diagnostic) plain ``jax.jit`` gradient of the summed cross-entropy w.r.t.
                   the input
forward            (diagnostic) plain ``jax.jit`` forward pass
=================  ======================================================================

Each step is compiled and run 3 times before serving. Run by the coordinator; by hand:
``python -m benchmarks.step_worker --data batch.npz``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.peer.serve import protocol_stream, serve

STEP_NAMES = ("erm_library", "erm_plain_jit", "pgd10_at_library", "param_grad", "input_grad",
              "forward")
WARMUP = 3
PGD_AT = {"attack": "pgd_linf", "eps": 0.1, "step_size": 0.01, "steps": 10}


def library_step(method: str, model, x, y, **kwargs):
    """The fit loop's jitted step of ``method`` as a no-argument callable (state fed back)."""
    import jax
    import optax

    from robustjax.core.sharding import data_mesh
    from robustjax.training.objectives import make_objective
    from robustjax.training.state import create_train_state
    from robustjax.training.step import jit_train_step

    tx = optax.adam(1e-3)
    holder = {"state": create_train_state(model, tx, key=jax.random.PRNGKey(0),
                                          input_shape=x.shape[1:])}
    step = jit_train_step(objective=make_objective(method, model, **kwargs), tx=tx,
                          mesh=data_mesh())

    def run():
        holder["state"], metrics = step(holder["state"], (x, y))
        jax.block_until_ready(metrics)

    return run


def plain_jit_step(model, x, y):
    """A user's notebook training step on the same model: plain ``jax.jit``, default options."""
    import jax
    import optax

    tx = optax.adam(1e-3)
    params = model.init(jax.random.PRNGKey(0), x[:1])["params"]
    holder = {"params": params, "opt_state": tx.init(params)}

    @jax.jit
    def step(params, opt_state, x, y):
        def loss_fn(p):
            logits = model.apply({"params": p}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def run():
        holder["params"], holder["opt_state"], loss = step(holder["params"], holder["opt_state"], x, y)
        jax.block_until_ready(loss)

    return run


def diagnostic_step(kind: str, model, x, y):
    """A plain ``jax.jit`` parameter gradient, input gradient or forward pass (no feedback)."""
    import jax
    import optax

    variables = model.init(jax.random.PRNGKey(0), x[:1])

    def ce(v, xx, reduce):
        return reduce(optax.softmax_cross_entropy_with_integer_labels(model.apply(v, xx), y))

    fns = {"param_grad": (jax.jit(jax.grad(lambda v, xx: ce(v, xx, lambda a: a.mean()))), (variables, x)),
           "input_grad": (jax.jit(jax.grad(lambda xx, v: ce(v, xx, lambda a: a.sum()))), (x, variables)),
           "forward": (jax.jit(model.apply), (variables, x))}
    fn, args = fns[kind]
    return lambda: jax.block_until_ready(fn(*args))


def build_steps(data: str, names) -> tuple[dict, dict]:
    # robustjax first: its import applies core.host_memory's glibc settings, which must
    # precede XLA's thread pools
    from robustjax.core import host_memory

    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks import common

    with np.load(data) as d:
        x = jnp.asarray(d["x"], jnp.float32)
        y = jnp.asarray(d["y"], jnp.int32)
    model = common.build_model()
    makers = {
        "erm_library": lambda: library_step("erm", model, x, y),
        "erm_plain_jit": lambda: plain_jit_step(model, x, y),
        "pgd10_at_library": lambda: library_step("adversarial", model, x, y, **PGD_AT),
        **{k: (lambda k=k: diagnostic_step(k, model, x, y)) for k in ("param_grad", "input_grad", "forward")},
    }
    steps = {n: makers[n]() for n in names}
    for fn in steps.values():
        for _ in range(WARMUP):
            fn()
    info = {"side": "jax", "jax": jax.__version__, "backend": jax.default_backend(),
            "devices": len(jax.devices()), "batch": int(x.shape[0]),
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "platform": platform.platform(),
            "pid": os.getpid(), "host_malloc_tuned": host_memory.is_tuned()}
    return steps, info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help=".npz with x (NHWC float32) and y")
    ap.add_argument("--steps", default=",".join(STEP_NAMES),
                    help=f"comma list among {', '.join(STEP_NAMES)}")
    args = ap.parse_args(argv)
    names = [s for s in args.steps.split(",") if s]
    unknown = set(names) - set(STEP_NAMES)
    if unknown:
        ap.error(f"unknown steps {sorted(unknown)}; known: {', '.join(STEP_NAMES)}")
    proto = protocol_stream()
    steps, info = build_steps(args.data, names)
    serve(steps, info, proto=proto)
    return 0


if __name__ == "__main__":
    sys.exit(main())
