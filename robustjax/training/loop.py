"""The fit loop: data, model, optimizer and objective from a config; epochs with evaluation,
JSON-lines metrics, a progress bar, orbax checkpoints every epoch and exact ``--resume``.

Determinism: the data order of epoch ``e`` is drawn from ``fold_in(PRNGKey(seed), e)`` and the
step randomness from the key inside the train state, so a run resumed from the checkpoint of
epoch ``e`` ends with exactly the parameters of an uninterrupted run with the same seed.

Several processes (after ``robustjax.distributed.initialize()``): every process loads the data
and draws the same batches; each transfers only its rows of a global batch to its own devices
(``core.sharding.shard_batch``), so the step sees the same global batch as in one process. Only
process 0 writes ``metrics.jsonl`` and ``config.json``, prints and shows progress; checkpoints are
saved and restored by all processes together (orbax coordinates them; the state is replicated
and saved as host arrays, so a checkpoint restores on any number of processes and devices).

A hint (issue 18): ``fit`` counts the minor page faults of the three steps after the first
(counting resumes in the next epoch when one has fewer steps) and, when each of them mapped
fresh memory (>= 32 MiB: ``core.host_memory.fault_hint``), warns once with a
``RuntimeWarning`` that names the glibc setting that keeps the memory mapped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from robustjax import data as rj_data
from robustjax import nn as rj_nn
from robustjax.core import host_memory, sharding
from robustjax import units
from robustjax.training import checkpoints
from robustjax.training.objectives import init_method_state, make_objective
from robustjax.training.optimizers import make_optimizer
from robustjax.training.state import TrainState, create_train_state
from robustjax.training.step import (
    batch_sharding,
    check_batch_divisible,
    data_mesh,
    jit_eval_step,
    jit_train_step,
)


@dataclasses.dataclass
class Run:
    """Everything built from a config: the pieces the loop and the evaluator share."""

    config: Any
    model: Any
    train_data: Any
    test_data: Any
    input_shape: tuple[int, ...]
    num_classes: int
    steps_per_epoch: int


def build_model(config, num_classes: int):
    """The model of ``config`` with the dataset's standardization as its first layer."""
    mean, std = rj_data.dataset_stats(config.dataset)
    kwargs = dict(config.get("model_kwargs", {}) or {})
    if config.get("sn_beta", None) is not None:
        # every Dense/Conv bounded by W / max(1, σ(W)/β) (Farnia et al. eq. 9)
        sn = dict(config.get("sn_kwargs", {}) or {})
        return rj_nn.spectral_normalized(config.model, num_classes, beta=float(config.sn_beta),
                                         mean=mean, std=std, **sn, **kwargs)
    return rj_nn.create(config.model, num_classes, mean=mean, std=std, **kwargs)


def training_examples(dataset, *, limit: int | None = None, random_labels: bool = False, seed: int = 0):
    """The training set a run sees: the first ``limit`` examples (``None``: all) and, with
    ``random_labels``, every label replaced by one drawn uniformly from the K classes with a
    generator seeded by ``seed`` (the random-label experiment of Zhang et al. 2017 that Farnia
    et al. 2019 repeat in Fig. 4)."""
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
            raise ValueError(f"train_limit must be a positive integer or None; got {limit!r}")
        dataset = rj_data.subset(dataset, int(limit))
    if random_labels:
        rng = np.random.default_rng([int(seed), 0x5EED1AB])
        labels = rng.integers(0, dataset.num_classes, size=len(dataset)).astype(np.int32)
        dataset = dataclasses.replace(dataset, labels=labels)
    return dataset


def build_run(config) -> Run:
    """Load the data and build the model of ``config``; validate batch sizes."""
    data_dir = config.get("data_dir", None)
    train_data = training_examples(
        rj_data.load(config.dataset, "train", data_dir=data_dir),
        limit=config.get("train_limit", None),
        random_labels=bool(config.get("random_labels", False)),
        seed=int(config.seed),
    )
    test_data = rj_data.load(config.dataset, config.get("eval_split", "test"), data_dir=data_dir)
    if not isinstance(config.batch_size, int) or config.batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {config.batch_size!r}")
    if config.batch_size > len(train_data):
        raise ValueError(
            f"batch_size ({config.batch_size}) is larger than the training set "
            f"({len(train_data)} examples of {config.dataset!r})"
        )
    if not isinstance(config.epochs, int) or config.epochs < 1:
        raise ValueError(f"epochs must be a positive integer; got {config.epochs!r}")
    num_classes = int(train_data.num_classes)
    model = build_model(config, num_classes)
    return Run(
        config=config,
        model=model,
        train_data=train_data,
        test_data=test_data,
        input_shape=tuple(train_data.images.shape[1:]),
        num_classes=num_classes,
        steps_per_epoch=len(train_data) // config.batch_size,
    )


def method_kwargs_of(config, train_data) -> dict:
    """The method's hyper-parameters in [0, 1] pixel units (``robustjax.units``): strengths a
    paper stated in another input space (``config.units.space``) converted, and radii given
    relative to E‖x‖₂ (``relative_to_mean_norm``, Farnia et al. §5) resolved on the train images.
    """
    kwargs, _ = units.resolve_method_kwargs(config, np.asarray(train_data.images))
    return kwargs


def initial_state(run: Run, tx) -> TrainState:
    """The train state before the first step (deterministic in ``config.seed``)."""
    config = run.config
    method_kwargs = method_kwargs_of(config, run.train_data)
    state = create_train_state(run.model, tx, key=jax.random.PRNGKey(config.seed), input_shape=run.input_shape)
    images = np.asarray(run.train_data.images[:2000])
    method_state = init_method_state(
        config.method,
        model=run.model,
        variables=state.variables(),
        input_shape=run.input_shape,
        batch_size=config.batch_size,
        key=jax.random.fold_in(jax.random.PRNGKey(config.seed), 7),
        data_variance=float(np.mean(np.var(images.reshape(len(images), -1), axis=0))),
        **method_kwargs,
    )
    state = state.replace(method_state=method_state)
    if config.get("init_from", None):
        state = _init_from_run(state, config.init_from)
    return state


def _init_from_run(state: TrainState, workdir) -> TrainState:
    """Start from the parameters and model state of another run's newest checkpoint (fine-tuning)."""
    source_run, source = load_run(workdir)
    del source_run
    same = jax.tree_util.tree_structure(source.params) == jax.tree_util.tree_structure(state.params)
    if not same:
        raise ValueError(f"init_from={str(workdir)!r}: that run's model has different parameters")
    return state.replace(params=source.params, model_state=source.model_state)


def epoch_key(seed: int, epoch: int) -> jax.Array:
    """The shuffling key of ``epoch`` (1-based), independent of everything else in the run."""
    return jax.random.fold_in(jax.random.PRNGKey(seed + 1_000_003), epoch)


def evaluate_classification(eval_fn, state, dataset, *, batch_size: int, mesh) -> dict[str, float]:
    """Mean loss and accuracy over every example of ``dataset`` (last batch padded and masked)."""
    totals = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
    placement = batch_sharding(mesh)
    for x, y in rj_data.batches(dataset, batch_size, key=None, drop_remainder=False):
        n = x.shape[0]
        mask = np.ones((batch_size,), np.float32)
        if n < batch_size:
            pad = batch_size - n
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
            y = np.concatenate([y, np.zeros((pad,), y.dtype)])
            mask[n:] = 0.0
        out = eval_fn(state, sharding.shard_batch((x, y, mask), placement))
        for k in totals:
            totals[k] += float(out[k])
    return {"loss": totals["loss_sum"] / totals["count"], "accuracy": totals["correct"] / totals["count"]}


def _append_jsonl(path: Path, record: dict) -> None:  # process 0 only
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, last_epoch: int) -> None:
    """Drop metric lines of epochs after ``last_epoch`` (written before a crash, never checkpointed)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["epoch"] <= last_epoch]
    path.write_text("".join(line + "\n" for line in keep))


#: ``fit`` counts the page faults of this many steps after the first and warns when each of them
#: maps fresh memory (``robustjax.core.host_memory.fault_hint``)
FAULT_WATCH_STEPS = 3


def _watch_faults(step_faults: list[int], faults: int, primary: bool) -> None:
    step_faults.append(faults)
    if len(step_faults) == FAULT_WATCH_STEPS and primary:
        hint = host_memory.fault_hint(step_faults)
        if hint:
            warnings.warn(hint, RuntimeWarning, stacklevel=3)


def fit(config, workdir: str | os.PathLike, *, resume: bool = False, progress: bool | None = None,
        mesh=None):
    """Train the run described by ``config``, writing metrics and checkpoints into ``workdir``.

    Args:
      config: a run config (see ``configs/``), e.g. from ``configs/mnist5k/erm.py``.
      workdir: the run's directory; created if needed.
      resume: continue from the newest checkpoint in ``workdir``. Without it, a work directory
        that already holds checkpoints is an error (so runs are never mixed by accident).
      progress: show a progress bar (default: when writing to a terminal; never in processes
        other than 0).
      mesh: the 1-D ``"data"`` device mesh to train on (default: every device of every process,
        ``robustjax.core.sharding.data_mesh()``).

    Returns:
      ``(state, history)``: the final train state and the list of per-epoch metric dicts.
    """
    workdir = Path(workdir)
    primary = sharding.is_primary_process()
    if primary:
        workdir.mkdir(parents=True, exist_ok=True)
    sharding.sync_processes("robustjax.fit: workdir")
    run = build_run(config)
    mesh = data_mesh() if mesh is None else sharding.check_mesh(mesh)
    check_batch_divisible(config.batch_size, mesh)
    eval_batch_size = int(config.get("eval_batch_size", 500))
    check_batch_divisible(eval_batch_size, mesh, name="eval_batch_size")

    tx = make_optimizer(config.optimizer, steps_per_epoch=run.steps_per_epoch, epochs=config.epochs)
    objective = make_objective(config.method, run.model, **method_kwargs_of(config, run.train_data))
    augment = rj_data.augmentation(config.get("augment", False), config.get("augment_kwargs", None))
    step_fn = jit_train_step(objective=objective, tx=tx, mesh=mesh, augment=augment)
    eval_fn = jit_eval_step(model=run.model, mesh=mesh)

    state = initial_state(run, tx)
    metrics_path = workdir / "metrics.jsonl"
    manager = checkpoints.checkpoint_manager(workdir, max_to_keep=config.get("keep_checkpoints", 3))
    start_epoch = 0
    latest = manager.latest_step()
    if latest is not None and not resume:
        manager.close()
        raise ValueError(
            f"workdir {str(workdir)!r} already holds checkpoints (epoch {latest}); pass --resume "
            "to continue that run or choose a new workdir"
        )
    if resume and latest is not None:
        state = checkpoints.restore_checkpoint(manager, latest, state)
        start_epoch = int(latest)
        if primary:
            _truncate_metrics(metrics_path, start_epoch)
    elif not resume and primary:
        metrics_path.unlink(missing_ok=True)
    if primary:
        (workdir / "config.json").write_text(config.to_json(indent=2))
    sharding.sync_processes("robustjax.fit: metrics")  # the others read what process 0 wrote

    state = sharding.replicate(state, mesh)
    placement = batch_sharding(mesh)
    history = [json.loads(line) for line in metrics_path.read_text().splitlines()] if metrics_path.exists() else []
    step_faults: list[int] = []  # page faults of the first steps after compilation (issue 18)
    for epoch in range(start_epoch + 1, config.epochs + 1):
        start = time.perf_counter()
        sums: dict[str, float] = {}
        bar = tqdm(
            rj_data.batches(run.train_data, config.batch_size, key=epoch_key(config.seed, epoch), drop_remainder=True),
            total=run.steps_per_epoch,
            desc=f"epoch {epoch}/{config.epochs}",
            disable=(None if progress is None else not progress) if primary else True,
            leave=False,
        )
        for i, batch in enumerate(bar, start=1):
            batch = sharding.shard_batch(batch, placement)
            watch = i > 1 and len(step_faults) < FAULT_WATCH_STEPS
            faults = host_memory.minor_page_faults() if watch else None
            state, metrics = step_fn(state, batch)
            metrics = sharding.to_host(metrics)
            if faults is not None:
                _watch_faults(step_faults, host_memory.minor_page_faults() - faults, primary)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            bar.set_postfix(loss=f"{sums['loss'] / i:.4f}", acc=f"{sums['accuracy'] / i:.3f}")
        bar.close()
        train_metrics = {f"train_{k}": v / run.steps_per_epoch for k, v in sums.items()}
        test_metrics = evaluate_classification(eval_fn, state, run.test_data, batch_size=eval_batch_size, mesh=mesh)
        record = {
            "epoch": epoch,
            "step": int(state.step),
            **train_metrics,
            "test_loss": test_metrics["loss"],
            "test_accuracy": test_metrics["accuracy"],
            "epoch_seconds": time.perf_counter() - start,
        }
        if not all(math.isfinite(v) for v in record.values() if isinstance(v, float)):
            manager.close()
            raise FloatingPointError(f"non-finite metrics at epoch {epoch}: {record}")
        history.append(record)
        if primary:
            _append_jsonl(metrics_path, record)
            print(
                f"epoch {epoch:3d}  train loss {record['train_loss']:.4f}  train acc {record['train_accuracy']:.4f}  "
                f"test loss {record['test_loss']:.4f}  test acc {record['test_accuracy']:.4f}  "
                f"({record['epoch_seconds']:.1f} s)",
                flush=True,
            )
        checkpoints.save_checkpoint(manager, epoch, state)  # collective: every process calls it
    manager.close()
    return state, history


def load_run(workdir: str | os.PathLike, *, epoch: int | None = None):
    """Rebuild the model of a finished or running ``workdir`` and restore its checkpoint.

    Returns ``(run, state)``. Raises ``ValueError`` when the work directory has no config or
    no checkpoint.
    """
    from robustjax.configs import config_from_json

    workdir = Path(workdir)
    config_path = workdir / "config.json"
    if not config_path.exists():
        raise ValueError(f"workdir {str(workdir)!r} has no config.json: is it a `robustjax train` run?")
    config = config_from_json(config_path.read_text())
    manager = checkpoints.checkpoint_manager(workdir)
    try:
        step = manager.latest_step() if epoch is None else epoch
        if step is None or step not in manager.all_steps():
            raise ValueError(f"workdir {str(workdir)!r} has no checkpoint" + ("" if epoch is None else f" for epoch {epoch}"))
        run = build_run(config)
        tx = make_optimizer(config.optimizer, steps_per_epoch=run.steps_per_epoch, epochs=config.epochs)
        state = checkpoints.restore_checkpoint(manager, step, initial_state(run, tx))
    finally:
        manager.close()
    return run, state
