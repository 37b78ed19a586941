"""The jitted, data-parallel train and evaluation steps.

Data parallelism uses ``jax.sharding``: a 1-D mesh over all devices with the axis ``"data"``;
batches are sharded along their first axis, the train state is replicated. XLA's SPMD
partitioner inserts the gradient all-reduce (and the cross-device BatchNorm statistics), so
the step computes the same function on 1 or N devices. With several processes
(``robustjax.distributed.initialize()`` before anything else) ``jax.devices()`` lists every
process's devices and the same step runs unchanged; each process feeds its rows of the global
batch with ``robustjax.core.sharding.shard_batch`` (see ``training/loop.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from robustjax.core import compile as _compile
from robustjax.core.sharding import (  # noqa: F401  (re-exported: the train step's layout)
    batch_sharding,
    check_batch_divisible,
    data_mesh,
    replicated,
)
from robustjax.training.objectives import Objective
from robustjax.training.state import TrainState


def train_step(
    state: TrainState,
    batch: tuple[jax.Array, jax.Array],
    *,
    objective: Objective,
    tx: optax.GradientTransformation,
    augment: Callable | None = None,
) -> tuple[TrainState, dict]:
    """One optimizer update of ``objective`` on ``batch`` (pure; jit it with :func:`jit_train_step`).

    The step's randomness comes from ``state.key``: it is split into the next state's key,
    an augmentation key and the objective's key, so a run is a deterministic function of its
    seed and data order (what makes ``--resume`` reproduce an uninterrupted run).
    """
    next_key, augment_key, objective_key = jax.random.split(state.key, 3)
    x, y = batch
    if augment is not None:
        x = augment(augment_key, x)
    grad_fn = jax.value_and_grad(objective, has_aux=True)
    (_, aux), grads = grad_fn(state.params, state, (x, y), objective_key)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(aux["metrics"])
    metrics["grad_norm"] = optax.tree.norm(grads)
    new_state = state.replace(
        step=state.step + 1,
        params=params,
        model_state=aux["model_state"],
        opt_state=opt_state,
        method_state=aux["method_state"],
        key=next_key,
    )
    return new_state, metrics


def jit_train_step(
    *,
    objective: Objective,
    tx: optax.GradientTransformation,
    mesh: Mesh,
    augment: Callable | None = None,
    donate: bool = True,
    ynnpack: bool | None = None,
):
    """``train_step`` compiled for ``mesh``: state replicated, batch sharded over ``"data"``.

    Compiled with ``robustjax.core.compile.jit`` with XLA's default options (YNNPACK kept: the
    zoo's convolution keeps slow kernel gradients away from it, issue 18) unless ``ynnpack=False``
    or ``ROBUSTJAX_CPU_YNNPACK=0`` turns XLA:CPU's YNNPACK fusions off (worth it for models built
    on plain ``flax.linen.Conv``, whose kernel gradients YNNPACK runs slowly).
    """
    step = partial(train_step, objective=objective, tx=tx, augment=augment)
    return _compile.jit(
        step,
        ynnpack=_compile.ynnpack_setting(ynnpack, default=True),
        in_shardings=(replicated(mesh), batch_sharding(mesh)),
        out_shardings=(replicated(mesh), replicated(mesh)),
        donate_argnums=(0,) if donate else (),
    )


def eval_step(state: TrainState, batch, *, model) -> dict[str, jax.Array]:
    """Per-batch sums for evaluation: summed loss and number correct over the unmasked examples.

    ``batch = (x, y, mask)``; padded examples (mask 0) count for nothing, so a padded last
    batch gives exact totals.
    """
    x, y, mask = batch
    logits = model.apply(state.variables(), x, train=False)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    correct = (jnp.argmax(logits, axis=-1) == y).astype(jnp.float32)
    return {"loss_sum": jnp.sum(loss * mask), "correct": jnp.sum(correct * mask), "count": jnp.sum(mask)}


def jit_eval_step(*, model, mesh: Mesh):
    """``eval_step`` compiled for ``mesh``."""
    return jax.jit(
        partial(eval_step, model=model),
        in_shardings=(replicated(mesh), batch_sharding(mesh)),
        out_shardings=replicated(mesh),
    )
