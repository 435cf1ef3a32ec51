"""Which frame writers each run announced, so that the run's end can close the ones no
device closes itself (``dataflow.run_files``).

A writer is noted the first time it yields its ``stream_resource`` (``note_announced``,
called by ``dataflow.hdf5.FrameWriter.asset_docs``) with the thread that collected it — a
RunEngine's — and a number that only grows (``announcement_mark``). A run remembers the
mark at its ``open_run``; at its ``close_run`` the writers its thread announced after that
mark are its own (``run_end_writers``), not another run's, RunEngine's or thread's. The
registry holds writers weakly: a writer dropped by its owner leaves it.
"""

from __future__ import annotations

import threading
import weakref
from typing import Protocol

__all__ = ["RunWriter", "announcement_mark", "note_announced", "run_end_writers"]


class RunWriter(Protocol):
    """What the registry needs of a writer: whether it is closed and whether the device
    that writes it closes it before its run's stop document itself."""

    @property
    def closed(self) -> bool: ...

    owner_closes: bool


_ANNOUNCED: weakref.WeakKeyDictionary[RunWriter, tuple[int, int]] = weakref.WeakKeyDictionary()
"""Announced writers -> (the thread that announced it, the announcement's number)."""
_LOCK = threading.Lock()
_LAST = 0


def note_announced(writer: RunWriter) -> None:
    """Record that ``writer``'s file was announced now, on the calling thread."""
    global _LAST
    with _LOCK:
        _LAST += 1
        _ANNOUNCED[writer] = (threading.get_ident(), _LAST)


def announcement_mark() -> int:
    """The number of the last writer announced so far in this process: a run opened now
    announces its writers with larger numbers (``run_end_writers(since=...)``)."""
    with _LOCK:
        return _LAST


def run_end_writers(thread: int, since: int) -> list[RunWriter]:
    """The open writers announced on ``thread`` (a RunEngine's: where its run collects
    the devices' documents) after mark ``since`` (``announcement_mark`` at the run's
    ``open_run``) whose owner does not close them at the run's end itself
    (``owner_closes``): ``dataflow.run_files`` closes them before that run's stop
    document. Writers another run, RunEngine or thread announced are not that run's."""
    with _LOCK:
        announced = list(_ANNOUNCED.items())
    return [w for w, (by, number) in announced
            if by == thread and number > since and not w.closed and not w.owner_closes]
