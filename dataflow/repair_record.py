"""The record a repair keeps while it works, so that a repair killed at any point is
finished by the next one, with nothing lost.

``smeflow catalog repair`` changes things that cannot change together: frame files (each
closed copy renamed over its file), the catalog (the run rewritten from its journal, its
stop document, its ``recovery`` metadata) and the journal (removed). Before the first of
them changes, the repair writes what it found to ``<catalog>/journal/<uid>.repair.json``
(atomically, synced to the disk); before each frame file is renamed, the record gets the
file's digest before and after; the record is removed last, once the catalog holds the
whole ``recovery`` entry. A repair that finds a record finishes the work
(``settle``): a file whose digest is the record's ``sha256`` was renamed and keeps its
entry (its ``.sha256`` sidecar written again if the kill came first), a file still at
its ``sha256_before`` was not and is closed again.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Any

from sme.atomic_file import write_text_atomic

from .errors import CatalogError
from .hdf5_files import file_sha256
from .integrity import read_sidecar, sidecar_path, write_sidecar
from .killed_file import ClosedFile

RECORD_SUFFIX = ".repair.json"
"""``<uid><RECORD_SUFFIX>`` in the catalog's journal folder."""


def record_path(folder: Path, uid: str) -> Path:
    """Where the repair of run ``uid`` keeps its record (``folder``: the journal folder)."""
    return folder / f"{uid}{RECORD_SUFFIX}"


def unfinished(folder: Path, ref: str | int) -> list[str]:
    """The uids starting with ``ref`` whose repair left its record in ``folder``."""
    if not isinstance(ref, str) or not ref:
        return []
    return sorted(p.name[:-len(RECORD_SUFFIX)] for p in folder.glob(f"*{RECORD_SUFFIX}")
                  if p.name.startswith(ref))


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``, ``None`` when there is none.

    Raises
    ------
    CatalogError
        The record cannot be read or is not a repair's record (named, with what to do).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: the record of an unfinished repair cannot be read "
                           f"({exc})") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        record = exc
    if not isinstance(record, dict) or not isinstance(record.get("files"), list) or \
            not all(isinstance(e, dict) for e in record["files"]):
        raise CatalogError(f"{path}: the record of an unfinished repair is damaged "
                           "(not the JSON a repair writes); the frame files it names may "
                           "be closed already: move it away and repair the run again")
    return record


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Replace the record at ``path`` with ``record``, on the disk when this returns."""
    write_text_atomic(path, json.dumps(record, sort_keys=True), fsync=True)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def drop_temporaries(target: Path) -> None:
    """Remove what an atomic write of ``target`` (``sme.atomic_file``) killed midway left
    beside it (``.<name>.<random>.tmp``); callers hold the lock of every such write."""
    for tmp in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        tmp.unlink(missing_ok=True)


def settle(entries: list[dict[str, Any]], problems: list[str]) -> list[ClosedFile]:
    """The files a killed repair closed, of its record's ``entries``: those renamed (the
    sidecar rewritten when missing); those still as they were before are left out, to
    be closed again. A file that is neither is kept, with a problem naming it."""
    closed: list[ClosedFile] = []
    for entry in entries:
        try:
            done = ClosedFile.from_metadata(entry)
        except (KeyError, TypeError, ValueError):
            problems.append(f"a damaged entry in the record of an unfinished repair: "
                            f"{entry!r}")
            continue
        path = Path(done.path)
        drop_temporaries(sidecar_path(path))
        try:
            taken = os.stat(path)
            digest = file_sha256(path)
        except OSError as exc:
            problems.append(f"{path}: closed by a repair that was killed, now unreadable "
                            f"({exc})")
            closed.append(done)
            continue
        if digest == done.sha256_before:
            continue  # (killed before its rename: closed again)
        closed.append(done)
        if digest != done.sha256:
            problems.append(f"{path}: changed since a repair closed it (sha256 {digest}, "
                            f"the repair wrote {done.sha256})")
        elif read_sidecar(path) != digest:
            write_sidecar(path, digest, taken)
    return closed


__all__ = ["RECORD_SUFFIX", "drop_temporaries", "read_record", "record_path", "settle",
           "unfinished", "write_record"]
