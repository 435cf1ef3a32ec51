"""Close a run whose process was killed: check what is on disk, write a stop document.

A run without a stop document is still being acquired, or its process died. ``repair_run``
(``smeflow catalog repair UID``) is for the second case:

1. when the run's journal is left (``dataflow.journal``, every embedded catalog keeps
   one), the run is rewritten from it — events and frame announcements a batching writer
   still held in memory are recovered; otherwise the catalog's copy is used as it is.
   Frames announced the older way (``resource``/``datum``: ``bp.fly`` of a flyer, before
   ``dataflow.fly_streams``) are
   first brought to the form the catalog stores (``event_pages.stream_form``);
2. every frame file the run announces is checked on disk: it must exist, be readable,
   hold every announced frame completely, and each frame must match the CRC-32 its
   writer stored (``dataflow.integrity``); announcements of frames that are not all there
   are cut back to the frames that are, and each such cut is reported;
3. every frame file a killed writer left open for write is closed
   (``dataflow.killed_file``);
4. a stop document is written with ``exit_status="abort"`` and ``reason="recovered"``,
   and the run's metadata gets ``recovery``: when, from what, the frames found per data
   key, every problem found and every file closed (its digest before and after). The
   journal is then removed.

What the repair found is written to its record (``dataflow.repair_record``) before
anything changes, and the record is removed last: a repair killed at any step is
finished by the next ``repair`` of the run, even after its stop document was written.
A run that has a stop document is otherwise never touched, except that the frame files
of a run repaired by a version that did not close them (still open for write) are
closed, and the run's ``recovery`` entry gets them.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .catalog_db import folder_lock
from .disk_check import check_run_on_disk, file_path, frames_on_disk
from .errors import CatalogError
from .event_pages import ANNOUNCING, stream_form
from .hdf5_files import file_sha256
from .integrity import sidecar_path
from .journal import JOURNAL_DIR, journal_of
from .killed_file import ClosedFile, close_killed_file, open_for_write, refuse_if_in_use
from .repair_record import (
    drop_temporaries,
    read_record,
    record_path,
    settle,
    unfinished,
    write_record,
)
from .run_queries import RunNotFoundError
from .spool import write_run
from .spool_files import Document, read_spool

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
    files: dict[Path, dict[str, int]] = field(default_factory=dict, repr=False)
    """Each frame file → its frame datasets → their intact frames."""
    closed: list[ClosedFile] = field(default_factory=list)
    """The files a killed writer had left open, closed."""
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(
        timespec="seconds"))
    """When the repair began (a finished repair's: when the first attempt began)."""
    finished: bool = False
    """The stop document was there: a repair killed after it, or one that left its
    files open, was finished."""

    def recovery(self) -> dict[str, Any]:
        """The run's ``recovery`` metadata entry (also the repair's record)."""
        return {"time": self.time, "source": self.source, "events": self.events,
                "frames": self.frames, "problems": self.problems,
                "files": [closed.as_metadata() for closed in self.closed]}

    def lines(self) -> list[str]:
        """The report for people, one line each."""
        out = [f"run {self.uid}: recovered from the {self.source}"]
        for stream, n in sorted(self.events.items()):
            out.append(f"  stream {stream}: {n} event{'s' if n != 1 else ''}")
        for key, n in sorted(self.frames.items()):
            out.append(f"  {key}: {n} frame{'s' if n != 1 else ''} complete on disk")
        out += [f"  closed {c.path}: HDF5 consistency flags cleared"
                f"{', empty end_time removed' if c.end_time_removed else ''}"
                f"{', empty start_time removed' if c.start_time_removed else ''}; "
                f"{c.frames} frames unchanged ({c.datasets} datasets compared bit for "
                f"bit); sha256 {c.sha256}" for c in self.closed]
        out += [f"  problem: {p}" for p in self.problems]
        out.append("  stop document already written (exit_status abort, reason "
                   "recovered): repair finished" if self.finished else
                   "  stop document written: exit_status abort, reason recovered")
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
        found = report.files.setdefault(path, {})
        found[dataset] = max(found.get(dataset, 0), complete[uid])
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


def _close_files(report: RepairReport, save: Callable[[], None]) -> None:
    """Close the files a killed writer left open, after checking none is in use; each
    file's entry is saved (``save``) before the file is replaced."""
    done = {closed.path for closed in report.closed}
    flagged = {path: found for path, found in report.files.items()
               if str(path) not in done and open_for_write(path)}
    for path in flagged:
        refuse_if_in_use(path)

    def record(closed: ClosedFile) -> None:
        report.closed.append(closed)
        save()

    for path, frames in flagged.items():
        drop_temporaries(sidecar_path(path))
        try:
            closed = close_killed_file(path, frames, before_rename=record)
        except (OSError, CatalogError) as exc:
            entry = next((c for c in report.closed if c.path == str(path)), None)
            if entry is not None and _digest(path) != entry.sha256:
                report.closed.remove(entry)  # (not renamed)
                save()
                entry = None
            state = "closed, but" if entry else "left marked open for write:"
            report.problems.append(f"{path}: {state} {exc}")
        else:
            if closed is not None and closed not in report.closed:
                report.closed.append(closed)


def _digest(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def _find(catalog: Any, ref: str | int) -> tuple[str, Any]:
    """The uid and node of run ``ref``; the node is ``None`` for a run a killed repair
    had deleted to rewrite it from its journal (its record and journal are left)."""
    try:
        run = catalog.run(ref)
    except RunNotFoundError:
        folder = Path(catalog.root) / JOURNAL_DIR
        uids = [uid for uid in unfinished(folder, ref) if journal_of(folder, uid)]
        if len(uids) != 1:
            raise
        return uids[0], None
    return str((run.metadata.get("start") or {}).get("uid")), run


def repair_run(catalog: Any, ref: str | int) -> RepairReport:
    """Recover the run ``ref`` of the embedded ``catalog`` (see the module docstring).

    Raises
    ------
    CatalogError
        The run has a stop document and nothing is left to finish (nothing to repair),
        or is unknown, or a file it names is in use.
    """
    folder = Path(catalog.root) / JOURNAL_DIR
    folder.mkdir(exist_ok=True)
    with folder_lock(folder):  # (one repair at a time in a catalog)
        return _repair_locked(catalog, ref, folder)


def _repair_locked(catalog: Any, ref: str | int, folder: Path) -> RepairReport:
    uid, run = _find(catalog, ref)
    journal = journal_of(folder, uid)
    where = record_path(folder, uid)
    drop_temporaries(where)
    record = read_record(where)
    stop = run.metadata.get("stop") if run is not None else None
    if stop and (stop.get("reason") != RECOVERED or (
            record is None and not any(map(open_for_write, _files(run))))):
        raise CatalogError(f"run {uid} has a stop document (exit_status "
                           f"{stop.get('exit_status')!r}): nothing to repair")
    if stop:
        report = _finished(run, uid, record)
    elif journal is not None:
        report = RepairReport(uid, "journal")
        docs = [(n, d) for n, d in read_spool(journal) if n != "stop"]
        if any(name in ANNOUNCING for name, _ in docs):
            docs = stream_form(docs)
        docs = _check_documents(docs, report)
    else:
        report = RepairReport(uid, "catalog")
        found = check_run_on_disk(run)
        report.events, report.frames, report.problems = (found.events, found.frames,
                                                         found.problems)
        report.files = found.files
    if record is not None and not stop:
        report.time = str(record.get("time", report.time))
        report.closed = settle(record["files"], report.problems)

    def save() -> None:
        write_record(where, {"uid": uid, **report.recovery()})

    save()  # (before anything changes)
    _close_files(report, save)
    if not stop and journal is not None:
        write_run(catalog.client, [*docs, ("stop", _stop(uid, report))])
    elif not stop:
        run.update_metadata(metadata={"stop": _stop(uid, report)})
    catalog.run(uid).update_metadata(metadata={RECOVERY_KEY: report.recovery()})
    if journal is not None:
        journal.unlink(missing_ok=True)
    where.unlink(missing_ok=True)  # (the repair is complete)
    return report


def _files(run: Any) -> list[Path]:
    """The run's local frame files, as the catalog lists them (none read; a file that is
    not local has nothing a repair can close, and hides none of the others)."""
    from .provenance.verify import run_files

    return list(run_files(run, local_only=True))


def _finished(run: Any, uid: str, record: dict[str, Any] | None) -> RepairReport:
    """The report of a run whose stop document a repair wrote: from its record (a repair
    killed after the stop), else from its ``recovery`` entry (a repair that did not
    close the files); the files on disk checked again."""
    found = check_run_on_disk(run)
    old = record if record is not None else dict(run.metadata.get(RECOVERY_KEY) or {})
    report = RepairReport(uid, str(old.get("source", "catalog")), finished=True)
    report.time = str(old.get("time", report.time))
    report.events = dict(old.get("events") or found.events)
    report.frames = dict(old.get("frames") or found.frames)
    report.problems = [str(p) for p in old.get("problems") or []]
    files = [e for e in old.get("files") or [] if isinstance(e, dict)]
    report.closed = settle(files, report.problems) if record is not None else []
    for entry in files if record is None else []:
        try:
            report.closed.append(ClosedFile.from_metadata(entry))
        except (KeyError, TypeError, ValueError):
            report.problems.append(f"a damaged entry in the run's recovery files: {entry!r}")
    report.files = found.files
    return report


__all__ = ["RECOVERED", "RECOVERY_KEY", "RepairReport", "repair_run"]
