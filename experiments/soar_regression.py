"""SOAR §2 (Ma, Faghri & Farahmand 2020): over-parameterized linear regression, measured exactly.

The setting (``robustjax.data.overparameterized_linear_regression``): ``f_w(x) = ⟨w, x⟩``, inputs
on the first coordinate only, ``w* = e₁``, squared loss ``ℓ = ½ r²`` with ``r = ⟨x, w − w*⟩``.
The adversary of §2 perturbs the unused coordinates ``j ≥ 2`` ("free") inside the ℓ∞ ball:
``Δx_i = ε·s_i·sign(w_free)`` with ``s_i = sign(r_i)`` (``+1`` at ``r_i = 0``), which maximizes
``ℓ`` over that ball: ``max ℓ(x + Δx) = ½(|r| + ε‖w_free‖₁)²``.

Because ``ℓ`` is quadratic in ``x``, its second-order Taylor expansion around ``x`` is exact:
``ℓ(x + Δ) = ℓ(x) + ⟨∇ₓℓ, Δ⟩ + ½ Δᵀ∇²ₓℓ Δ``. The first-order expansion drops
``½ Δᵀ∇²ℓΔ = ½ ε²‖w_free‖₁²``; at the gradient-descent solution ``w̄ = (1, w₂(0), …, w_d(0))`` the
residual is 0, so the first-order estimate of the adversarial loss (and a gradient-norm
regularizer ``ε‖∇ₓℓ‖₁``) is exactly 0 while the true adversarial loss is ``½ε²‖w̄_{2:d}‖₁²``,
``≈ ε²d²σ²/π`` in expectation over ``w(0) ~ N(0, σ²I)`` (§2).

Every function here is float64 (call inside ``jax.enable_x64(True)``); gradients and Hessian-vector
products in the input come from ``robustjax.core.hvp`` (autodiff), independently of the closed
forms they are compared with.

Note on eq. 2: expanding ``½|r + ε‖w_{2:d}‖₁|²`` gives ``L(w) + ½ε²‖w_{2:d}‖₁² + εE[r]‖w_{2:d}‖₁``;
the paper prints ``ε²`` without the ``½`` (measured: the ½ is right, :func:`eq2_terms`).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.core.hvp import input_grad, input_hvp

OBJECTIVES = ("erm", "gradient_norm", "first_order", "second_order", "adversarial")


def residual(w, x, y):
    """``r_i = ⟨x_i, w⟩ − y_i`` ``[n]``."""
    return x @ w - y


def squared_loss_fn(w, y) -> Callable:
    """``x[n, d] -> ½(⟨x_i, w⟩ − y_i)²`` per example: the pointwise loss of §2 as a function of
    the input (what ``core.hvp`` differentiates)."""
    return lambda x: 0.5 * jnp.square(x @ w - y)


def free_mask(d: int) -> jnp.ndarray:
    """1 on the unused coordinates ``j ≥ 2`` (index 1 … d−1) the adversary of §2 perturbs."""
    return jnp.zeros((d,)).at[1:].set(1.0)


def attack(w, x, y, *, eps: float) -> jnp.ndarray:
    """§2's FGSM-like perturbation ``Δx_i = ε s_i sign(w_j)`` on ``j ≥ 2`` (``s_i = sign(r_i)``,
    +1 at 0): the maximizer of ``ℓ`` over the ℓ∞ ball of radius ``ε`` on those coordinates."""
    s = jnp.where(residual(w, x, y) >= 0, 1.0, -1.0)
    return eps * s[:, None] * (jnp.sign(w) * free_mask(w.shape[0]))[None, :]


def worst_case_loss(w, x, y, *, eps: float) -> jnp.ndarray:
    """Closed form ``max_{‖Δ_free‖∞ ≤ ε} ℓ(x + Δ) = ½(|r| + ε‖w_free‖₁)²`` per example."""
    l1 = jnp.sum(jnp.abs(w) * free_mask(w.shape[0]))
    return 0.5 * jnp.square(jnp.abs(residual(w, x, y)) + eps * l1)


def taylor_estimates(w, x, y, delta) -> dict[str, jnp.ndarray]:
    """Per-example loss at ``x + Δ``: exact, first- and second-order Taylor (autodiff in ``x``)."""
    loss_fn = squared_loss_fn(w, y)
    g = input_grad(loss_fn, x)
    hd = input_hvp(loss_fn, x, delta)
    first = loss_fn(x) + jnp.sum(g * delta, axis=1)
    return {"exact": loss_fn(x + delta), "first_order": first,
            "second_order": first + 0.5 * jnp.sum(delta * hd, axis=1)}


def objective(name: str, *, eps: float) -> Callable:
    """Mean training objective ``w -> L`` of one method (§2), every one through autodiff:

    * ``erm``: ``½ r²``;
    * ``gradient_norm``: ``ℓ + ½ ε²d ‖∇ₓℓ‖₂²`` (the smooth first-order regularizer GN, with the
      ℓ2 radius ``ε√d`` of the ball enclosing the ℓ∞ one);
    * ``first_order``: ``ℓ(x) + ⟨∇ₓℓ, Δ⟩``, the maximum of the loss's linearization over the
      ball, ``ℓ + ε|r|‖w_free‖₁`` (non-smooth at ``r = 0``);
    * ``second_order``: that plus ``½ Δᵀ∇²ₓℓ Δ`` (the second-order term SOAR adds, exact here);
    * ``adversarial``: ``ℓ(x + Δ)`` at the attacked points (adversarial training).

    ``Δ`` is the attack at the current ``w``, a constant for the gradient (Danskin).
    """
    if name not in OBJECTIVES:
        raise ValueError(f"name must be one of {list(OBJECTIVES)}; got {name!r}")

    def value(w, x, y):
        delta = jax.lax.stop_gradient(attack(w, x, y, eps=eps))
        if name == "erm":
            return jnp.mean(squared_loss_fn(w, y)(x))
        if name == "gradient_norm":
            g = input_grad(squared_loss_fn(w, y), x)
            return jnp.mean(squared_loss_fn(w, y)(x) + 0.5 * eps**2 * w.shape[0] * jnp.sum(g * g, axis=1))
        if name == "adversarial":
            return jnp.mean(squared_loss_fn(w, y)(x + delta))
        est = taylor_estimates(w, x, y, delta)
        return jnp.mean(est[name])

    return value


def gradient_descent(fn: Callable, w0, x, y, *, steps: int, lr: float, record_every: int = 1):
    """Full-batch GD ``w ← w − lr ∇fn`` (§2 uses GD); returns the final ``w`` and the recorded
    iterates ``[T', d]`` (every ``record_every`` steps, first and last included)."""
    grad = jax.jit(jax.grad(fn))

    def body(w, _):
        w = w - lr * grad(w, x, y)
        return w, w

    _, ws = jax.lax.scan(body, w0, None, length=steps)
    ws = jnp.concatenate([w0[None], ws])
    keep = sorted(set(range(0, steps + 1, record_every)) | {steps})
    return ws[-1], ws[np.asarray(keep)], np.asarray(keep)


def expected_attack_loss(d: int, sigma: float, eps: float) -> float:
    """``E_{w(0)}[½ ε² ‖w_{2:d}(0)‖₁²] = ½ε²σ²[(d−1) + (d−1)(d−2)·2/π]`` (§2, with the sum over
    ``j ≥ 2``; the paper's ``≈ ε²d²σ²/π`` for ``d ≫ 1``)."""
    m = d - 1
    return 0.5 * eps**2 * sigma**2 * (m + m * (m - 1) * 2.0 / math.pi)


def eq2_terms(w, x, y, *, eps: float) -> dict[str, float]:
    """Eq. 2 with the paper's fixed direction ``Δx = ε sign(w_{2:d})`` (no ``s_i``): the measured
    mean loss at ``x + Δx`` and the expansion ``L + ½ε²‖w_{2:d}‖₁² + εE[r]‖w_{2:d}‖₁``."""
    delta = eps * (jnp.sign(w) * free_mask(w.shape[0]))[None, :]
    measured = jnp.mean(squared_loss_fn(w, y)(x + delta))
    l1 = jnp.sum(jnp.abs(w) * free_mask(w.shape[0]))
    r = residual(w, x, y)
    expansion = jnp.mean(0.5 * r**2) + 0.5 * eps**2 * l1**2 + eps * jnp.mean(r) * l1
    printed = jnp.mean(0.5 * r**2) + eps**2 * l1**2 + eps * jnp.mean(r) * l1
    return {"measured": float(measured), "expansion_with_half": float(expansion),
            "expansion_as_printed": float(printed)}
