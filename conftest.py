"""Settings of a test run, shared by every test and by the processes the tests start.

- The repository root is importable (``experiments``, ``benchmarks``): pytest puts the
  directory of this root ``conftest.py`` on ``sys.path``.
- **XLA:CPU compiles with LLVM's optimization level 0.** Most of the suite's time is XLA
  compilation (measured with ``jax.monitoring``: the backend compile took 87% of the time of the
  three slowest test files), and most of that is LLVM optimizing code that a test then runs once
  on a handful of examples. ``--xla_backend_optimization_level=0`` keeps every HLO pass (the
  programs compute the same values; tests that read the optimized HLO see the same ops) and
  skips LLVM's expensive passes, which cut the CPU time of ``tests/test_training_objectives.py``
  from 117 s to 67 s. Set ``ROBUSTJAX_TEST_XLA_OPT=1`` to test with XLA's default optimization
  instead (an ``XLA_FLAGS`` that sets the level itself is also left alone).
- **One JAX persistent compilation cache per run** (a fresh temporary directory, removed at the
  end; never in the repository): the pytest-xdist workers and the CLI/training processes that
  tests start share it through ``JAX_COMPILATION_CACHE_DIR``, so a program that two of them build
  (a model's initializer, the same train step in a killed and a resumed run) compiles once.
  ``ROBUSTJAX_TEST_JAX_CACHE=<dir>`` uses (and keeps) that directory instead, e.g. to reuse
  compiled programs between local runs; ``ROBUSTJAX_TEST_JAX_CACHE=off`` disables the cache.

Everything is set through environment variables before JAX is imported, so the subprocesses
inherit it. Tests that replace ``XLA_FLAGS`` for a subprocess extend it with
``tests/support.py``'s ``subprocess_env`` instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_OPT_FLAG = "--xla_backend_optimization_level=0"
_OWNER_ENV = "ROBUSTJAX_TEST_JAX_CACHE_OWNER"


def _configure_xla_flags() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get("ROBUSTJAX_TEST_XLA_OPT", "") == "1" or "xla_backend_optimization_level" in flags:
        return
    os.environ["XLA_FLAGS"] = f"{flags} {_OPT_FLAG}".strip()


def _configure_compilation_cache() -> None:
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:  # set by the user or by this run's controller
        return
    requested = os.environ.get("ROBUSTJAX_TEST_JAX_CACHE", "")
    if requested == "off":
        return
    if requested:
        os.makedirs(requested, exist_ok=True)
        cache_dir = requested
    else:
        cache_dir = tempfile.mkdtemp(prefix="robustjax-test-jax-cache-")
        os.environ[_OWNER_ENV] = str(os.getpid())  # this process removes it at the end
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache_dir
    # Cache every program that takes noticeable time to compile, not only those over 1 s.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")


_configure_xla_flags()
_configure_compilation_cache()


def pytest_unconfigure(config):
    if os.environ.get(_OWNER_ENV) == str(os.getpid()):
        shutil.rmtree(os.environ.get("JAX_COMPILATION_CACHE_DIR", ""), ignore_errors=True)
