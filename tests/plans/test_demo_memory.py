"""The demo's peak memory (plans.demo_memory) counts the processes it starts: a child and
its own child holding memory while the demo runs raise the figure by what they hold."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plans.demo_memory import PeakMemory, _rss_mb, descendants, peak_rss_mb

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
    own = _rss_mb(os.getpid())
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


def test_alone_it_is_this_processs_peak() -> None:
    memory = PeakMemory()
    peak = memory.stop()
    assert memory.processes_seen == set()
    assert peak == pytest.approx(max(peak_rss_mb(), memory.tree_peak_mb))
    assert peak >= peak_rss_mb()


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval 0: must be > 0 seconds"):
        PeakMemory(interval=0)
