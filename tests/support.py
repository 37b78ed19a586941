"""Helpers shared by test modules (not a test module itself)."""

from __future__ import annotations

import os


def subprocess_env(*, devices: int | None = None, **overrides: str) -> dict[str, str]:
    """The environment for a Python subprocess started by a test: this run's environment (its
    ``XLA_FLAGS`` and JAX compilation cache, see the root ``conftest.py``) on the CPU, with
    ``devices`` forced host devices in ``XLA_FLAGS`` (none forced when ``devices`` is None, so
    ``JAX_NUM_CPU_DEVICES`` in ``overrides`` can set the count) and ``overrides`` applied."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    if devices is not None:
        flags.append(f"--xla_force_host_platform_device_count={int(devices)}")
    env["XLA_FLAGS"] = " ".join(flags)
    env.update(overrides)
    return env
