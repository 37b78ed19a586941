"""Per-example losses on logits (every function returns shape ``[B]``).

* ``cross_entropy`` — softmax cross-entropy with inverse temperature β (Roth et al. 2019, eq. 21;
  β = 1 is eq. 18).
* ``margin`` — the margin operator ``M(s, y) = s_y − max_{i≠y} s_i`` (Wen et al., Def. 3).
* ``cw_margin_loss`` — Carlini–Wagner margin loss ``max(max_{i≠y} z_i − z_y, −κ)``.
* ``sum_of_squares`` — ``½‖t − z‖²`` on logits (Roth et al. 2019, eq. 17).
* ``ramp_loss`` / ``margin_ramp_loss`` — ramp loss l_γ (Wen et al., Def. 4) and its value at
  ``−M(f(x), y)``, whose mean is the ramp risk (Def. 5).
* ``adversarial_objective`` — the quantity an attack *maximizes* (untargeted: the loss of the
  true label; targeted: minus the loss of the target label).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

LOSSES = ("ce", "cw", "sos")


def cross_entropy(logits: jax.Array, y: jax.Array, *, beta: float = 1.0) -> jax.Array:
    """Softmax cross-entropy ``−β z_y + log Σ_k exp(β z_k)`` per example (Roth et al. 2019, eq. 21).

    ``beta`` is the inverse temperature ``1/T``; ``beta = 1`` is the usual loss (eq. 18).
    Computed with a stable log-sum-exp. ``logits[B, K]``, integer ``y[B]`` → ``[B]``.
    """
    z = beta * logits
    z_y = jnp.take_along_axis(z, y[:, None].astype(jnp.int32), axis=1)[:, 0]
    return jax.nn.logsumexp(z, axis=1) - z_y


def margin(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Margin operator ``M(z, y) = z_y − max_{i≠y} z_i`` per example (Wen et al., Def. 3).

    Positive iff the example is classified correctly (ties count as errors).
    """
    k = logits.shape[1]
    onehot = jax.nn.one_hot(y, k, dtype=bool)
    z_y = jnp.sum(jnp.where(onehot, logits, 0.0), axis=1)
    other = jnp.max(jnp.where(onehot, -jnp.inf, logits), axis=1)
    return z_y - other


def cw_margin_loss(logits: jax.Array, y: jax.Array, *, kappa: float = jnp.inf) -> jax.Array:
    """Carlini–Wagner margin loss ``max(max_{i≠y} z_i − z_y, −κ) = max(−M(z, y), −κ)`` per example.

    Larger means closer to (or past) misclassification; ``kappa`` (default ∞: no clamp) caps how
    confident a misclassification the loss rewards.
    """
    return jnp.maximum(-margin(logits, y), -kappa)


def sum_of_squares(logits: jax.Array, target_logits: jax.Array) -> jax.Array:
    """``½‖t − z‖₂²`` per example (Roth et al. 2019, eq. 17: the label-free loss on log-odds
    whose PGA recovers data-dependent spectral norm regularization, with ``t = f(x)``)."""
    d = logits - target_logits
    return 0.5 * jnp.sum(jnp.square(d), axis=tuple(range(1, d.ndim)))


def ramp_loss(r: jax.Array, *, gamma: float) -> jax.Array:
    """Ramp loss (Wen et al., Def. 4): 0 for ``r < −γ``, ``1 + r/γ`` on ``[−γ, 0]``, 1 for ``r > 0``."""
    return jnp.clip(1.0 + r / gamma, 0.0, 1.0)


def margin_ramp_loss(logits: jax.Array, y: jax.Array, *, gamma: float) -> jax.Array:
    """``l_γ(−M(f(x), y))`` per example; its mean over a sample is the ramp risk (Wen et al.,
    Def. 5). Equals 1 on misclassified examples and 0 on examples with margin ≥ γ."""
    return ramp_loss(-margin(logits, y), gamma=gamma)


def adversarial_objective(
    logits: jax.Array,
    y: jax.Array | None,
    *,
    loss: str = "ce",
    targeted: bool = False,
    beta: float = 1.0,
    target_logits: jax.Array | None = None,
) -> jax.Array:
    """Per-example objective an attack maximizes.

    ``loss="ce"``: untargeted ``CE_β(z, y)`` (its logit gradient is Roth et al.'s eq. 22 direction
    ``β(s^β − e_y)``), targeted ``−CE_β(z, y_target)`` (eq. 20/23). ``loss="cw"``: untargeted
    ``−M(z, y)``, targeted ``M(z, y_target)``. ``loss="sos"``: ``½‖f(x) − z‖²`` with
    ``target_logits = f(x)`` (eq. 17; label-free, ``y`` and ``targeted`` unused).
    """
    if loss == "ce":
        value = cross_entropy(logits, y, beta=beta)
        return -value if targeted else value
    if loss == "cw":
        m = margin(logits, y)
        return m if targeted else -m
    if loss == "sos":
        return sum_of_squares(logits, target_logits)
    raise ValueError(f"loss must be one of {list(LOSSES)}; got {loss!r}")


#: Reductions over the batch accepted by the regularizers' ``reduction`` argument.
REDUCTIONS = ("mean", "sum", "none")


def reduce_batch(per_example: jax.Array, reduction: str) -> jax.Array:
    """Reduce per-example values ``[B]`` by ``reduction``: ``mean``, ``sum`` or ``none`` (as is)."""
    if reduction == "mean":
        return jnp.mean(per_example)
    if reduction == "sum":
        return jnp.sum(per_example)
    return per_example
