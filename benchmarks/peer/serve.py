"""The command loop of a persistent benchmark worker (imports neither jax nor torch).

The interleaved two-process comparison (``benchmarks/race.py``) keeps one JAX worker and one
PyTorch worker alive for the whole measurement and asks them, turn by turn, to run a few
steps. A worker builds its step functions, warms them up, then calls :func:`serve`, which

* prints one JSON line ``{"ready": [names...], "info": {...}}`` on the protocol stream;
* reads JSON commands from stdin, one per line:

  - ``{"cmd": "run", "name": NAME, "steps": K}``: runs ``steps[NAME]()`` K times and answers
    ``{"name": NAME, "wall": [seconds...], "cpu": [seconds...]}`` — the wall time
    (``time.perf_counter``) and the CPU time of the whole process, all threads, user +
    system (``time.process_time``) of each call;
  - ``{"cmd": "quit"}``: answers ``{"bye": true}`` and returns.

Each step callable must return only when its work is done (JAX: ``block_until_ready``;
PyTorch on the CPU is synchronous). While one worker runs, the other waits on its stdin, so
the two never compete for the cores.

:func:`protocol_stream` keeps the protocol clean of stray prints: it duplicates stdout for the
protocol and points file descriptor 1 at stderr, so anything a library prints lands in stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable, TextIO


def protocol_stream() -> TextIO:
    """A private copy of stdout for the protocol; fd 1 (``print``, C libraries) goes to stderr."""
    sys.stdout.flush()
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def _send(proto: TextIO, obj: dict) -> None:
    proto.write(json.dumps(obj) + "\n")
    proto.flush()


def time_calls(fn: Callable[[], object], count: int) -> dict[str, list[float]]:
    """Wall and process CPU seconds of ``count`` consecutive calls of ``fn``."""
    wall, cpu = [], []
    for _ in range(count):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"wall": wall, "cpu": cpu}


def serve(steps: dict[str, Callable[[], object]], info: dict, *, proto: TextIO,
          commands: TextIO | None = None) -> None:
    """Announce ``steps`` and ``info``, then answer commands until ``quit`` or end of input."""
    commands = commands if commands is not None else sys.stdin
    _send(proto, {"ready": list(steps), "info": info})
    for line in commands:
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
            if cmd.get("cmd") == "quit":
                _send(proto, {"bye": True})
                return
            if cmd.get("cmd") != "run" or cmd.get("name") not in steps:
                raise ValueError(f"unknown command {cmd!r}; steps are {list(steps)}")
            count = int(cmd.get("steps", 1))
            if count < 1:
                raise ValueError(f"steps must be >= 1; got {count}")
            _send(proto, {"name": cmd["name"], **time_calls(steps[cmd["name"]], count)})
        except Exception as exc:  # noqa: BLE001 — report to the coordinator, keep serving
            _send(proto, {"error": f"{type(exc).__name__}: {exc}"})
