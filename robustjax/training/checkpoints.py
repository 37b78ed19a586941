"""Orbax checkpoints of a :class:`TrainState`, one per epoch, and the run's saved config.

Layout of a work directory::

    workdir/config.json        the full run config (what ``robustjax evaluate`` rebuilds from)
    workdir/metrics.jsonl      one JSON object per epoch
    workdir/checkpoints/<epoch>/   orbax checkpoint of the train state after that epoch
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from robustjax.core import sharding


def checkpoint_manager(workdir: str | os.PathLike, *, max_to_keep: int | None = 3) -> ocp.CheckpointManager:
    """An orbax manager for ``workdir/checkpoints`` (steps are epoch numbers)."""
    directory = Path(workdir).absolute() / "checkpoints"
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(directory, options=options)


def save_checkpoint(manager: ocp.CheckpointManager, epoch: int, state) -> None:
    """Save ``state`` as the checkpoint of ``epoch`` and wait until it is on disk.

    The state is saved as host arrays (a replicated state is the same on every device), so the
    checkpoint restores on any number of devices and processes. With several processes every
    process calls this; orbax writes once (process 0) and synchronizes them.
    """
    manager.save(epoch, args=ocp.args.StandardSave(sharding.to_host(state)))
    manager.wait_until_finished()


def latest_epoch(workdir: str | os.PathLike) -> int | None:
    """The newest complete checkpoint's epoch in ``workdir``, or ``None`` if there is none."""
    directory = Path(workdir) / "checkpoints"
    if not directory.is_dir():
        return None
    manager = checkpoint_manager(workdir)
    try:
        return manager.latest_step()
    finally:
        manager.close()


def restore_checkpoint(manager: ocp.CheckpointManager, epoch: int, like):
    """Restore the checkpoint of ``epoch`` into the structure (and shardings) of ``like``."""
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
    return manager.restore(epoch, args=ocp.args.StandardRestore(abstract))
