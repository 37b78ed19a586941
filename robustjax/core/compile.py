"""XLA:CPU compiler options for training programs, and a ``jax.jit`` that applies them (issue 7).

jaxlib 0.10's XLA:CPU hands convolutions to YNNPACK. In a forward pass that is fast (the whole
network runs as one YNNPACK fusion), but the *kernel* gradient of a convolution, a convolution
with the batch as its contracted feature axis and the whole feature map as its window, is slow
in YNNPACK: on the SGR MNIST CNN (batch 128) one such convolution took 110 ms of a 285 ms ERM
step (profile: ``benchmarks/profile_gradient.py``). With YNNPACK's fusions off for the program,
XLA's Eigen convolutions run it instead and the ERM step takes 128 ms instead of 230 ms, the GN
step 202 ms instead of 389 ms (one interleaved run, README "Performance"). Input gradients are
already fast with YNNPACK thanks to ``robustjax.nn.Conv``, and forward passes are faster with
it, so robustjax applies the option per program, only to programs that differentiate with
respect to parameters: the training steps. Users' own training steps get the same speed-up
with :func:`jit` (or by passing :func:`cpu_compiler_options` to ``jax.jit``).

Set ``ROBUSTJAX_CPU_YNNPACK=1`` to keep XLA's default; an ``XLA_FLAGS`` that already sets
``--xla_cpu_experimental_ynn_fusion_type`` is left in charge. On GPU/TPU, and with a jaxlib that
does not know the option, nothing is changed.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp

__all__ = ["YNN_OPTION", "cpu_compiler_options", "jit"]

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


def cpu_compiler_options(*, platform: str | None = None, ynnpack: bool | None = None) -> dict[str, Any]:
    """``compiler_options`` for ``jax.jit`` of a training step on ``platform`` (default: JAX's
    default backend): ``{YNN_OPTION: ""}`` on CPU, ``{}`` elsewhere or when not applicable.

    ``ynnpack=True`` (or the environment variable ``ROBUSTJAX_CPU_YNNPACK=1``) keeps XLA's
    default and returns ``{}``; ``ynnpack=False`` asks for the option even if the environment
    variable is set. An ``XLA_FLAGS`` that sets the option itself always wins.
    """
    if ynnpack is not None and not isinstance(ynnpack, bool):
        raise ValueError(f"ynnpack must be None, True or False; got {ynnpack!r}")
    if ynnpack is None:
        env = os.environ.get(_ENV, "")
        if env not in ("", "0", "1"):
            raise ValueError(f"{_ENV} must be '0' or '1' when set; got {env!r}")
        ynnpack = env == "1"
    platform = jax.default_backend() if platform is None else platform
    if ynnpack or platform != "cpu" or _user_sets_flag() or not _option_supported():
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
    ``compiler_options`` (options passed explicitly win). Use it for steps that take gradients
    with respect to convolution kernels; on non-CPU platforms it is plain ``jax.jit``.
    """
    opts = cpu_compiler_options(platform=_mesh_platform(jit_kwargs), ynnpack=ynnpack)
    merged = {**opts, **(jit_kwargs.pop("compiler_options", None) or {})}
    return jax.jit(fun, compiler_options=merged or None, **jit_kwargs)
