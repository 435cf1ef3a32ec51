"""Freed memory kept for reuse in the local Dask workers (glibc's ``mallopt``).

A Dask worker runs its tasks in a thread of its own, and glibc gives that thread its own
malloc arena: heaps of up to 64 MiB, a new one mapped when an allocation does not fit in
the last and unmapped as soon as it is empty again. A tomography task frees and
allocates 8 MiB arrays (a 32-row block of 256² slices) once per chunk of frames; when the
arena's last heap is full enough that such an array starts a new heap, every chunk maps
a heap, faults its pages in (about 2 600 page faults per task) and unmaps it again. Which
workers fall into that depends on their heap's history (one of a cluster's workers, all,
or none, changing from run to run), so it also moved ``benchmarks/scale.py``'s ratio of
1 to 2 workers either way. Its run, 10 reductions each, 1- and 2-worker clusters with and
without this setting interleaved (load 7-9): page faults per reduction 18 600 and 6 700
→ 30 and 34 (medians), the workers' CPU per reduction 2.26 and 2.27 → 2.08 and 2.11 s,
per task 0.286 and 0.284 → 0.251 and 0.252 s.

:func:`keep_freed_memory` sets what glibc's adaptive thresholds reach at most on 64-bit
Linux, fixed from the start: arrays up to 32 MiB come from the arenas
(``M_MMAP_THRESHOLD``), and each arena keeps up to 64 MiB of freed memory at its top
(``M_TOP_PAD``), so an emptied heap is kept, not unmapped, and reused by the next chunk.
The cost is that freed memory: a worker of the benchmark's run rests at about 250 MB
instead of 225-240 MB. :class:`KeepFreedMemory` runs it in every worker of the local
cluster (:func:`analysis.dask_session.connect`), also in a worker its nanny restarts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["ALLOCATOR_VARIABLES", "MMAP_THRESHOLD", "TOP_PAD", "KeepFreedMemory",
           "keep_freed_memory"]

MMAP_THRESHOLD = 32 << 20
"""Allocations above this get their own mapping (glibc's adaptive maximum on 64-bit)."""
TOP_PAD = 64 << 20
"""Freed memory each arena keeps at its top (an empty heap of up to 64 MiB is kept)."""
_M_TOP_PAD, _M_MMAP_THRESHOLD = -2, -3  # (glibc's malloc.h)
ALLOCATOR_VARIABLES = ("MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                       "MALLOC_MMAP_MAX_")
"""glibc's environment settings of the allocator: one the user set is left to rule."""


def keep_freed_memory() -> bool:
    """Fix this process's malloc thresholds at :data:`MMAP_THRESHOLD` and
    :data:`TOP_PAD` (module docstring); True when set. Nothing is changed (False) off
    glibc, or when the environment already tunes the allocator (one of
    :data:`ALLOCATOR_VARIABLES`, or ``glibc.malloc`` in ``GLIBC_TUNABLES``): the user's
    choice stands."""
    if platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in ALLOCATOR_VARIABLES) or \
            "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(libc.mallopt(_M_TOP_PAD, TOP_PAD))


class KeepFreedMemory(WorkerPlugin):
    """Worker plugin: :func:`keep_freed_memory` in each worker as it starts."""

    name = "smeflow-keep-freed-memory"

    def setup(self, worker: Any) -> None:
        """Run in the worker process when it registers (or now, if it already has)."""
        keep_freed_memory()
