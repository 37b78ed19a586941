"""Several JAX processes as one job: joining the distributed runtime, and a launcher for one machine.

A multi-process run is the single-process program started once per process, each process
calling :func:`initialize` before any JAX computation. From then on ``jax.devices()`` lists every
process's devices, the data mesh spans them all, and the fit loop and the evaluator run
unchanged (``robustjax.core.sharding`` says how batches enter and leave the mesh).

* On a cluster (Slurm, Open MPI, Cloud TPU, Kubernetes) run the same command on every host with
  ``--distributed``: JAX detects the coordinator, the process count and this process's id from
  the cluster's environment (``jax.distributed.initialize()`` without arguments).
* Anywhere else, set ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0),
  ``ROBUSTJAX_NUM_PROCESSES`` and ``ROBUSTJAX_PROCESS_ID`` in each process's environment.
* On one machine, :func:`launch_local` (``robustjax train ... --processes N``) starts N processes
  on 127.0.0.1 with XLA:CPU's gloo collectives, so the multi-process path runs without a cluster.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"  # read by jax.distributed.initialize itself
ENV_NUM_PROCESSES = "ROBUSTJAX_NUM_PROCESSES"
ENV_PROCESS_ID = "ROBUSTJAX_PROCESS_ID"
ENV_CPU_DEVICES = "JAX_NUM_CPU_DEVICES"  # jax's own option jax_num_cpu_devices


def _env_int(name: str) -> int | None:
    text = os.environ.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer; got {text!r}") from None


def initialize(
    *,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    cpu_devices: int | None = None,
    timeout: int = 300,
) -> None:
    """Join the JAX distributed runtime (call before any JAX computation).

    Args:
      coordinator_address: ``host:port`` of process 0's coordinator; default
        ``$JAX_COORDINATOR_ADDRESS``, else detected from the cluster.
      num_processes, process_id: default ``$ROBUSTJAX_NUM_PROCESSES`` / ``$ROBUSTJAX_PROCESS_ID``,
        else detected from the cluster (Slurm, Open MPI, Cloud TPU, ...).
      cpu_devices: host devices per process on CPU (``jax_num_cpu_devices``); ``None`` leaves
        JAX's default (one, or ``XLA_FLAGS=--xla_force_host_platform_device_count``).
      timeout: seconds to wait for every process to join.

    Cross-process collectives on CPU use gloo (``jax_cpu_collectives_implementation``); GPUs and
    TPUs use their own (NCCL, ICI) and ignore it.
    """
    import jax

    num_processes = _env_int(ENV_NUM_PROCESSES) if num_processes is None else num_processes
    process_id = _env_int(ENV_PROCESS_ID) if process_id is None else process_id
    if num_processes is not None and (isinstance(num_processes, bool) or num_processes < 1):
        raise ValueError(f"num_processes must be a positive integer; got {num_processes!r}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in [0, {num_processes}); got {process_id!r}")
    if cpu_devices is not None:
        if isinstance(cpu_devices, bool) or not isinstance(cpu_devices, int) or cpu_devices < 1:
            raise ValueError(f"cpu_devices must be a positive integer; got {cpu_devices!r}")
        jax.config.update("jax_num_cpu_devices", cpu_devices)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=int(timeout),
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _stop(procs: Sequence[subprocess.Popen], grace: float = 5.0) -> None:
    """SIGTERM every running process, then SIGKILL those still alive after ``grace`` seconds."""
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in alive:
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def launch_local(
    command: Sequence[str],
    *,
    processes: int,
    cpu_devices: int | None = None,
    timeout: float | None = None,
    env: dict | None = None,
) -> int:
    """Run ``command`` as ``processes`` cooperating JAX processes on this machine; return the
    job's exit code.

    Each process gets ``JAX_COORDINATOR_ADDRESS=127.0.0.1:<free port>``,
    ``ROBUSTJAX_NUM_PROCESSES``, ``ROBUSTJAX_PROCESS_ID`` and ``JAX_PLATFORMS=cpu`` (every process
    would otherwise claim every local accelerator), plus ``JAX_NUM_CPU_DEVICES`` when
    ``cpu_devices`` is given; ``command`` must call :func:`initialize` (``robustjax train
    --distributed`` does). Output goes to this process's stdout/stderr (only process 0 of the
    fit loop and the evaluator prints).

    The first process to fail (non-zero exit) takes the job down: the others are terminated
    (SIGTERM, then SIGKILL after 5 s) and its exit code is returned (128 + the signal's number
    if a signal killed it). So are all after
    ``timeout`` seconds (exit code 124) or on KeyboardInterrupt (re-raised).
    """
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes must be a positive integer; got {processes!r}")
    if cpu_devices is not None and (isinstance(cpu_devices, bool) or not isinstance(cpu_devices, int)
                                    or cpu_devices < 1):
        raise ValueError(f"cpu_devices must be a positive integer; got {cpu_devices!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds or None; got {timeout!r}")
    command = [str(c) for c in command]
    if not command:
        raise ValueError("command must be a non-empty argument list")
    base = dict(os.environ if env is None else env)
    base[ENV_COORDINATOR] = f"127.0.0.1:{free_port()}"
    base[ENV_NUM_PROCESSES] = str(processes)
    base["JAX_PLATFORMS"] = "cpu"
    if cpu_devices is not None:
        base[ENV_CPU_DEVICES] = str(cpu_devices)
    procs: list[subprocess.Popen] = []
    try:
        for i in range(processes):
            procs.append(subprocess.Popen(command, env={**base, ENV_PROCESS_ID: str(i)}))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            codes = [p.poll() for p in procs]
            failed = [c for c in codes if c not in (None, 0)]
            if failed:
                _stop(procs)
                return failed[0] if failed[0] > 0 else 128 - failed[0]  # killed by a signal
            if all(c == 0 for c in codes):
                return 0
            if deadline is not None and time.monotonic() > deadline:
                _stop(procs)
                return 124
            time.sleep(0.05)
    except BaseException:
        _stop(procs)
        raise
