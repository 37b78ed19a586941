"""Adversarial training objectives: PGD ℓ∞/ℓ2, FGM, FGSM and WRM (Madry et al. 2018; Farnia et
al. 2019, eq. 5–7; Roth et al. 2018 (SGR) eq. 3; Roth et al. 2019 eq. 14; Wen et al. 2020,
App. B.1)."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from robustjax import attacks
from robustjax.core.validation import (
    check_choice,
    check_nonnegative,
    check_positive,
    check_positive_int,
)
from robustjax.training.objectives.base import (
    Objective,
    classification_metrics,
    inference_logits_fn,
    train_mode_logits,
)

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
