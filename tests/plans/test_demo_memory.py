"""The demo's peak memory (plans.demo_memory) counts the processes it starts: a child and
its own child holding memory while the demo runs raise the figure by what they hold."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plans.demo_memory import PeakMemory, _pss_mb, descendants, peak_rss_mb

HOLD_MB = 150
# a process that, as "outer", starts another one like itself; both hold HOLD_MB touched
# bytes until their parent closes their stdin
HOLDER = f"""
import subprocess, sys
held = bytearray(b"x" * ({HOLD_MB} * 2**20))
inner = None
if sys.argv[1] == "outer":
    inner = subprocess.Popen([sys.executable, __file__, "inner"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    inner.stdout.readline()
print("holding", flush=True)
sys.stdin.read()
if inner is not None:
    inner.stdin.close()
    inner.wait()
"""


def test_children_and_grandchildren_count(tmp_path: Path) -> None:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    memory = PeakMemory(interval=0.02)
    own = _pss_mb(os.getpid())  # (the tree's sum is of proportional set sizes)
    outer = subprocess.Popen([sys.executable, str(script), "outer"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert outer.stdout is not None and outer.stdout.readline().strip() == "holding"
        tree = descendants(os.getpid())
        assert outer.pid in tree and len(tree) >= 2, tree  # the outer and the inner one
        time.sleep(0.3)  # several samples while both hold their memory
    finally:
        assert outer.stdin is not None
        outer.stdin.close()
        outer.wait(60)
    peak = memory.stop()
    assert {outer.pid} < memory.processes_seen
    assert peak >= own + 2 * HOLD_MB * 0.95, (peak, own)
    assert peak >= peak_rss_mb()


FORKS = """
import os, time
import numpy as np
from plans.demo_memory import PeakMemory, peak_rss_mb
held = np.ones(300 * 2**20 // 8)  # 300 MB resident here
memory = PeakMemory(interval=0.02)
pid = os.fork()
if pid == 0:  # the child touches nothing and goes
    time.sleep(0.5)
    os._exit(0)
os.waitpid(pid, 0)
figure = memory.stop()
print(pid in memory.processes_seen, figure, peak_rss_mb())
"""


def test_a_forked_child_sharing_this_processs_pages_does_not_count_them_twice() -> None:
    """A child forked from the demo (multiprocessing's "fork", a vfork before exec) maps
    its parent's pages copy-on-write: in its resident size too, though no new memory is
    used. The figure is about the parent's peak, not twice it (in a process of its own:
    a test worker may have other tests' children)."""
    seen, figure, own = subprocess.run([sys.executable, "-c", FORKS], capture_output=True,
                                       text=True, timeout=120, check=True).stdout.split()
    assert seen == "True"
    assert float(figure) < float(own) + 100, (figure, own)


def test_alone_it_is_this_processs_peak() -> None:
    """In a process of its own (a test worker may have children of other tests)."""
    code = ("from plans.demo_memory import PeakMemory, peak_rss_mb\n"
            "m = PeakMemory(); peak = m.stop()\n"
            "print(sorted(m.processes_seen), peak == max(peak_rss_mb(), m.tree_peak_mb), "
            "peak >= peak_rss_mb())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ["[]", "True", "True"], out


def test_marks_note_the_memory_at_the_end_of_each_phase() -> None:
    """What ``smeflow demo`` prints per phase: a phase that ends holding 100 MiB more shows
    them in its resident figure; once they are freed the next phase's figure falls back,
    while the peak so far keeps them."""
    memory = PeakMemory(interval=0.02)
    try:
        before = memory.mark("before")
        # 100 MiB touched in a mapping of its own, unmapped at close: malloc's settings
        # (the demo's mallopt, run earlier in this process by other tests) cannot serve it
        # from memory already resident
        held = mmap.mmap(-1, 100 * 2**20)
        held.write(b"\1" * len(held))
        holding = memory.mark("holding")
        held.close()
        after = memory.mark("after")
    finally:
        figure = memory.stop()
    assert [m.phase for m in memory.phases] == ["before", "holding", "after"]
    assert holding.rss_mb - before.rss_mb >= 95, memory.phases
    assert after.rss_mb <= holding.rss_mb - 95, memory.phases
    # (the kernel's peak and its resident count can differ by a few pages)
    assert holding.peak_mb >= holding.rss_mb and after.peak_mb >= holding.rss_mb - 1
    assert before.peak_mb <= holding.peak_mb <= after.peak_mb + 1 <= figure + 1


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval 0: must be > 0 seconds"):
        PeakMemory(interval=0)


_FRAGMENTS = """
import sys
import numpy as np
from plans.demo_memory import return_freed_buffers

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

if sys.argv[1] == "fixed":
    assert return_freed_buffers()
big = np.ones(4 * 2**20 // 8)
del big  # a 4 MiB buffer freed: glibc raises its threshold to 4 MiB
base = rss()
bufs = [np.ones(512 * 1024 // 8) for _ in range(100)]  # 50 MiB of frame-sized buffers
del bufs[::2]  # half of them freed, between live ones
print(rss() - base)
"""


def test_freed_frames_go_back_to_the_system() -> None:
    """With ``return_freed_buffers`` (what ``smeflow demo`` sets), frame-sized buffers
    freed between live ones leave the process; with glibc's default they stay resident."""
    held = {}
    for mode in ("default", "fixed"):
        done = subprocess.run([sys.executable, "-c", _FRAGMENTS, mode], capture_output=True,
                              text=True, timeout=120, check=True)
        held[mode] = float(done.stdout)
    assert held["default"] > 45, held  # all 50 MiB kept: the case it is for
    assert held["fixed"] < 30, held    # the 25 MiB still referenced, not the freed half


_ARENAS = """
import sys, threading
import numpy as np
from plans.demo_memory import cap_malloc_arenas, return_freed_buffers

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

return_freed_buffers()  # (as the demo: buffers of 128 KiB and more have their own mappings)
if sys.argv[1] == "capped":
    assert cap_malloc_arenas(2)
THREADS = 8
turn = [threading.Event() for _ in range(THREADS + 1)]
done = threading.Barrier(THREADS + 1)
kept = []

def work(k):
    small = [np.ones(16 * 1024 // 8) for _ in range(4)]  # this thread's arena is taken
    turn[k].wait()  # one thread at a time: an arena shared with an earlier thread is reused
    bufs = [np.ones(16 * 1024 // 8) for _ in range(200)]  # 3.2 MB of 16 KiB buffers
    kept.append(bufs[-1])  # the last one stays: the arena cannot give back the rest
    del bufs
    turn[k + 1].set()
    done.wait()
    del small

threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
for t in threads:
    t.start()
base = rss()
turn[0].set()
turn[THREADS].wait()
print(rss() - base)
done.wait()
"""


def test_threads_share_capped_arenas() -> None:
    """With ``cap_malloc_arenas(2)`` (what ``smeflow demo`` sets), threads started later
    share two arenas, and one thread's freed memory serves the next; with glibc's
    default each thread has an arena of its own, which keeps what it freed."""
    held = {}
    for mode in ("default", "capped"):
        done = subprocess.run([sys.executable, "-c", _ARENAS, mode], capture_output=True,
                              text=True, timeout=120, check=True)
        held[mode] = float(done.stdout)
    assert held["default"] > 18, held  # ~3 MB kept by each of 8 arenas
    assert held["capped"] < 10, held   # two arenas' worth


_LOADED_LLVM = """
import ctypes, sys
from plans.demo_memory import page_out_libraries

def resident_mb(path):
    total, ours = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                ours = line.rstrip().endswith(" " + path)
            elif ours and head[0] == "Rss:":
                total += int(head[1])
    return total / 1024

lib = ctypes.CDLL(sys.argv[1])  # LLVM's static constructors run: pages all over the file
version = lib.LLVMPY_GetVersionInfo()
loaded = resident_mb(sys.argv[1])  # (the venv's, which plans' imports load, is another)
advised = page_out_libraries()  # (every shared library: what smeflow demo asks)
print(loaded, resident_mb(sys.argv[1]), advised, lib.LLVMPY_GetVersionInfo() == version)
"""


def test_page_out_libraries_gives_back_a_loaded_librarys_pages(tmp_path: Path) -> None:
    """What ``smeflow demo`` does at the end of each phase that loads libraries
    (``plans.demo.LOADING_PHASES``), here with llvmlite's LLVM,
    which numba's import loads and the demo does not run: the pages its loading faulted
    in leave the process, and the library still answers. On a private copy of the file
    (a page another process maps too is left alone, and the tests' own processes map
    the venv's)."""
    import importlib.util
    import shutil

    spec = importlib.util.find_spec("llvmlite")  # (numba's dependency)
    assert spec is not None and spec.origin is not None
    real = Path(spec.origin).parent / "binding" / "libllvmlite.so"
    copy = tmp_path / "libllvmlite.so"
    shutil.copyfile(real, copy)
    with open(copy, "rb") as f:  # read from the disk when loaded, as an installed library
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    done = subprocess.run([sys.executable, "-c", _LOADED_LLVM, str(copy)], capture_output=True,
                          text=True, timeout=120, check=True)
    loaded, left, advised, answers = done.stdout.split()
    assert float(loaded) > 20, done.stdout  # LLVM's load touches tens of MB
    assert float(left) < 0.2 * float(loaded), done.stdout
    assert int(advised) >= copy.stat().st_size * 0.9, done.stdout  # (every mapping of it)
    assert answers == "True", done.stdout


def test_page_out_libraries_by_name() -> None:
    """Named libraries only: none advised when none of that name is mapped; the C
    library's mappings when it is named."""
    from plans.demo_memory import page_out_libraries

    assert page_out_libraries(("libnot-loaded-here.so",)) == 0
    with open("/proc/self/maps") as f:
        libc = {line.split()[5].rpartition("/")[2] for line in f
                if "/libc.so" in line or "/libc-" in line}
    assert libc and page_out_libraries(tuple(libc)) > 0
