"""Orbax checkpoints of a TrainState round-trip exactly, and the newest epoch is found."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from robustjax import nn as rj_nn
from robustjax.training import checkpoints
from robustjax.training.state import create_train_state


def _state(seed):
    model = rj_nn.create("resnet", 10, depth=8)  # has batch_stats
    state = create_train_state(model, optax.adam(1e-3), key=jax.random.PRNGKey(seed), input_shape=(8, 8, 3))
    return state.replace(step=jnp.asarray(seed, jnp.int32), method_state={"v": jnp.full((2, 3), float(seed))})


def test_round_trip_restores_every_leaf(tmp_path):
    saved = _state(3)
    manager = checkpoints.checkpoint_manager(tmp_path)
    checkpoints.save_checkpoint(manager, 1, saved)
    checkpoints.save_checkpoint(manager, 2, _state(4))
    manager.close()
    assert checkpoints.latest_epoch(tmp_path) == 2
    manager = checkpoints.checkpoint_manager(tmp_path)
    restored = checkpoints.restore_checkpoint(manager, 1, _state(0))
    manager.close()
    assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(saved)
    for a, b in zip(jax.tree_util.tree_leaves(saved), jax.tree_util.tree_leaves(restored)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert "batch_stats" in restored.model_state


def test_no_checkpoint(tmp_path):
    assert checkpoints.latest_epoch(tmp_path) is None
