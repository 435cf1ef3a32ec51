"""``smeflow reduce --live ...`` (the same command line) run for the live consumer's memory
test (tests/analysis/test_live_zmq.py), with two additions, both on the test's side:

* memory: tracemalloc traces from the "listening" line on; every ``run ...`` line gets
  `` [traced CURRENT PEAK KiB]``: the Python heap (numpy arrays included) still held after
  a garbage collection once that run was finished, and the most held at once since the
  previous run line. Unlike the peak RSS these do not move with the allocator's free
  lists, the page cache or native libraries' arenas (a few MB between identical runs);
* a gate that makes the consumer as slow as wanted without timing: with ``--throttle``
  given (any value), the reducer's derived pattern events wait while the gate is closed
  (a ``close`` line on stdin; ``open`` opens it; it starts open), so a scan acquired
  while it is closed overflows the inbox whatever the machine's speed.
"""

from __future__ import annotations

import gc
import io
import sys
import threading
import tracemalloc
from typing import Any

from analysis import live_consumer
from sme.cli import main

GATE = threading.Event()
GATE.set()


def gated_call(self: live_consumer.Throttle, name: str, doc: dict[str, Any]) -> None:
    """The throttle's place in the derived run's callbacks: wait for the gate."""
    if name in ("event", "event_page"):
        GATE.wait()


def follow_stdin() -> None:
    """Open and close the gate as told, and say so."""
    for line in sys.stdin:
        {"open": GATE.set, "close": GATE.clear}[line.strip()]()
        print(f"gate {line.strip()}", flush=True)


class TracedLines(io.TextIOBase):
    """stdout with the traced memory appended to every run line."""

    def __init__(self, inner: io.TextIOBase) -> None:
        self.inner = inner
        self.pending = ""
        self.lock = threading.Lock()  # (the gate's lines come from another thread)

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self.lock:
            self._write(text)
        return len(text)

    def _write(self, text: str) -> None:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            if line.startswith("live reduction: listening"):
                tracemalloc.start()
            elif line.startswith("run ") and tracemalloc.is_tracing():
                gc.collect()
                current, peak = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                line += f" [traced {current // 1024} {peak // 1024} KiB]"
            self.inner.write(line + "\n")

    def flush(self) -> None:
        self.inner.flush()


if __name__ == "__main__":
    live_consumer.Throttle.__call__ = gated_call  # type: ignore[method-assign]
    threading.Thread(target=follow_stdin, daemon=True).start()
    sys.stdout = TracedLines(sys.stdout)  # type: ignore[arg-type]
    sys.exit(main(sys.argv[1:]))
