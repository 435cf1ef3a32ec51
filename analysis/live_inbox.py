"""The live reducer's inbox: documents waiting for its worker thread, with the frame
documents bounded (the policy is in :mod:`analysis.live`'s docstring: run structure
documents are always taken, frame documents wait at most a timeout and are then dropped,
and after a drop they are shed until the inbox has drained to half its capacity)."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

__all__ = ["DEFAULT_CAPACITY", "DEFAULT_PUT_TIMEOUT", "FRAME_DOCS", "Inbox"]

DEFAULT_CAPACITY = 1000
"""Frame documents the inbox holds."""
DEFAULT_PUT_TIMEOUT = 1.0
"""Seconds a frame document waits for room before it is dropped."""
FRAME_DOCS = frozenset({"stream_datum", "event", "event_page"})
"""The documents that count against the capacity (and may be dropped)."""


class Inbox:
    """Documents waiting for the worker; frame documents are bounded (module docstring).

    ``put`` is the RunEngine's side (False: the frame document was dropped),
    ``put_control`` puts what must never be dropped, ``get``/``task_done`` are the
    worker's, and ``join`` waits until everything put so far has been handled."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[tuple[str, Any]] = deque()
        self._frames = 0
        self._shedding = False
        self._cond = threading.Condition()
        self.put_count = 0
        self.done_count = 0

    def put(self, name: str, doc: Any, timeout: float) -> bool:
        with self._cond:
            if name in FRAME_DOCS:
                if self._shedding and self._frames > self.capacity // 2:
                    return False
                self._shedding = False
                deadline = time.monotonic() + timeout
                while self._frames >= self.capacity:
                    remaining = deadline - time.monotonic()
                    timed_out = remaining <= 0 or not self._cond.wait(remaining)
                    if timed_out and self._frames >= self.capacity:
                        self._shedding = True
                        return False
                self._frames += 1
            self._items.append((name, doc))
            self.put_count += 1
            self._cond.notify_all()
            return True

    def put_control(self, name: str, doc: Any) -> None:
        with self._cond:
            self._items.append((name, doc))
            self.put_count += 1
            self._cond.notify_all()

    def get(self) -> tuple[str, Any]:
        with self._cond:
            while not self._items:
                self._cond.wait()
            name, doc = self._items.popleft()
            if name in FRAME_DOCS:
                self._frames -= 1
            self._cond.notify_all()
            return name, doc

    def empty(self) -> bool:
        with self._cond:
            return not self._items

    def task_done(self) -> None:
        with self._cond:
            self.done_count += 1
            self._cond.notify_all()

    def join(self, timeout: float | None) -> bool:
        """Wait until everything put so far has been handled."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self.put_count
            while self.done_count < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True
