"""The train state: one pytree holding everything a run needs to continue exactly.

A :class:`TrainState` is what the jitted train step takes and returns, what the checkpoints
save, and what ``--resume`` restores: model parameters, the model's other variable
collections (BatchNorm statistics, spectral-normalization vectors), the optimizer state, the
step counter, the PRNG key of the run, and a slot for the state a training method keeps
between steps (SGR's covariance estimate, the warm-started power-iteration vectors of the
data-dependent spectral norm regularizer).
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """Everything a run needs, as a pytree (checkpointable, shardable, jit-friendly).

    Attributes:
      step: number of optimizer updates applied so far (int32 scalar).
      params: the model's ``params`` collection.
      model_state: the model's other variable collections as a dict
        (``{"batch_stats": ..., "spectral": ...}``); empty when the model has none.
      opt_state: the optax optimizer state.
      method_state: state the training method carries between steps (a pytree; ``{}`` for ERM).
      key: the run's PRNG key (raw ``uint32[2]``); each step splits a fresh key from it.
    """

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    method_state: Any
    key: jax.Array

    def variables(self) -> dict:
        """The Flax variables dict ``{"params": ..., **model_state}`` for ``model.apply``."""
        return {"params": self.params, **self.model_state}


def create_train_state(
    model,
    tx: optax.GradientTransformation,
    *,
    key: jax.Array,
    input_shape: tuple[int, ...],
    method_state: Any = None,
) -> TrainState:
    """Initialize a model and optimizer into a :class:`TrainState`.

    Args:
      model: a Flax Linen module called as ``model.apply(variables, x, train=...)``.
      tx: the optax optimizer.
      key: PRNG key of the run (split into an init key and the run's step key).
      input_shape: shape of one input example (no batch axis), e.g. ``(28, 28, 1)``.
      method_state: initial state of the training method (``{}`` when ``None``).
    """
    init_key, run_key = jax.random.split(key)
    variables = model.init(init_key, jnp.zeros((1, *input_shape), jnp.float32), train=False)
    variables = dict(variables)
    params = variables.pop("params")
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=variables,
        opt_state=tx.init(params),
        method_state={} if method_state is None else method_state,
        key=run_key,
    )
