"""The demo's peak memory: this process and every process it starts.

``smeflow demo`` prints ``demo.peak_rss_mb``, the memory of the whole demo. Its own
process's peak is exact (Linux's ``VmHWM``). A process it starts — a GHDL simulation
with ``--backend ghdl``, a compiler or linker an OpenCL driver runs for a kernel not in
its cache — is counted too: :class:`PeakMemory` samples the memory of this process plus
all its descendants every ``interval`` seconds (``/proc``), and the figure is the larger
of that sum and this process's own peak. While there are descendants the sum is of their
proportional set sizes (PSS: a page that several processes share counts once, split
among them — a forked child's copy-on-write pages are the parent's memory, not more of
it); a child that lives shorter than one interval can be missed. Not
``getrusage(RUSAGE_CHILDREN)``: a child's ``ru_maxrss`` starts from the peak of the
process it was forked from, so every program this demo starts would report the demo's
own peak again.
"""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Collection
from typing import NamedTuple

__all__ = ["PeakMemory", "PhaseMemory", "cap_malloc_arenas", "page_out_libraries",
           "peak_rss_mb", "return_freed_buffers"]

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MB: Linux's ``VmHWM`` (the peak of this
    program: ``getrusage``'s ``ru_maxrss`` survives ``exec`` and would report the peak of
    the process that started it when that was larger), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def return_freed_buffers() -> bool:
    """Have glibc give every buffer of 128 KiB or more its own mapping, returned to the
    system when it is freed (``mallopt(M_MMAP_THRESHOLD, 128 KiB)``). By default glibc
    raises that threshold to the size of the largest such buffer freed so far (up to
    32 MiB) and serves smaller ones from its per-thread arenas, which keep them resident
    once freed: the demo's threads (detector, live reducer, RunEngine) left 30–50 MB
    free in the arenas by the end of the tomography run, 20 MB of its peak. Returns
    whether the C library took the setting (False where it is not glibc)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_mmap_threshold = -3  # glibc's malloc.h
    return bool(mallopt(ctypes.c_int(m_mmap_threshold), ctypes.c_int(128 * 1024)))


def cap_malloc_arenas(arenas: int = 2) -> bool:
    """Have glibc serve every thread started from now on from at most ``arenas`` malloc
    arenas (``mallopt(M_ARENA_MAX)``; by default up to 8 per core). Each arena keeps its
    own free memory: the demo's threads — RunEngine, live reducer, detector workers, and
    the ten or so that the catalog's writer starts at a run's stop (zarr's and Tiled's
    event loops and executors) — held ≈ 4 MB more, in its peak, with an arena each. On
    two cores two arenas are as many as can be busy at once. Returns whether the C
    library took the setting (False where it is not glibc)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_arena_max = -8  # glibc's malloc.h
    return bool(mallopt(ctypes.c_int(m_arena_max), ctypes.c_int(arenas)))


def _is_library(path: str, names: Collection[str] | None) -> bool:
    name = path.rpartition("/")[2]
    if names is not None:
        return name in names
    return path.startswith("/") and (name.endswith(".so") or ".so." in name)


def page_out_libraries(names: Collection[str] | None = None) -> int:
    """Ask Linux to reclaim the resident pages of this process's mappings of shared
    libraries (``madvise(MADV_PAGEOUT)``, Linux 5.4+): those whose file names are in
    ``names``, or every one (``*.so``, ``*.so.*``) when None. Returns how many bytes of
    mappings were advised (0 where none is mapped, or where the kernel or the C library
    does not take the advice).

    Why: loading a library faults in far more of it than the program then runs —
    relocations, static constructors, and, for a file whose pages are in the page cache
    in large folios (one just written, as by ``pip install``), a whole folio for each
    fault. ``smeflow demo`` in a freshly installed venv had 246 MB of shared libraries
    resident after its imports (llvmlite's LLVM 99 MB, which numba's import loads and
    the demo does not run; Arrow 30 MB), and 38 MB again at the end of the next phase
    after they were given back. Nothing is lost: the pages are clean file pages, read
    back from the file when run again; a page another process maps too is left alone."""
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            spans = [fields[0] for fields in map(str.split, f)
                     if len(fields) > 5 and _is_library(fields[5], names)]
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madv_pageout = 21  # Linux's mman-common.h
    advised = 0
    for span in spans:
        start, end = (int(x, 16) for x in span.split("-"))
        if madvise(start, end - start, madv_pageout) == 0:
            advised += end - start
    return advised


def _rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` now, MB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE_MB
    except (OSError, IndexError, ValueError):
        return 0.0


def _pss_mb(pid: int) -> float:
    """Proportional set size of process ``pid`` now, MB (``/proc/<pid>/smaps_rollup``;
    its resident memory where that cannot be read, 0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    return _rss_mb(pid)


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (every thread's), from ``/proc``."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process started by ``pid``, by its children or theirs (alive now)."""
    out: list[int] = []
    todo = _children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo += _children(child)
    return out


class PhaseMemory(NamedTuple):
    """The memory of a program at the end of one of its phases (:meth:`PeakMemory.mark`)."""

    phase: str
    """The phase's name."""
    rss_mb: float
    """This process's resident memory when the phase ended, MB."""
    peak_mb: float
    """The peak so far (this process's, or the sampled tree's when larger), MB."""


class PeakMemory:
    """Peak resident memory of this process and its descendants, sampled from ``start``
    (construction) to :meth:`stop`; see the module docstring.

    Parameters
    ----------
    interval
        Seconds between samples of the process tree.
    """

    def __init__(self, interval: float = 0.05) -> None:
        if not interval > 0:
            raise ValueError(f"interval {interval}: must be > 0 seconds")
        self.interval = float(interval)
        self.tree_peak_mb = 0.0
        """Largest sampled sum of this process's and its descendants' memory, MB."""
        self.processes_seen: set[int] = set()
        """Descendants seen while sampling (their process ids)."""
        self.phases: list[PhaseMemory] = []
        """The phases :meth:`mark` noted, in order."""
        self._stop = threading.Event()
        self._pid = os.getpid()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="smeflow-peak-memory",
                                        daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        kids = descendants(self._pid)
        self.processes_seen.update(kids)
        # (PSS only with children: reading it walks the page tables, RSS is one number)
        total = _pss_mb(self._pid) + sum(_pss_mb(k) for k in kids) if kids \
            else _rss_mb(self._pid)
        self.tree_peak_mb = max(self.tree_peak_mb, total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def mark(self, phase: str) -> PhaseMemory:
        """Note that ``phase`` of the program has ended: its resident memory now and the
        peak so far, appended to :attr:`phases` (and returned). Which phase holds what is
        the difference of one phase's ``rss_mb`` and the previous one's; a phase whose
        ``peak_mb`` is above the previous phase's is where the peak grew."""
        rss = _rss_mb(self._pid)  # (a peak is at least what is resident now)
        mark = PhaseMemory(phase, rss, max(rss, peak_rss_mb(), self.tree_peak_mb))
        self.phases.append(mark)
        return mark

    def stop(self) -> float:
        """Stop sampling; the peak, MB: the larger of this process's own peak and the
        largest sampled sum over the process tree."""
        self._stop.set()
        self._thread.join()
        self._sample()
        return max(peak_rss_mb(), self.tree_peak_mb)
