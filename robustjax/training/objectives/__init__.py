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
``aux`` is carried over as is. Adding a method means adding one module here (``base.py`` holds the shared pieces), its entry in
:data:`OBJECTIVES` and a config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from robustjax.training.objectives.adversarial import ATTACKS, adversarial
from robustjax.training.objectives.base import (
    Objective,
    classification_metrics,
    erm,
    inference_logits_fn,
    logits_and_input_gradient,
    single_mode_logits_fn,
    train_mode_logits,
)
from robustjax.training.objectives.gradient import SGR_SOURCES, _sgr_state, gn, sgr
from robustjax.training.objectives.soar import soar, soar_loss_penalty_and_grads, soar_penalty_and_grad
from robustjax.training.objectives.spectral import (
    SNR_STARTS,
    _global_snr_state,
    _snr_state,
    global_snr,
    snr,
)

__all__ = [
    "ATTACKS", "OBJECTIVES", "Objective", "SGR_SOURCES", "SNR_STARTS", "adversarial",
    "classification_metrics", "erm", "gn", "global_snr", "inference_logits_fn", "init_method_state",
    "logits_and_input_gradient", "make_objective", "sgr", "single_mode_logits_fn", "snr", "soar",
    "soar_loss_penalty_and_grads", "soar_penalty_and_grad", "train_mode_logits",
]


OBJECTIVES: dict[str, Callable[..., Objective]] = {
    "erm": erm,
    "adversarial": adversarial,
    "snr": snr,
    "global_snr": global_snr,
    "sgr": sgr,
    "gn": gn,
    "soar": soar,
}

_STATE_INITS = {"snr": _snr_state, "global_snr": _global_snr_state, "sgr": _sgr_state}


def make_objective(name: str, model, **kwargs) -> Objective:
    """Build the objective called ``name`` for ``model`` with the method's hyper-parameters."""
    if name not in OBJECTIVES:
        raise ValueError(f"method must be one of {sorted(OBJECTIVES)}; got {name!r}")
    return OBJECTIVES[name](model, **kwargs)


def init_method_state(name: str, *, model=None, variables=None, input_shape=(), batch_size=1,
                      key=None, data_variance=None, **kwargs) -> Any:
    """The initial method state of ``name`` (``{}`` for methods without state).

    ``snr``: random unit vectors ``v[batch_size, *input_shape]``; ``global_snr``: one
    converged power-iteration vector per Dense/Conv layer; ``sgr``: an empty covariance estimate.
    """
    if name not in OBJECTIVES:
        raise ValueError(f"method must be one of {sorted(OBJECTIVES)}; got {name!r}")
    init = _STATE_INITS.get(name)
    if init is None:
        return {}
    key = jax.random.PRNGKey(0) if key is None else key
    return init(model=model, variables=variables, input_shape=tuple(input_shape),
                batch_size=batch_size, key=key, data_variance=data_variance, **kwargs)
