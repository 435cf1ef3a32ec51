"""Close a run whose process was killed: check what is on disk, write a stop document.

A run without a stop document is still being acquired, or its process died. ``repair_run``
(``smeflow catalog repair UID``) is for the second case:

1. when the run's journal is left (``dataflow.journal``, every embedded catalog keeps
   one), the run is rewritten from it — events and frame announcements a batching writer
   still held in memory are recovered; otherwise the catalog's copy is used as it is.
   Frames announced the older way (``resource``/``datum``: ``bp.fly`` of a flyer) are
   first brought to the form the catalog stores (``event_pages.stream_form``);
2. every frame file the run announces is checked on disk: it must exist, be readable,
   hold every announced frame completely, and each frame must match the CRC-32 its
   writer stored (``dataflow.integrity``); announcements of frames that are not all there
   are cut back to the frames that are, and each such cut is reported;
3. a stop document is written with ``exit_status="abort"`` and ``reason="recovered"``,
   and the run's metadata gets ``recovery``: when, from what, the frames found per data
   key and every problem found. The journal is then removed.

A run that has a stop document is never touched.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .disk_check import check_run_on_disk, file_path, frames_on_disk
from .errors import CatalogError
from .event_pages import ANNOUNCING, stream_form
from .journal import JOURNAL_DIR, journal_of
from .killed_file import ClosedFile, close_killed_file, open_for_write, refuse_if_in_use
from .spool import Document, read_spool, write_run

RECOVERED = "recovered"
"""The ``reason`` of the stop document a repair writes."""
RECOVERY_KEY = "recovery"
"""The run metadata key a repair fills in."""


@dataclass
class RepairReport:
    """What ``repair_run`` found and did."""

    uid: str
    source: str
    """``"journal"`` (rewritten from it) or ``"catalog"`` (the catalog's copy kept)."""
    events: dict[str, int] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    files: dict[Path, tuple[str, int]] = field(default_factory=dict, repr=False)
    """Each frame file → (its frame dataset, its intact frames)."""
    closed: list[ClosedFile] = field(default_factory=list)
    """The files a killed writer had left open, closed."""

    def lines(self) -> list[str]:
        """The report for people, one line each."""
        out = [f"run {self.uid}: recovered from the {self.source}"]
        for stream, n in sorted(self.events.items()):
            out.append(f"  stream {stream}: {n} event{'s' if n != 1 else ''}")
        for key, n in sorted(self.frames.items()):
            out.append(f"  {key}: {n} frame{'s' if n != 1 else ''} complete on disk")
        out += [f"  closed {c.path}: HDF5 consistency flags cleared"
                f"{', empty end_time removed' if c.end_time_removed else ''}; "
                f"{c.frames} frames unchanged; sha256 {c.sha256}" for c in self.closed]
        out += [f"  problem: {p}" for p in self.problems]
        out.append("  stop document written: exit_status abort, reason recovered")
        return out


def _check_documents(docs: list[Document], report: RepairReport) -> list[Document]:
    """The documents with frame announcements cut back to the frames on disk."""
    resources: dict[str, dict[str, Any]] = {}
    stream_of: dict[str, str] = {}
    announced: dict[str, int] = Counter()
    for name, doc in docs:
        if name == "descriptor":
            stream_of[doc["uid"]] = doc.get("name", "primary")
        elif name == "stream_resource":
            resources[doc["uid"]] = doc
        elif name == "stream_datum":
            announced[doc["stream_resource"]] = max(announced[doc["stream_resource"]],
                                                    int(doc["indices"]["stop"]))
    complete: dict[str, int] = {}
    for uid, resource in resources.items():
        dataset = (resource.get("parameters") or {}).get("dataset", "/entry/data/data")
        try:
            path = file_path(resource["uri"])
        except CatalogError as exc:
            complete[uid] = 0
            report.problems.append(str(exc))
            continue
        complete[uid], problem = frames_on_disk(path, dataset, announced.get(uid, 0))
        report.files[path] = (dataset, complete[uid])
        if problem:
            report.problems.append(problem)
    out: list[Document] = []
    for name, doc in docs:
        if name == "stream_datum":
            have = complete.get(doc["stream_resource"], 0)
            start, stop = int(doc["indices"]["start"]), int(doc["indices"]["stop"])
            if start >= have:
                continue
            if stop > have:
                doc = {**doc, "indices": {"start": start, "stop": have},
                       "seq_nums": {"start": doc["seq_nums"]["start"],
                                    "stop": doc["seq_nums"]["start"] + have - start}}
            data_key = resources[doc["stream_resource"]]["data_key"]
            key = f"{stream_of.get(doc['descriptor'], '?')}/{data_key}"
            report.frames[key] = report.frames.get(key, 0) + int(doc["indices"]["stop"]) - start
        elif name in {"event", "event_page"}:
            stream = stream_of.get(doc["descriptor"], "?")
            report.events[stream] = report.events.get(stream, 0) + (
                len(doc.get("seq_num", [])) if name == "event_page" else 1)
        out.append((name, doc))
    return out


def _stop(uid: str, report: RepairReport) -> dict[str, Any]:
    return {"uid": str(uuid.uuid4()), "run_start": uid, "time": time.time(),
            "exit_status": "abort", "reason": RECOVERED, "num_events": dict(report.events)}


def _close_files(report: RepairReport) -> None:
    """Close the files a killed writer left open, after checking none is in use."""
    flagged = {path: found for path, found in report.files.items() if open_for_write(path)}
    for path in flagged:
        refuse_if_in_use(path)
    for path, (dataset, frames) in flagged.items():
        try:
            closed = close_killed_file(path, dataset, frames)
        except (OSError, CatalogError) as exc:
            report.problems.append(f"{path}: left marked open for write: {exc}")
        else:
            if closed is not None:
                report.closed.append(closed)


def repair_run(catalog: Any, ref: str | int) -> RepairReport:
    """Recover the run ``ref`` of the embedded ``catalog`` (see the module docstring).

    Raises
    ------
    CatalogError
        The run has a stop document (nothing to repair), or is unknown.
    """
    run = catalog.run(ref)
    md = run.metadata
    uid = str((md.get("start") or {}).get("uid"))
    if md.get("stop"):
        raise CatalogError(f"run {uid} has a stop document (exit_status "
                           f"{md['stop'].get('exit_status')!r}): nothing to repair")
    journal = journal_of(Path(catalog.root) / JOURNAL_DIR, uid)
    if journal is not None:
        report = RepairReport(uid, "journal")
        docs = [(n, d) for n, d in read_spool(journal) if n != "stop"]
        if any(name in ANNOUNCING for name, _ in docs):
            docs = stream_form(docs)
        docs = _check_documents(docs, report)
        _close_files(report)
        write_run(catalog.client, [*docs, ("stop", _stop(uid, report))])
    else:
        report = RepairReport(uid, "catalog")
        found = check_run_on_disk(run)
        report.events, report.frames, report.problems = (found.events, found.frames,
                                                         found.problems)
        report.files = found.files
        _close_files(report)
        run.update_metadata(metadata={"stop": _stop(uid, report)})
    catalog.run(uid).update_metadata(metadata={RECOVERY_KEY: {
        "time": datetime.now(UTC).isoformat(timespec="seconds"), "source": report.source,
        "events": report.events, "frames": report.frames, "problems": report.problems,
        "files": [closed.as_metadata() for closed in report.closed]}})
    if journal is not None:
        journal.unlink(missing_ok=True)
    return report


__all__ = ["RECOVERED", "RECOVERY_KEY", "RepairReport", "repair_run"]
