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
from functools import partial
from typing import Any

import math

import jax
import jax.numpy as jnp
import optax
from jax import lax

from robustjax import attacks
from robustjax import regularizers
from robustjax.core import norms as N
from robustjax.regularizers.sgr import gradient_norm_penalty_of_gradient, sgr_penalty_of_gradient
from robustjax.core.validation import check_choice, check_nonnegative, check_positive, check_positive_int

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



# --------------------------------------------------------------------------------------------
# Adversarial training (Madry et al.; Farnia et al. eq. 5-7; SGR eq. 3; Wen App. B.1)
# --------------------------------------------------------------------------------------------

ATTACKS = ("pgd_linf", "pgd_l2", "fgm", "fgsm", "wrm")


def _craft(attack, logits_fn, x, y, key, *, eps, steps, step_size, random_start, gamma, clip):
    if attack in ("pgd_linf", "pgd_l2"):
        norm = jnp.inf if attack == "pgd_linf" else 2
        return attacks.pgd(logits_fn, x, y, eps=eps, norm=norm, step_size=step_size, steps=steps,
                           key=key if random_start else None, random_start=random_start, clip=clip)
    if attack in ("fgm", "fgsm"):
        return attacks.fgm(logits_fn, x, y, eps=eps, norm=2 if attack == "fgm" else jnp.inf, clip=clip)
    return attacks.wrm(logits_fn, x, y, gamma=gamma, steps=steps, step_size=step_size, clip=clip)


def adversarial(
    model,
    *,
    attack: str = "pgd_linf",
    eps: float | None = None,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    gamma: float | None = None,
    lam: float = 1.0,
    labels: str = "true",
    clip: tuple[float, float] | None = (0.0, 1.0),
    combine: str = "mixture",
) -> Objective:
    """Adversarial training: ``(1 − λ)·ℓ(x, y) + λ·ℓ(x_adv, y)`` (SGR eq. 3; λ = 1 is Madry et al.).

    ``combine="mixture"`` (default) is that convex combination, λ ∈ [0, 1]; ``combine="sum"``
    is Roth et al. 2019 eq. 14, ``ℓ(x, y) + λ·ℓ(x_adv, y)`` with any λ ≥ 0 (the mixture with
    weight λ/(1 + λ), scaled by 1 + λ).

    ``attack`` ∈ {pgd_linf, pgd_l2, fgm, fgsm, wrm} (Farnia et al. eq. 5–7); ``labels="true"``
    attacks the true labels, ``"predicted"`` the model's predictions (no label leaking, SGR
    §4 and Farnia §5). The adversarial batch is crafted on the inference-mode model and then
    treated as a constant (Danskin's theorem: the gradient of the inner maximum is the
    gradient at the maximizer). With λ < 1 the clean and adversarial batches go through one
    train-mode pass together, so BatchNorm sees the mixed batch.
    """
    check_choice(attack, name="method_kwargs.attack", allowed=ATTACKS)
    check_choice(labels, name="method_kwargs.labels", allowed=("true", "predicted"))
    check_nonnegative(lam, name="method_kwargs.lam")
    check_choice(combine, name="method_kwargs.combine", allowed=("mixture", "sum"))
    if lam > 1 and combine == "mixture":
        raise ValueError(f"method_kwargs.lam must be in [0, 1] for combine='mixture' (use "
                         f"combine='sum' for Roth et al.'s ℓ + λ·ℓ_adv); got {lam!r}")
    w_clean, w_adv = (1.0 - lam, lam) if combine == "mixture" else (1.0, lam)
    steps = check_positive_int(steps, name="method_kwargs.steps")
    if attack == "wrm":
        check_positive(gamma if gamma is not None else float("nan"), name="method_kwargs.gamma")
    else:
        check_positive(eps if eps is not None else float("nan"), name="method_kwargs.eps")
        if attack.startswith("pgd"):
            step_size = 2.5 * eps / steps if step_size is None else step_size
            check_positive(step_size, name="method_kwargs.step_size")

    def objective(params, state, batch, key):
        x, y = batch
        logits_fn = inference_logits_fn(model, lax.stop_gradient(params), state.model_state)
        target = None if labels == "predicted" else y
        x_adv = lax.stop_gradient(_craft(attack, logits_fn, x, target, key, eps=eps, steps=steps,
                                         step_size=step_size, random_start=random_start,
                                         gamma=gamma, clip=clip))
        if w_clean > 0:
            logits, model_state = train_mode_logits(model, params, state.model_state,
                                                    jnp.concatenate([x, x_adv]))
            clean_logits, adv_logits = jnp.split(logits, 2)
            clean = classification_metrics(clean_logits, y)
            adv = classification_metrics(adv_logits, y)
            loss = w_clean * clean["loss"] + w_adv * adv["loss"]
        else:
            adv_logits, model_state = train_mode_logits(model, params, state.model_state, x_adv)
            adv = classification_metrics(adv_logits, y)
            clean = {"accuracy": jnp.mean(jnp.argmax(logits_fn(x), -1) == y)}
            loss = adv["loss"]
        metrics = {"loss": loss, "accuracy": clean["accuracy"], "adv_loss": adv["loss"],
                   "adv_accuracy": adv["accuracy"]}
        return loss, {"metrics": metrics, "model_state": model_state, "method_state": state.method_state}

    return objective


# --------------------------------------------------------------------------------------------
# Data-dependent spectral norm regularization (Roth, Kilcher & Hofmann 2019, eq. 12-13)
# --------------------------------------------------------------------------------------------


SNR_STARTS = ("random", "previous")


def snr(model, *, lam: float = 1e-2, eps: float = 1.75, iters: int = 10, form: str = "sos",
        start: str = "random") -> Objective:
    """ERM + λ · data-dependent spectral norm penalty (Roth et al. 2019, eq. 12 or 13).

    ``form="sos"``: ‖f(x + ε v) − f(x)‖² (eq. 13, what the paper trained with, Table 1:
    λ = 1e-2, ε = 1.75, 10 iterations); ``form="jacobian"``: (uᵀ J v)² (eq. 12). The
    power iteration (eq. 11) starts, per ``start``, from a fresh Gaussian vector drawn from the
    step's key (``"random"``, default) or from the previous step's vectors (``"previous"``,
    kept in the method state as ``v``; after shuffling they belong to *other* examples). The
    vectors are held constant in the penalty (``stop_gradient``); the penalty runs the model in
    inference mode (BatchNorm with running statistics).

    Why random: eq. 11 may start from a random vector or from an approximation of *this*
    example's singular vector. Measured on an mnist-5k SNR model (3 epochs, 1,024 training
    digits, σ₂/σ₁ ≈ 0.83 on average) against the exact SVD, the mean relative error of σ after
    1 / 2 / 5 / 10 / 20 iterations is 0.26 / 0.11 / 0.026 / 0.0054 / 0.0009 from a random
    start, 0.22 / 0.11 / 0.028 / 0.0063 / 0.0011 from other examples' converged vectors (no
    better), and 0.036 / 0.020 / 0.0067 / 0.0024 / 0.0006 from the same example's vector one
    epoch old — which would need example indices in every batch and a state of the size of
    the data set; with 10 iterations (the paper's) the random start is within 0.5 % on average
    (``python -m experiments.snr_power_start``).
    """
    check_nonnegative(lam, name="method_kwargs.lam")
    check_choice(form, name="method_kwargs.form", allowed=("sos", "jacobian"))
    check_choice(start, name="method_kwargs.start", allowed=SNR_STARTS)
    iters = check_positive_int(iters, name="method_kwargs.iters")
    if form == "sos":
        check_positive(eps, name="method_kwargs.eps")

    def objective(params, state, batch, key):
        x, y = batch
        logits, model_state = train_mode_logits(model, params, state.model_state, x)
        metrics = classification_metrics(logits, y)
        logits_fn = inference_logits_fn(model, params, state.model_state)
        v0 = state.method_state["v"]
        if start == "random":
            v0 = jax.random.normal(key, x.shape, x.dtype)
        if form == "sos":
            penalty, v = regularizers.sos_spectral_penalty(logits_fn, x, eps=eps, iters=iters, v0=v0)
        else:
            penalty, v = regularizers.jacobian_spectral_penalty(logits_fn, x, iters=iters, v0=v0)
        loss = metrics["loss"] + lam * penalty
        metrics = {**metrics, "ce_loss": metrics["loss"], "loss": loss, "penalty": penalty}
        return loss, {"metrics": metrics, "model_state": model_state,
                      "method_state": {"v": lax.stop_gradient(v)}}

    return objective


def _snr_state(*, key, batch_size, input_shape, **_):
    v = jax.random.normal(key, (batch_size, *input_shape), jnp.float32)
    norms = jnp.sqrt(jnp.sum(v * v, axis=tuple(range(1, v.ndim)), keepdims=True))
    return {"v": v / norms}


# --------------------------------------------------------------------------------------------
# Global spectral norm regularization (Yoshida & Miyato 2017; Roth et al. 2019, eq. 9-10)
# --------------------------------------------------------------------------------------------


def global_snr(model, *, lam: float = 3e-4, iters: int = 1) -> Objective:
    """ERM + λ/2 Σ_l σ(W_l)² over every Dense/Conv operator (Roth et al. 2019, eq. 10).

    σ is the norm of each layer's true linear operator (convolutions at their input shape,
    Farnia et al. Algorithm 1), by one persistent power iteration per step; Roth's Table 1
    uses λ = 3e-4.
    """
    from robustjax.analysis.layer_spectra import collect_layers, penalty_layers

    check_nonnegative(lam, name="method_kwargs.lam")
    iters = check_positive_int(iters, name="method_kwargs.iters")

    def objective(params, state, batch, key):
        del key
        x, y = batch
        logits, model_state = train_mode_logits(model, params, state.model_state, x)
        metrics = classification_metrics(logits, y)
        # layer geometry is static: found by tracing the model once (no runtime cost)
        infos = collect_layers(model, {"params": params, **state.model_state}, x.shape[1:])
        layers = penalty_layers(params, infos)
        penalty, vectors = regularizers.global_spectral_penalty(layers, state.method_state["v"], lam=lam, iters=iters)
        loss = metrics["loss"] + penalty
        metrics = {**metrics, "ce_loss": metrics["loss"], "loss": loss, "penalty": penalty}
        new_state = {"v": tuple(lax.stop_gradient(v) for v in vectors)}
        return loss, {"metrics": metrics, "model_state": model_state, "method_state": new_state}

    return objective


def _global_snr_state(*, model, variables, input_shape, key, **_):
    from robustjax.analysis.layer_spectra import collect_layers, penalty_layers

    layers = penalty_layers(variables["params"], collect_layers(model, variables, input_shape))
    return {"v": regularizers.global_spectral_state_init(layers, key=key)}


# --------------------------------------------------------------------------------------------
# Structured gradient regularization and gradient-norm regularization (Roth et al. 2018)
# --------------------------------------------------------------------------------------------

SGR_SOURCES = ("gradient", "sign", "fgsm", "pgd")


def sgr(
    model,
    *,
    lam: float = 1.0,
    kind: str = "function",
    source: str = "fgsm",
    eps: float = 32 / 255,
    beta: float = 0.1,
    max_distance: int | None = None,
    psd: bool = True,
    steps: int = 10,
    uncentered: bool = False,
) -> Objective:
    """ERM + λ · SGR ½ gᵀ Σ̂ g with a running covariance of adversarial perturbations (SGR Alg. 1).

    Every step: perturbations ξ from ``source`` (loss gradient, its sign, FGSM or PGD at
    radius ``eps``, crafted on the predicted labels — no label leaking), the EMA update
    Σ̂ ← (1 − β) Σ̂ + β Cov(ξ) (β = 0.1), then the penalty with Σ̂ rescaled to the data's mean
    variance and held constant (``stop_gradient``); λ is the noise-to-signal ratio. ``kind``:
    ``function`` (covariance function of rounded pixel displacement, eq. 16; a convolution
    of the gradient image), ``full`` (dense D×D) or ``diagonal``. ``psd`` (``function`` only,
    default on): apply the covariance function's nearest PSD stationary kernel — the raw
    rounded-distance function has negative eigenvalues, along which ½ gᵀΣg would reward large
    gradients (see ``robustjax.regularizers.covariance``). ``uncentered``: add eq. 12's
    first-order term ``−gᵀμ`` with μ the running mean of the perturbations (rescaled with Σ;
    the paper "observed this correction to be small").

    For a model without mutable state (see :func:`single_mode_logits_fn`) the CE, ``g`` and
    (sources gradient/sign/fgsm) the perturbation's gradient come from one forward pass, so the
    parameter gradient needs one reverse sweep of it (issue 7; same values as the general path).
    """
    check_nonnegative(lam, name="method_kwargs.lam")
    check_choice(source, name="method_kwargs.source", allowed=SGR_SOURCES)
    check_choice(kind, name="method_kwargs.kind", allowed=("function", "full", "diagonal"))
    check_positive(eps, name="method_kwargs.eps")

    def objective(params, state, batch, key):
        x, y = batch
        shared_fn = single_mode_logits_fn(model, params, state.model_state, x)
        if shared_fn is None:
            logits, model_state = train_mode_logits(model, params, state.model_state, x)
            logits_fn = inference_logits_fn(model, lax.stop_gradient(params), state.model_state)
            xi = regularizers.perturbations(logits_fn, x, None, source=source, eps=eps, key=key,
                                            steps=steps)
        else:
            # one forward pass for CE, g and (gradient/sign/fgsm sources) the perturbation
            logits, g, vjp_fn = logits_and_input_gradient(shared_fn, x, y)
            model_state = state.model_state
            frozen_fn = inference_logits_fn(model, lax.stop_gradient(params), state.model_state)
            xi = _shared_perturbation(frozen_fn, vjp_fn, logits, x, source=source, eps=eps,
                                      key=key, steps=steps)
        metrics = classification_metrics(logits, y)
        covariance = regularizers.covariance_update(state.method_state, lax.stop_gradient(xi), beta=beta)
        covariance = jax.tree_util.tree_map(lax.stop_gradient, covariance)
        if shared_fn is None:
            live_fn = inference_logits_fn(model, params, state.model_state)
            penalty = regularizers.sgr_penalty(live_fn, x, y, covariance=covariance,
                                               uncentered=uncentered)
        else:
            penalty = sgr_penalty_of_gradient(g, covariance=covariance, uncentered=uncentered)
        loss = metrics["loss"] + lam * penalty
        metrics = {**metrics, "ce_loss": metrics["loss"], "loss": loss, "penalty": penalty}
        return loss, {"metrics": metrics, "model_state": model_state, "method_state": covariance}

    return objective


def _shared_perturbation(frozen_fn, vjp_fn, logits, x, *, source, eps, key, steps):
    """``regularizers.perturbations(..., y=None)`` reusing the clean forward pass (a constant).

    gradient / sign / fgsm: the loss gradient at the predicted labels is the vjp of
    ``softmax − onehot(ŷ)`` through the forward pass the objective already made; fgsm then
    steps as ``attacks.fgm`` does (sign step, clip to [0, 1], ε-ball rounding fix). pgd
    starts elsewhere and keeps the general path on ``frozen_fn`` (parameters held constant).
    """
    if source == "pgd":
        return regularizers.perturbations(frozen_fn, x, None, source=source, eps=eps, key=key,
                                          steps=steps)
    z = lax.stop_gradient(logits)
    predicted = jnp.argmax(z, axis=-1)
    cotangent = jax.nn.softmax(z) - jax.nn.one_hot(predicted, z.shape[-1], dtype=z.dtype)
    (grad,) = vjp_fn(cotangent)
    grad = lax.stop_gradient(grad)
    if source == "gradient":
        return grad
    if source == "sign":
        return eps * jnp.sign(grad)
    x_adv = N.clip_to_range(x + eps * N.steepest_ascent_direction(grad, norm=jnp.inf), (0.0, 1.0))
    return lax.stop_gradient(N.round_into_ball(x, x_adv, eps=eps, norm=math.inf) - x)


def _sgr_state(*, input_shape, data_variance, kind="function", max_distance=None, psd=True, **_):
    return regularizers.covariance_init(kind, tuple(input_shape), data_variance=data_variance,
                                        max_distance=max_distance, psd=psd)


def gn(model, *, lam: float = 1.0) -> Objective:
    """ERM + λ · ½‖∇ₓ log φ_y(x)‖² (gradient-norm regularization, SGR with Σ = I; SGR §4.1 (iv)).

    For a model without mutable state (see :func:`single_mode_logits_fn`) CE and ``g`` come
    from one forward pass and its ``jax.vjp`` (one reverse sweep for both in the parameter
    gradient, issue 7); otherwise CE in train mode and the penalty in inference mode.
    """
    check_nonnegative(lam, name="method_kwargs.lam")

    def objective(params, state, batch, key):
        del key
        x, y = batch
        shared_fn = single_mode_logits_fn(model, params, state.model_state, x)
        if shared_fn is None:
            logits, model_state = train_mode_logits(model, params, state.model_state, x)
            penalty = regularizers.gradient_norm_penalty(
                inference_logits_fn(model, params, state.model_state), x, y)
        else:  # one forward pass (and one reverse sweep of it) for CE and g
            logits, g, _ = logits_and_input_gradient(shared_fn, x, y)
            model_state = state.model_state
            penalty = gradient_norm_penalty_of_gradient(g)
        metrics = classification_metrics(logits, y)
        loss = metrics["loss"] + lam * penalty
        metrics = {**metrics, "ce_loss": metrics["loss"], "loss": loss, "penalty": penalty}
        return loss, {"metrics": metrics, "model_state": model_state, "method_state": state.method_state}

    return objective


# --------------------------------------------------------------------------------------------
# SOAR (Ma, Faghri & Farahmand 2020)
# --------------------------------------------------------------------------------------------


def soar_penalty_and_grad(
    model,
    params,
    model_state,
    x_eval: jax.Array,
    y: jax.Array,
    z: jax.Array,
    h: jax.Array | None,
    *,
    eps: float,
    alpha: float | None,
    norm: float,
    hvp: str,
    norm_clip: float | None,
    microbatches: int = 1,
):
    """SOAR's batch-mean penalty (Ma et al. eq. 11) and its gradient with respect to ``params``,
    one microbatch at a time (``lax.scan``): peak memory is that of one microbatch's double
    backprop. The random constants ``z``, ``h`` (:func:`robustjax.regularizers.soar_directions`)
    are drawn for the whole batch and split, so the result is the full-batch value and gradient
    for any ``microbatches`` dividing the batch (up to float summation order)."""

    def penalty(p, xb, yb, zb, hb):
        return regularizers.soar_penalty(
            inference_logits_fn(model, p, model_state), xb, yb, eps=eps, alpha=alpha, norm=norm,
            hvp=hvp, norm_clip=norm_clip, z=zb, h=hb)

    value_and_grad = jax.value_and_grad(penalty)
    args = (x_eval, y, z, h)
    if microbatches == 1:
        return value_and_grad(params, *args)

    def split(a):
        return None if a is None else a.reshape((microbatches, -1) + a.shape[1:])

    def body(acc, mb):
        v, g = value_and_grad(params, *mb)
        return (acc[0] + v, jax.tree_util.tree_map(jnp.add, acc[1], g)), None

    init = (jnp.zeros((), jnp.float32), jax.tree_util.tree_map(jnp.zeros_like, params))
    (v, g), _ = lax.scan(body, init, tuple(split(a) for a in args))
    return v / microbatches, jax.tree_util.tree_map(lambda t: t / microbatches, g)


def _default_microbatches(batch: int) -> int:
    return next(m for m in (4, 2, 1) if batch % m == 0 and (batch // m >= 32 or m == 1))


def soar(
    model,
    *,
    lam: float = 0.5,
    eps: float = 8 / 255,
    alpha: float = 8 / 255,
    init: str = "pgd1",
    norm: float | str = "inf",
    norm_clip: float = 10.0,
    reg_grad_clip: float = 30.0,
    hvp: str = "fd",
    clip: tuple[float, float] | None = (0.0, 1.0),
    microbatches: int | None = None,
) -> Objective:
    """Loss at x' + λ · SOAR R(x'; z, h) (Ma et al. eq. 11–12, App. A and C).

    x' is the evaluation point (``init``: zero = x, random = x + η, pgd1 = one PGD step of size
    α from x + η, the paper's choice: "x' = x + η + α∇ₓℓ(x + η)", §4.2); R's norm term is clipped to [0, ``norm_clip``] and, as App. C says ("a
    gradient clipping of 30 on the ℓ2 norm of regularizer gradient"), the gradient of λR with
    respect to the parameters is clipped to global norm ``reg_grad_clip`` before it joins the
    loss gradient. The paper fine-tunes a standard model: set ``init_from`` in the config.

    The penalty's parameter gradient is computed inside the forward pass (a ``custom_vjp``,
    :func:`soar_penalty_and_grad`) over ``microbatches`` sequential slices of the batch: the
    same value and gradient, with the peak memory of one slice's double backprop. ``None``
    (default): the largest of 4, 2, 1 that divides the batch into slices of ≥ 32 examples
    (SGR MNIST CNN, batch 128, CPU: step time unchanged within noise, 4.4–4.8 × ERM for 1, 2
    and 4 slices; XLA peak memory 190 → 131 → 86 MiB, ERM's 61 MiB).
    """
    check_nonnegative(lam, name="method_kwargs.lam")
    check_positive(eps, name="method_kwargs.eps")
    check_positive(alpha, name="method_kwargs.alpha")
    check_positive(reg_grad_clip, name="method_kwargs.reg_grad_clip")
    if microbatches is not None:
        microbatches = check_positive_int(microbatches, name="method_kwargs.microbatches")
    norm_value = math.inf if str(norm).lower() in ("inf", "linf") else float(norm)
    static = dict(eps=eps, alpha=alpha if hvp == "fd" else None, norm=norm_value, hvp=hvp,
                  norm_clip=norm_clip)
    max_norm = reg_grad_clip / max(lam, 1e-12)  # ‖λ ∇R‖ ≤ reg_grad_clip

    @partial(jax.custom_vjp, nondiff_argnums=(6,))
    def penalty_term(params, model_state, x_eval, y, z, h, m):
        return soar_penalty_and_grad(model, params, model_state, x_eval, y, z, h, **static,
                                     microbatches=m)[0]

    def penalty_fwd(params, model_state, x_eval, y, z, h, m):
        value, g = soar_penalty_and_grad(model, params, model_state, x_eval, y, z, h, **static,
                                         microbatches=m)
        norm_g = optax.global_norm(g)
        scale = jnp.minimum(1.0, max_norm / jnp.maximum(norm_g, 1e-12))
        return value, jax.tree_util.tree_map(lambda t: t * scale, g)

    def penalty_bwd(m, g, ct):
        del m
        return (jax.tree_util.tree_map(lambda t: ct * t, g),) + (None,) * 5

    penalty_term.defvjp(penalty_fwd, penalty_bwd)

    def objective(params, state, batch, key):
        point_key, reg_key = jax.random.split(key)
        x, y = batch
        b = x.shape[0]
        m = microbatches if microbatches is not None else _default_microbatches(b)
        if b % m:
            raise ValueError(f"method_kwargs.microbatches ({m}) must divide the batch size ({b})")
        frozen = inference_logits_fn(model, lax.stop_gradient(params), state.model_state)
        x_eval = lax.stop_gradient(regularizers.soar_evaluation_point(
            frozen, x, y, init=init, eps=eps, key=point_key, norm=norm_value, clip=clip,
            step_size=alpha))
        logits, model_state = train_mode_logits(model, params, state.model_state, x_eval)
        metrics = classification_metrics(logits, y)
        z, h = regularizers.soar_directions(reg_key, x_eval, alpha=static["alpha"])
        penalty = penalty_term(params, lax.stop_gradient(state.model_state), x_eval, y, z, h, m)
        loss = metrics["loss"] + lam * penalty
        metrics = {**metrics, "ce_loss": metrics["loss"], "loss": loss, "penalty": penalty}
        return loss, {"metrics": metrics, "model_state": model_state, "method_state": state.method_state}

    return objective


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
