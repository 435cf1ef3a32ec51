"""The demo's live table: what bluesky's ``BestEffortCallback`` prints with its plots
disabled — a heading per run, a line per new stream, a :class:`LiveTable` of the scan's
dimension stream with the dimensions and the hinted fields, and the baseline readings at
the run's start and end — without importing matplotlib.

Why not ``BestEffortCallback`` itself: its module imports ``matplotlib.pyplot`` when it
is imported, about 25 MB of the demo's resident memory while it acquires (the peak is
reached then, as the tomography volume is written); the demo draws its pictures with
matplotlib only after the scans. The table rows are bluesky's own ``LiveTable``; only the
choice of columns (the start document's ``dimensions`` hint, else the run's ``motors``;
then each object's hinted fields, else all its fields) is done here, the same way.
"""

from __future__ import annotations

import io
import sys
from datetime import datetime
from typing import Any

from bluesky.callbacks.core import CallbackBase, LiveTable
from event_model.documents import Event, EventDescriptor, RunStart, RunStop

__all__ = ["ScanTable", "hinted_columns"]


def hinted_columns(descriptor: EventDescriptor) -> list[str]:
    """The fields of a stream worth a column: those each of its objects hints at, else
    all the fields the object records."""
    object_keys: dict[str, Any] = dict(descriptor.get("object_keys", {}))
    hints: dict[str, Any] = dict(descriptor.get("hints", {}))
    columns: list[str] = []
    for name in object_keys:
        hinted = hints.get(name, {}).get("fields")
        columns.extend(hinted if hinted is not None else object_keys.get(name, []))
    return columns


class ScanTable(CallbackBase):
    """A live table of every run, as ``BestEffortCallback`` prints it with its plots
    disabled (module docstring). Subscribe it to a ``RunEngine``."""

    def __init__(self) -> None:
        super().__init__()
        self._start: dict[str, Any] = {}
        self._stream = "primary"
        self._dimensions: list[str] = []
        self._seen: set[str] = set()
        self._table: Any = None
        """This run's ``LiveTable`` (untyped, as bluesky's callbacks are)."""
        self._streams: dict[str, str] = {}
        """Stream name of each descriptor uid of the run."""
        self._baseline: dict[str, list[str]] = {}
        """The baseline stream's columns, by its descriptor uid."""
        self._end_baseline = io.StringIO()
        """The end-of-run baseline readings, printed under the table at the stop."""
        self._at_start = True
        """Whether the next baseline reading is the run's first (of a pair)."""

    def start(self, doc: RunStart) -> None:
        """The run's heading; which stream and fields make the table."""
        self._start, self._seen, self._table, self._streams = dict(doc), set(), None, {}
        self._baseline, self._end_baseline, self._at_start = {}, io.StringIO(), True
        hints: dict[str, Any] = dict(doc.get("hints", {}))
        dimensions: list[Any] | None = hints.get("dimensions")
        if dimensions is None or len({stream for _, stream in dimensions}) != 1:
            # one table: the dimensions must share a stream; else the motors (their
            # names: a motor's name is its readback field's), else time
            motors: list[str] = self._start.get("motors") or []
            dimensions = [([m], "primary") for m in motors] or [(["time"], "primary")]
        self._dimensions = [field for fields, _ in dimensions for field in fields]
        self._stream = dimensions[0][1]
        started = datetime.fromtimestamp(doc["time"]).strftime("%Y-%m-%d %H:%M:%S")
        print(f"\n\nTransient Scan ID: {doc.get('scan_id', '')}     Time: {started}")
        print(f"Persistent Unique Scan ID: '{doc['uid']}'")

    def descriptor(self, doc: EventDescriptor) -> None:
        """A new stream is announced; the dimension stream's table starts."""
        stream = self._streams[doc["uid"]] = doc.get("name", "primary")
        if stream not in self._seen:
            self._seen.add(stream)
            print(f"New stream: {stream!r}")
        if stream == "baseline":
            self._baseline[doc["uid"]] = hinted_columns(doc)
        if stream != self._stream:
            return
        columns = [c for c in hinted_columns(doc) if c not in self._dimensions]
        self._table = LiveTable([*self._dimensions, *columns],  # type: ignore[no-untyped-call]
                                separator_lines=False)
        self._table("start", self._start)
        self._table("descriptor", doc)

    def event(self, doc: Event) -> Event:
        """A row of the table; a baseline reading: the first shown now, the last under the
        table at the stop (events of the other streams are not shown)."""
        if self._table is not None and self._streams.get(doc["descriptor"]) == self._stream:
            self._table("event", doc)
        columns = self._baseline.get(doc["descriptor"])
        if columns is not None:
            first, self._at_start = self._at_start, not self._at_start
            border = "+" + "-" * 32 + "+" + "-" * 32 + "+"
            lines = [f"{'Start' if first else 'End'}-of-run baseline readings:", border,
                     *(f"| {k:>30} | {v:<30} |" for k, v in doc["data"].items()
                       if k in columns), border]
            print("\n".join(lines), file=sys.stdout if first else self._end_baseline)
        return doc

    def stop(self, doc: RunStop) -> None:
        """The table's closing line."""
        if self._table is not None:
            self._table("stop", doc)
        self._table = None
        print(self._end_baseline.getvalue())
        print("\n")
