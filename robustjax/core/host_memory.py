"""Host memory reuse across program runs: glibc's ``malloc`` keeps freed memory (issue 18).

Why. XLA:CPU's Eigen convolution packs its operands into a scratch buffer that it allocates
and frees on every call: for the SGR MNIST CNN at batch 128 the 26x26x32 layer's forward and
input-gradient convolutions ask for 85 and 100 MB (``strace -k``: ``malloc`` in Eigen's
``TensorContractionBlockMemAllocator``). Above 32 MiB, the most glibc's *dynamic* mmap
threshold ever rises to, such a block gets a fresh ``mmap`` and is unmapped on ``free``; the
next step touches every page anew and the kernel zero-fills and maps each 4 KiB page again:
15,045 minor page faults (59 MB) per ERM step, counted with ``getrusage``.

What it does, process-wide (:func:`keep_freed_memory`): ``mallopt(M_MMAP_THRESHOLD, 1 GiB)``
(blocks below 1 GiB come from a heap, not from their own mapping) and ``mallopt(
M_TRIM_THRESHOLD, 1 GiB)`` (up to 1 GiB of free memory at a heap's top stays mapped for the
next request); either alone gave no gain. Measured on this project's 2-core machine (jaxlib
0.10.2, plain ``jax.jit`` ERM step with Adam, SGR MNIST CNN, batch 128): 84-102 ms and 15,047
faults per step with glibc's defaults (5 processes), 64-66 ms with these settings, most steps
with 0-200 faults. Not all: a block allocated by one of XLA's worker threads comes from that
thread's own arena, whose heaps hold at most 64 MiB each; a block that does not fit in the
arena's first heap gets a heap of its own, and glibc unmaps a heap other than the first as soon
as it is entirely free, whatever the trim threshold, unless ``M_TOP_PAD`` covers a whole heap.
XLA's per-run temporary buffer (57 MiB for the ERM step with batch slices) landed there in 4 of
6 processes, which then paid 14,535 faults (80 ms against 60-68 ms) in *every* step. So
``mallopt(M_TOP_PAD, 64 MiB)`` too (``TOP_PAD``; the heap is reserved anyway, and only touched
pages are resident): in 6 processes at most one step
of 15 faulted, medians 59.6-68.7 ms.
A block above 64 MiB allocated by a worker thread is still mapped afresh each time: at batch
256 the same step's temporary buffer (~113 MB) faulted 28,900 pages in every step (167-178 ms
in 3 processes, against 134-155 ms with ``arena_max=1``, below).

``arena_max=1`` (``M_ARENA_MAX``; not the default) makes every thread that has not allocated
yet share the main arena, whose heap has no such limit, so blocks above 64 MiB are reused too:
no faulting step in any process, but 68-74 ms per step in the race, and in 6 processes each
(15 steps after warm-up) medians of 69-78 ms (mean 72.9) against 67-93 ms (mean 76.1, 17 of 90
steps faulting) without it, before the top pad. With the top pad, at batch 128 (5 processes
each, alternating): 64.0-64.9 ms with one arena against 60.3-62.6 ms with glibc's per-thread
arenas (the threads then contend for one arena's lock), so it is left off; at batch 256 it wins
(above). Call ``keep_freed_memory(arena_max=1)`` right after ``import robustjax``, before the
first JAX computation starts XLA's threads, or set ``MALLOC_ARENA_MAX=1``, when a training
step's XLA temporary buffer exceeds 64 MiB (``jax.jit(step).lower(...).compile()
.memory_analysis().temp_size_in_bytes``; e.g. the SGR CNN at batch >= 256). PyTorch gains from the
same settings too (78 -> 66 ms in a bare script, given as environment variables);
``python -m benchmarks.race --torch-malloc tuned`` gives its PyTorch worker them for a
stricter comparison.

Cost: freed memory up to the process's peak stays resident (as with the caching allocators of
PyTorch, or of JAX on GPU).

When: ``import robustjax`` calls :func:`configure_from_env` once, so the settings also speed up
a user's own ``jax.jit`` steps. The same as environment variables, read by glibc when the
process starts: ``MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824
MALLOC_TOP_PAD_=67108864``. Opt
out with ``ROBUSTJAX_HOST_MALLOC=0`` before the import. Only glibc (Linux) has ``mallopt``;
elsewhere nothing changes and :func:`keep_freed_memory` returns ``False``.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform

__all__ = ["ENV", "ARENA_MAX", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "TOP_PAD", "FAULT_HINT_BYTES",
           "configure_from_env", "keep_freed_memory", "is_tuned", "minor_page_faults", "fault_hint"]

#: environment variable: ``0`` leaves glibc's defaults alone, ``1`` or unset applies the tuning
ENV = "ROBUSTJAX_HOST_MALLOC"
#: default ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` in bytes (1 GiB)
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = 1 << 30
#: default ``M_TOP_PAD`` in bytes (64 MiB, the most a thread arena's heap holds on 64-bit
#: glibc): a thread arena's extra heap that becomes entirely free stays mapped (module docstring)
TOP_PAD = 64 << 20
#: default ``M_ARENA_MAX``: ``None`` leaves glibc's per-thread arenas alone (module docstring)
ARENA_MAX = None

_M_TRIM_THRESHOLD = -1  # glibc's <malloc.h> parameter numbers
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: :func:`fault_hint` reports steps that each faulted in at least this much fresh memory
FAULT_HINT_BYTES = 32 << 20
_state = {"tuned": False, "arena_max": None}


def _glibc():
    """The process's glibc as a ``ctypes`` library, or ``None`` (not Linux/glibc)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        lib = ctypes.CDLL(None)
        lib.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        lib.mallopt.restype = ctypes.c_int
        return lib
    except (OSError, AttributeError):
        return None


def _check_threshold(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2 ** 31:
        raise ValueError(f"{name} must be an int with 0 < {name} < 2**31 "
                         f"(mallopt takes a C int); got {value!r}")
    return value


def keep_freed_memory(*, mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD,
                      top_pad: int | None = TOP_PAD, arena_max: int | None = ARENA_MAX) -> bool:
    """Let glibc's ``malloc`` serve blocks below ``mmap_threshold`` bytes from its heap, keep up
    to ``trim_threshold`` free bytes mapped, keep a thread arena's extra heaps mapped when they
    become free (``top_pad`` >= 64 MiB; ``None`` = leave alone) and (``arena_max``, ``None`` =
    leave alone) give threads that have not yet allocated at most that many arenas, so
    XLA:CPU's per-run buffers are reused without page faults (see the module docstring).
    Process-wide; returns whether every setting was accepted (``False`` off glibc)."""
    mmap_threshold = _check_threshold(mmap_threshold, "mmap_threshold")
    trim_threshold = _check_threshold(trim_threshold, "trim_threshold")
    if top_pad is not None:
        top_pad = _check_threshold(top_pad, "top_pad")
    if arena_max is not None:
        arena_max = _check_threshold(arena_max, "arena_max")
    lib = _glibc()
    if lib is None:
        return False
    ok = bool(lib.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        lib.mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    if top_pad is not None:
        ok = ok and bool(lib.mallopt(_M_TOP_PAD, top_pad))
    if arena_max is not None:
        ok = ok and bool(lib.mallopt(_M_ARENA_MAX, arena_max))
        if ok:
            _state["arena_max"] = arena_max
    _state["tuned"] = _state["tuned"] or ok
    return ok


def is_tuned() -> bool:
    """Whether :func:`keep_freed_memory` has been applied in this process."""
    return _state["tuned"]


def configure_from_env() -> bool:
    """Apply :func:`keep_freed_memory` unless ``ROBUSTJAX_HOST_MALLOC=0``; returns whether the
    process is tuned afterwards. Called by ``import robustjax``."""
    value = os.environ.get(ENV, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(f"{ENV} must be '0' (keep glibc's malloc defaults) or '1' (tune; the "
                         f"default when unset); got {value!r}")
    if value == "0":
        return is_tuned()
    return keep_freed_memory()


def minor_page_faults() -> int | None:
    """Minor page faults of this process so far, all threads (``getrusage``); ``None`` where
    Python has no ``resource`` module (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


def fault_hint(faults_per_step, *, threshold_bytes: int = FAULT_HINT_BYTES) -> str | None:
    """Advice for a training loop whose every step maps fresh memory, else ``None``.

    ``faults_per_step``: the minor page faults (:func:`minor_page_faults` differences) of two or
    more consecutive steps after the compiling one. When each is at least ``threshold_bytes``
    of pages, the process most likely maps and unmaps a block above the 64 MiB a glibc thread
    heap holds in every step: XLA:CPU's temporary buffer of a program that needs more (the SGR
    CNN's ERM step at batch >= 256, SOAR with one or two microbatches; see the module
    docstring). One arena for all threads keeps it. ``None`` with fewer than two counts, any
    count below the threshold, off glibc or without this module's settings (opted out with
    ``ROBUSTJAX_HOST_MALLOC=0``: then every large block faults, and one arena alone does not
    help), or when the process already runs with one arena (``MALLOC_ARENA_MAX=1`` or
    ``keep_freed_memory(arena_max=1)``).
    """
    counts = [int(c) for c in faults_per_step]
    pages = max(1, threshold_bytes // mmap.PAGESIZE)
    if len(counts) < 2 or min(counts) < pages or _glibc() is None or not is_tuned():
        return None
    if _state["arena_max"] == 1 or os.environ.get("MALLOC_ARENA_MAX", "").strip() == "1":
        return None
    mb = sorted(counts)[len(counts) // 2] * mmap.PAGESIZE / 1e6
    return (f"each of {len(counts)} training steps mapped about {mb:.0f} MB of fresh memory "
            f"(minor page faults per step: {', '.join(map(str, counts))}). The likely cause is an "
            "XLA temporary buffer larger than the 64 MiB a glibc thread heap holds, mapped and "
            "unmapped again in every step. Start the process with MALLOC_ARENA_MAX=1, or call "
            "robustjax.core.host_memory.keep_freed_memory(arena_max=1) right after `import "
            "robustjax`, to keep it (see robustjax.core.host_memory; README, Performance).")
