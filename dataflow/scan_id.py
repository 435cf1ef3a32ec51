"""Scan numbers that continue across processes.

A RunEngine numbers its runs from its in-memory ``md["scan_id"]``, so a new process
would start again at 1. ``ScanIdCounter`` keeps the last number in a small file in the
catalog's folder, read and bumped under an exclusive ``flock`` so two RunEngines (in two
processes) writing to the same catalog never hand out the same number. Its
``scan_id_source`` method has the signature bluesky's ``RunEngine(scan_id_source=...)``
expects.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


class ScanIdCounter:
    """A persisted, process-safe scan number counter.

    Parameters
    ----------
    path
        The counter file (created on first use; holds one decimal number).
    initial
        Called when the file is new or empty, or its number lacks its line end (cut
        short), for the number to continue from (e.g. the highest ``scan_id`` already in
        the catalog).
    """

    def __init__(self, path: str | os.PathLike[str],
                 initial: Callable[[], int] | None = None) -> None:
        self.path = Path(path)
        self._initial = initial

    def _read(self, fd: int) -> int:
        """The stored number. An empty file, or one whose number lacks the line end every
        write puts after it (cut short: ``123`` kept as ``12``; or written by hand), is
        never below ``initial()`` — the catalog's highest — so no stored number is handed
        out again."""
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 64)
        text = raw.decode("ascii", "replace").strip()
        floor = self._initial() if self._initial is not None and not raw.endswith(
            b"\n") else 0
        if not text:
            return floor
        try:
            return max(int(text), floor)
        except ValueError:
            raise ValueError(f"{self.path}: scan number file holds {text!r}, not an "
                             "integer; fix or delete it") from None

    def current(self) -> int:
        """The last scan number handed out (0 when none)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return self._read(fd)
        finally:
            os.close(fd)

    def next(self, floor: int = 0) -> int:
        """Hand out the next number: one more than the larger of the stored one and ``floor``."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            value = max(self._read(fd), floor) + 1
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{value}\n".encode("ascii"))
            os.fsync(fd)
            return value
        finally:
            os.close(fd)

    def scan_id_source(self, md: Mapping[str, Any]) -> int:
        """For ``RunEngine.scan_id_source``: the next number, never below ``md["scan_id"]``+1.

        A ``scan_id`` the user set in ``RE.md`` by hand is respected as a floor.
        """
        floor = md.get("scan_id", 0)
        return self.next(floor if isinstance(floor, int) else 0)


__all__ = ["ScanIdCounter"]
