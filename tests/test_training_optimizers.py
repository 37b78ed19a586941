"""Optimizers and schedules built from configs, and their bad inputs."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from robustjax.configs import base_config
from robustjax.training.optimizers import learning_rate_schedule, make_optimizer


def test_step_schedule_decays_at_epoch_boundaries():
    sched = learning_rate_schedule(
        learning_rate=0.1, schedule="step", steps_per_epoch=10, epochs=5, decay_epochs=(2, 4), decay_factor=0.1
    )
    np.testing.assert_allclose([sched(0), sched(19), sched(20), sched(39), sched(40)], [0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-6)


def test_sgd_momentum_with_weight_decay_matches_hand_computation():
    config = base_config().optimizer
    config.name, config.learning_rate, config.momentum, config.weight_decay = "sgd", 0.5, 0.9, 0.01
    tx = make_optimizer(config, steps_per_epoch=1, epochs=1)
    w = jnp.array([1.0, -2.0])
    g = jnp.array([0.3, 0.1])
    state = tx.init(w)
    upd, state = tx.update(g, state, w)
    expected1 = -0.5 * (g + 0.01 * w)
    np.testing.assert_allclose(upd, expected1, rtol=1e-6)
    w2 = optax.apply_updates(w, upd)
    upd2, _ = tx.update(g, state, w2)
    np.testing.assert_allclose(upd2, -0.5 * ((g + 0.01 * w2) + 0.9 * (g + 0.01 * w)), rtol=1e-6)


@pytest.mark.parametrize("lr", [0.0, -1e-3])
def test_non_positive_learning_rate(lr):
    config = base_config().optimizer
    config.learning_rate = lr
    with pytest.raises(ValueError, match="learning_rate"):
        make_optimizer(config, steps_per_epoch=1, epochs=1)


def test_unknown_optimizer_and_schedule():
    config = base_config().optimizer
    config.name = "lbfgs"
    with pytest.raises(ValueError, match="optimizer.name"):
        make_optimizer(config, steps_per_epoch=1, epochs=1)
    config = base_config().optimizer
    config.schedule = "exp"
    with pytest.raises(ValueError, match="optimizer.schedule"):
        make_optimizer(config, steps_per_epoch=1, epochs=1)
