"""Training objectives: one function per method of the papers.

An objective is built from a model and the method's hyper-parameters and has the signature

    objective(params, state, batch, key) -> (loss, aux)

where ``state`` is the current :class:`~robustjax.training.state.TrainState` (read for its
``model_state`` and ``method_state``), ``batch = (x, y)`` and ``key`` a fresh PRNG key.
``aux`` is a dict with

- ``"metrics"``: scalars to log (``loss``, ``accuracy`` and the method's own terms),
- ``"model_state"``: the model's updated non-parameter collections (BatchNorm statistics,
  spectral-normalization vectors), from the one train-mode forward pass of the step,
- ``"method_state"``: the method's new state.

The train step differentiates ``loss`` with respect to ``params`` only; everything in
``aux`` is carried over as is. Adding a method means adding one function here and a config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

Objective = Callable[[Any, Any, tuple, jax.Array], tuple[jax.Array, dict]]


def train_mode_logits(model, params, model_state, x):
    """Logits of the train-mode forward pass and the updated non-parameter collections.

    All collections in ``model_state`` are mutable, so BatchNorm statistics and spectral
    normalization vectors advance exactly once per training step, here.
    """
    variables = {"params": params, **model_state}
    if not model_state:
        return model.apply(variables, x, train=True), model_state
    logits, updates = model.apply(variables, x, train=True, mutable=list(model_state))
    return logits, {**model_state, **updates}


def inference_logits_fn(model, params, model_state) -> Callable[[jax.Array], jax.Array]:
    """The pure model function ``x -> logits`` in inference mode (for attacks and regularizers).

    BatchNorm uses its running statistics, so examples stay independent and the extra passes
    of attacks and regularizers do not touch the statistics; spectral-normalization vectors
    are read, not updated.
    """
    variables = {"params": params, **model_state}

    def logits_fn(x):
        return model.apply(variables, x, train=False)

    return logits_fn


def classification_metrics(logits: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
    """Mean softmax cross-entropy and accuracy of a batch."""
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == y)
    return {"loss": loss, "accuracy": accuracy}


def erm(model) -> Objective:
    """Empirical risk minimization: mean softmax cross-entropy on the clean batch."""

    def objective(params, state, batch, key):
        del key
        x, y = batch
        logits, model_state = train_mode_logits(model, params, state.model_state, x)
        metrics = classification_metrics(logits, y)
        aux = {"metrics": metrics, "model_state": model_state, "method_state": state.method_state}
        return metrics["loss"], aux

    return objective


OBJECTIVES: dict[str, Callable[..., Objective]] = {"erm": erm}


def make_objective(name: str, model, **kwargs) -> Objective:
    """Build the objective called ``name`` for ``model`` with the method's hyper-parameters."""
    if name not in OBJECTIVES:
        raise ValueError(f"method must be one of {sorted(OBJECTIVES)}; got {name!r}")
    return OBJECTIVES[name](model, **kwargs)


def init_method_state(name: str, **kwargs) -> Any:
    """The initial method state of ``name`` (``{}`` for methods without state)."""
    del name, kwargs
    return {}
