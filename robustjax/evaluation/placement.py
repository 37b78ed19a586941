"""Where the evaluator's chunks run: split over the data mesh of every device, in one process or
several.

A chunk of ``batch_size`` examples is padded (repeating its last example; the padding is masked
out by the caller) to the smallest multiple of the device count, then placed batch-sharded on the
mesh; the model's parameters are replicated, so every device holds a copy (constants of the
compiled program for a closure, replicated arguments for a pytree model function). Examples are independent and every random draw is keyed by the example's global index
(``programs.py``), so each example's result is the same on 1 device or N, whatever device it
lands on. Results come back to the host in order, on every process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from robustjax.core import programs as _programs
from robustjax.core import sharding as _sharding


class ChunkPlacement:
    """Places padded chunks of ``batch_size`` examples on ``mesh`` (default: every device).

    Attributes: ``mesh``; ``batch_size`` (examples per chunk); ``rows`` (rows of every placed
    chunk: ``batch_size`` rounded up to a multiple of the device count); ``devices``.
    """

    def __init__(self, batch_size: int, *, mesh: Mesh | None = None):
        self.mesh = _sharding.data_mesh() if mesh is None else _sharding.check_mesh(mesh)
        self.batch_size = int(batch_size)
        self.rows = _sharding.padded_size(self.batch_size, self.mesh)
        self._sharding = _sharding.batch_sharding(self.mesh)

    @property
    def devices(self) -> int:
        return int(self.mesh.devices.size)

    def place(self, chunk: Any) -> Any:
        """A pytree of host arrays with ``rows`` rows each (the same in every process) → arrays
        split along their first axis over the mesh; each process transfers only its rows."""
        return _sharding.shard_batch(chunk, self._sharding)

    def place_model(self, logits_fn: Callable) -> Callable:
        """``logits_fn`` ready to run next to the placed chunks: a pytree model function
        (``jax.tree_util.Partial(model.apply, variables)``, an NNX or Equinox module) passes its
        arrays to the compiled programs as arguments (``robustjax.core.programs``), so they are
        replicated on the mesh (through host memory, as a restored checkpoint may sit on one
        device); its other leaves (``train=False``) stay as they are. Other callables are
        returned unchanged: ``jax.jit`` places the constants they close over itself."""
        if not _programs.is_pytree_callable(logits_fn):
            return logits_fn
        target = _sharding.replicated(self.mesh)

        def one(leaf):
            if isinstance(leaf, (jax.Array, np.ndarray)):
                return jax.device_put(_sharding.to_host(leaf), target)
            return leaf

        return jax.tree_util.tree_map(one, logits_fn)

    def fetch(self, outputs: Any) -> Any:
        """Per-example outputs of a placed chunk → NumPy arrays in example order, on every
        process."""
        return _sharding.to_host(outputs)

    def __repr__(self) -> str:
        return (f"ChunkPlacement(batch_size={self.batch_size}, rows={self.rows}, "
                f"devices={self.devices}, processes={len({d.process_index for d in self.mesh.devices.flat})})")
