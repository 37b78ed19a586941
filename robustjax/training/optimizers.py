"""Optimizers and learning-rate schedules from a config (optax)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import optax

from robustjax.core.validation import check_choice

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")


def learning_rate_schedule(
    *,
    learning_rate: float,
    schedule: str = "constant",
    steps_per_epoch: int = 1,
    epochs: int = 1,
    decay_epochs: Sequence[int] = (),
    decay_factor: float = 0.1,
) -> optax.Schedule:
    """A learning-rate schedule: constant, step decay at ``decay_epochs``, or cosine to zero."""
    if not learning_rate > 0:
        raise ValueError(f"optimizer.learning_rate must be > 0; got {learning_rate!r}")
    check_choice(schedule, name="optimizer.schedule", allowed=SCHEDULES)
    if schedule == "constant":
        return optax.constant_schedule(learning_rate)
    if schedule == "step":
        if not 0 < decay_factor <= 1:
            raise ValueError(f"optimizer.decay_factor must be in (0, 1]; got {decay_factor!r}")
        boundaries = {int(e) * steps_per_epoch: decay_factor for e in decay_epochs}
        return optax.piecewise_constant_schedule(learning_rate, boundaries)
    return optax.cosine_decay_schedule(learning_rate, max(1, epochs * steps_per_epoch))


def make_optimizer(
    config: Mapping, *, steps_per_epoch: int, epochs: int
) -> optax.GradientTransformation:
    """Build the optax optimizer described by ``config`` (the ``optimizer`` block of a run config).

    Keys: ``name`` (sgd | adam | adamw), ``learning_rate``, ``momentum`` (sgd), ``nesterov``
    (sgd), ``weight_decay`` (added to the gradient for sgd/adam — coupled L2 as in the papers'
    Caffe/TF code; decoupled for adamw), ``schedule`` (constant | step | cosine),
    ``decay_epochs``, ``decay_factor``, ``grad_clip_norm`` (global norm clipping, 0 = off).
    """
    name = check_choice(config["name"], name="optimizer.name", allowed=OPTIMIZERS)
    lr = learning_rate_schedule(
        learning_rate=float(config["learning_rate"]),
        schedule=config.get("schedule", "constant"),
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        decay_epochs=tuple(config.get("decay_epochs", ())),
        decay_factor=float(config.get("decay_factor", 0.1)),
    )
    weight_decay = float(config.get("weight_decay", 0.0))
    if weight_decay < 0:
        raise ValueError(f"optimizer.weight_decay must be >= 0; got {weight_decay!r}")
    parts = []
    clip = float(config.get("grad_clip_norm", 0.0) or 0.0)
    if clip < 0:
        raise ValueError(f"optimizer.grad_clip_norm must be >= 0; got {clip!r}")
    if clip > 0:
        parts.append(optax.clip_by_global_norm(clip))
    if name == "adamw":
        parts.append(optax.adamw(lr, weight_decay=weight_decay))
        return optax.chain(*parts)
    if weight_decay > 0:
        parts.append(optax.add_decayed_weights(weight_decay))
    if name == "sgd":
        momentum = float(config.get("momentum", 0.0))
        if not 0 <= momentum < 1:
            raise ValueError(f"optimizer.momentum must be in [0, 1); got {momentum!r}")
        parts.append(
            optax.sgd(lr, momentum=momentum or None, nesterov=bool(config.get("nesterov", False)))
        )
    else:
        parts.append(optax.adam(lr))
    return optax.chain(*parts)
