"""XLA:CPU compiler options for training programs, and a ``jax.jit`` that applies them (issues 7, 18).

jaxlib 0.10's XLA:CPU hands convolutions to YNNPACK. In a forward pass that is fast (the whole
network runs as one YNNPACK fusion), but YNNPACK runs some convolutions of a gradient slowly,
above all the *kernel* gradient (a convolution with the batch as its contracted feature axis
and the whole feature map as its window): on the SGR MNIST CNN (batch 128) one such
convolution took 110 ms of a 285 ms ERM step (profile: ``benchmarks/profile_gradient.py``).

Since issue 18 the zoo's convolution (``robustjax.nn.Conv``) emits those convolutions, on CPU,
in a form XLA keeps away from YNNPACK (``robustjax.nn.conv_forms``), so a plain ``jax.jit``
training step on a zoo model is fast with XLA's default options, and the library's own steps
(``robustjax.training.step.jit_train_step``, the fit loop) keep them: with the layer's forms,
YNNPACK on takes 4–10% less CPU time per train step than off (every method of
``benchmarks/train_step.py``, one interleaved run: ERM 1.04×, SOAR 1.10×). Models built on plain ``flax.linen.Conv``,
``flax.nnx.Conv`` or ``lax.conv_general_dilated`` still give their kernel gradients to YNNPACK,
which runs them slowly (ERM step 230 -> 128 ms with YNNPACK off, issue 7), so :func:`jit`, the
``jax.jit`` for a user's own steps, turns YNNPACK off by default (the safe choice for any model).

``ynnpack=True``/``False`` or ``ROBUSTJAX_CPU_YNNPACK=1``/``0`` override both defaults; an
``XLA_FLAGS`` that already sets ``--xla_cpu_experimental_ynn_fusion_type`` is left in charge.
On GPU/TPU, and with a jaxlib that does not know the option, nothing is changed.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp

__all__ = ["YNN_OPTION", "cpu_compiler_options", "jit", "ynnpack_setting"]

#: The XLA:CPU option naming the op kinds XLA may fuse into YNNPACK calls ("" = none).
YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"

_ENV = "ROBUSTJAX_CPU_YNNPACK"


@functools.lru_cache(maxsize=None)
def _option_supported() -> bool:
    """Whether this jaxlib's XLA:CPU accepts ``YNN_OPTION`` (probed once on a tiny program)."""
    try:
        fn = jax.jit(lambda v: v + 1, compiler_options={YNN_OPTION: ""}, backend="cpu")
        jax.block_until_ready(fn(jnp.zeros((), jnp.float32)))
        return True
    except Exception:  # an unknown option fails at compile time with a runtime error
        return False


def _user_sets_flag() -> bool:
    return any(f.startswith("--" + YNN_OPTION) for f in os.environ.get("XLA_FLAGS", "").split())


def ynnpack_setting(ynnpack: bool | None = None, *, default: bool) -> bool:
    """Whether a program keeps XLA:CPU's YNNPACK fusions: ``ynnpack`` when given, else the
    environment variable ``ROBUSTJAX_CPU_YNNPACK`` (``1``: keep, ``0``: off) when set, else
    ``default``."""
    if ynnpack is not None and not isinstance(ynnpack, bool):
        raise ValueError(f"ynnpack must be None, True or False; got {ynnpack!r}")
    if ynnpack is not None:
        return ynnpack
    env = os.environ.get(_ENV, "")
    if env not in ("", "0", "1"):
        raise ValueError(f"{_ENV} must be '0' or '1' when set; got {env!r}")
    return default if env == "" else env == "1"


def cpu_compiler_options(*, platform: str | None = None, ynnpack: bool | None = None) -> dict[str, Any]:
    """``compiler_options`` for ``jax.jit`` of a training step on ``platform`` (default: JAX's
    default backend): ``{YNN_OPTION: ""}`` (YNNPACK fusions off) on CPU, ``{}`` (XLA's default)
    elsewhere, when ``ynnpack=True``, or with ``ROBUSTJAX_CPU_YNNPACK=1``
    (:func:`ynnpack_setting` with ``default=False``: off is the safe default for a step on any
    model, e.g. one built on ``flax.linen.Conv``). An ``XLA_FLAGS`` that sets the option itself
    always wins.
    """
    keep = ynnpack_setting(ynnpack, default=False)
    platform = jax.default_backend() if platform is None else platform
    if keep or platform != "cpu" or _user_sets_flag() or not _option_supported():
        return {}
    return {YNN_OPTION: ""}


def _mesh_platform(kwargs: dict) -> str | None:
    """The platform of the devices a sharded jit targets, if its shardings name them."""
    for key in ("in_shardings", "out_shardings"):
        for s in jax.tree.leaves(kwargs.get(key)):
            devices = getattr(s, "device_set", None)
            if devices:
                return next(iter(devices)).platform
    return None


def jit(fun: Callable, *, ynnpack: bool | None = None, **jit_kwargs) -> Callable:
    """``jax.jit(fun, **jit_kwargs)`` with :func:`cpu_compiler_options` merged into its
    ``compiler_options`` (options passed explicitly win): on CPU, YNNPACK's fusions off for this
    program unless ``ynnpack=True`` (or ``ROBUSTJAX_CPU_YNNPACK=1``). Use it for your own
    training steps; on GPU/TPU it is plain ``jax.jit``.
    """
    opts = cpu_compiler_options(platform=_mesh_platform(jit_kwargs), ynnpack=ynnpack)
    merged = {**opts, **(jit_kwargs.pop("compiler_options", None) or {})}
    return jax.jit(fun, compiler_options=merged or None, **jit_kwargs)
