"""Scan numbers that continue across processes.

A RunEngine numbers its runs from its in-memory ``md["scan_id"]``, so a new process
would start again at 1. ``ScanIdCounter`` keeps the last number in a small file in the
catalog's folder, read and bumped under an exclusive ``flock`` so two RunEngines (in two
processes) writing to the same catalog never hand out the same number. Its
``scan_id_source`` method has the signature bluesky's ``RunEngine(scan_id_source=...)``
expects.

The file holds the number and a check of it (``123 c:884863d2``, the number's CRC-32).
A number read with its check and its line end is the one last written, and is used as
it is (no catalog query). Any other — cut short, emptied, a digit changed by a bad disk
or an edit (``123`` -> ``113`` or ``193``), a file of an older smeflow, a number set by
hand — is not trusted below the catalog's highest ``scan_id`` (``initial``): the counter
continues from the larger of the two, so a stored number is never handed out again. A
number *ahead* of the catalog is kept (a number set by hand to jump ahead is one; a
changed digit cannot be told from it): the numbers between are skipped, never reused,
and a warning names the file and both numbers. Scan numbers are unique, not contiguous.
"""

from __future__ import annotations

import fcntl
import logging
import os
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _check(value: int) -> str:
    return f"c:{zlib.crc32(str(value).encode('ascii')):08x}"


class ScanIdCounter:
    """A persisted, process-safe scan number counter.

    Parameters
    ----------
    path
        The counter file (created on first use; the number and its check).
    initial
        The number to continue from at least (e.g. the highest ``scan_id`` already in the
        catalog) when the file's number is not the one last written: called then only
        (see the module).
    """

    def __init__(self, path: str | os.PathLike[str],
                 initial: Callable[[], int] | None = None) -> None:
        self.path = Path(path)
        self._initial = initial

    def _read(self, fd: int) -> int:
        """The stored number; one not as written (no check, a check that differs, no line
        end: cut short, a digit changed, set by hand) is never below ``initial()``."""
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 64)
        text = raw.decode("ascii", "replace").strip()
        number, _, check = text.partition(" ")
        try:
            value = int(number) if number else 0
        except ValueError:
            raise ValueError(f"{self.path}: scan number file holds {text!r}, not an "
                             "integer; fix or delete it") from None
        if (number and raw.endswith(b"\n") and check == _check(value)) \
                or self._initial is None:
            return value
        floor = self._initial()
        if value > floor + 1:
            log.warning("%s: scan number %d is not the one last written (%r) and is %d "
                        "ahead of the catalog's highest, %d: continuing from it; the "
                        "numbers between are skipped", self.path, value, text,
                        value - floor, floor)
        return max(value, floor)

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
            os.write(fd, f"{value} {_check(value)}\n".encode("ascii"))
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
