"""The pieces every objective shares: the :data:`Objective` signature, the model function in
train and inference mode, one-pass logits and input gradients, classification metrics, and
empirical risk minimization (the baseline every method adds to)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from robustjax.nn.spectral_norm import SPECTRAL_COLLECTION

Objective = Callable[[Any, Any, tuple, jax.Array], tuple[jax.Array, dict]]


#: Collections whose train-mode update does not depend on the batch's values: spectral
#: normalization's power-iteration vectors (a function of the kernel and the stored vector).
BATCH_FREE_COLLECTIONS = frozenset({SPECTRAL_COLLECTION})


def train_mode_logits(model, params, model_state, x):
    """Logits of the train-mode forward pass and the updated non-parameter collections.

    All collections in ``model_state`` are mutable, so BatchNorm statistics and spectral
    normalization vectors advance exactly once per training step, here. When every collection
    is batch-free (:data:`BATCH_FREE_COLLECTIONS`), the update runs on the first example and
    the batch then runs with the updated state, immutably: the same logits and state (σ is
    computed from the updated vector either way), and a zoo model can then run the
    differentiated pass as batch slices (``robustjax.nn.batch_chains``, issue 18).
    """
    variables = {"params": params, **model_state}
    if not model_state:
        return model.apply(variables, x, train=True), model_state
    if set(model_state) <= BATCH_FREE_COLLECTIONS and x.shape[0] > 1:
        _, updates = model.apply(variables, x[:1], train=True, mutable=list(model_state))
        state = {**model_state, **updates}
        return model.apply({"params": params, **state}, x, train=True), state
    logits, updates = model.apply(variables, x, train=True, mutable=list(model_state))
    return logits, {**model_state, **updates}


def inference_logits_fn(model, params, model_state) -> Callable[[jax.Array], jax.Array]:
    """The pure model function ``x -> logits`` in inference mode (for attacks and regularizers).

    BatchNorm uses its running statistics, so examples stay independent and the extra passes
    of attacks and regularizers do not touch the statistics; spectral-normalization vectors
    are read, not updated.

    A ``jax.tree_util.Partial`` over the variables: attacks, regularizers and
    ``evaluation.evaluate`` called outside a trace reuse their compiled programs for new
    parameters of the same ``model`` object (``robustjax.core.programs``).
    """
    return jax.tree_util.Partial(model.apply, {"params": params, **model_state}, train=False)


def single_mode_logits_fn(model, params, model_state, x) -> Callable[[jax.Array], jax.Array] | None:
    """``x -> logits`` if the model computes one function in both modes, else ``None``.

    That is the case when it has no mutable collections (no BatchNorm statistics, no
    spectral-normalization vectors: ``model_state`` is empty) and its train-mode and
    inference-mode programs are the same (checked by comparing the two jaxprs at the shape of
    ``x``, at trace time; a model whose ``train`` flag changes anything else gets ``None``).
    Objectives then run the clean batch through one forward pass whose ``jax.vjp`` closure
    serves the cross-entropy, the input gradient and its double backprop: the parameter
    gradient needs one reverse sweep of that forward instead of one per use (issue 7).
    """
    if model_state:
        return None
    variables = {"params": params}
    spec = (jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)),
                                   variables),
            jax.ShapeDtypeStruct(x.shape, x.dtype))
    train = jax.make_jaxpr(lambda v, z: model.apply(v, z, train=True))(*spec)
    infer = jax.make_jaxpr(lambda v, z: model.apply(v, z, train=False))(*spec)
    if str(train) != str(infer):
        return None
    return lambda z: model.apply(variables, z, train=False)


def logits_and_input_gradient(logits_fn, x, y):
    """``(logits, g, vjp_fn)``: ``logits_fn(x)``, ``g = ∇ₓ Σᵢ log φ_{yᵢ}(xᵢ)`` from one ``jax.vjp``.

    ``∂ log softmax(z)_y / ∂z = onehot(y) − softmax(z)``, so ``g`` is the vjp of that
    cotangent (the same quantity as ``regularizers.log_likelihood_input_gradient``).
    Everything stays differentiable in the parameters ``logits_fn`` closes over. Also
    returns the vjp closure, for further input gradients at ``x`` (under ``stop_gradient``).
    """
    logits, vjp_fn = jax.vjp(logits_fn, x)
    cotangent = jax.nn.one_hot(y, logits.shape[-1], dtype=logits.dtype) - jax.nn.softmax(logits)
    (g,) = vjp_fn(cotangent)
    return logits, g, vjp_fn


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
