"""A journal of every run being written, so that a run whose process was killed can be
recovered whole, whatever the writer's batching.

``TiledWriter`` with its default batching keeps events and frame announcements in memory
until a batch fills or the stop document arrives: when the acquiring process is killed
(``kill -9``, a crash, a power cut of the control machine), the catalog keeps the start
and descriptor documents and nothing else, although the frames are safe in their HDF5
files. ``JournalingWriter`` writes each document to ``<journal>/<start ns>-<uid>.jsonl``
(one ``[name, doc]`` JSON line each, the spool format of ``dataflow.spool_files``) before
handing it to the ``TiledWriter``, and deletes the file once the stop document has been
written. A process killed mid-run leaves its journal behind; ``dataflow.repair`` rewrites
the run from it and closes it with a stop document (``smeflow catalog repair UID``).

Each line is written with one ``write`` and flushed to the operating system, which keeps
it when the process is killed; ``fsync=True`` also forces it to the disk (for a machine
that loses power), at a cost per document.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .spool_files import SPOOL_SUFFIX, encode_document

log = logging.getLogger(__name__)

JOURNAL_DIR = "journal"
"""The journal folder inside a catalog folder."""
_OWNER_KEYS = ("run_start", "descriptor", "stream_resource", "resource")


def journal_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The journals in ``folder``, oldest run first."""
    return sorted(Path(folder).glob(f"*{SPOOL_SUFFIX}"))


def journal_of(folder: str | os.PathLike[str], uid: str) -> Path | None:
    """The journal of run ``uid`` in ``folder``, if one was left."""
    found = sorted(Path(folder).glob(f"*-{uid}{SPOOL_SUFFIX}"))
    return found[-1] if found else None


class JournalingWriter:
    """A RunEngine callback: every document to the run's journal, then to ``writer``.

    Parameters
    ----------
    writer
        The callback that writes the catalog (a ``TiledWriter``); its exceptions reach
        the caller as before (the journal is then kept for ``repair``).
    folder
        Where the journals go (created).
    fsync
        Force each line to the disk, not only to the operating system.
    """

    def __init__(self, writer: Any, folder: str | os.PathLike[str], *,
                 fsync: bool = False) -> None:
        self.writer = writer
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._files: dict[str, tuple[Path, IO[str]]] = {}
        self._owner: dict[str, str] = {}

    def __call__(self, name: str, doc: dict[str, Any]) -> Any:
        """Journal ``doc``, then write it to the catalog."""
        run = self._journal(name, doc)
        result = self.writer(name, doc)
        if name == "stop" and run is not None:
            self._close(run, delete=True)
        return result

    def _run_of(self, name: str, doc: dict[str, Any]) -> str | None:
        if name == "start":
            return str(doc["uid"])
        for key in _OWNER_KEYS:
            ref = doc.get(key)
            if isinstance(ref, str):
                if ref in self._files:
                    return ref
                if ref in self._owner:
                    return self._owner[ref]
        return next(reversed(self._files), None) if self._files else None

    def _journal(self, name: str, doc: dict[str, Any]) -> str | None:
        try:
            if name == "start":
                path = self.folder / f"{time.time_ns():020d}-{doc['uid']}{SPOOL_SUFFIX}"
                self._files[str(doc["uid"])] = (path, open(path, "x", encoding="utf-8"))  # noqa: SIM115
            run = self._run_of(name, doc)
            if run is None or run not in self._files:
                return None
            if name in {"descriptor", "stream_resource", "resource"} and "uid" in doc:
                self._owner[str(doc["uid"])] = run
            handle = self._files[run][1]
            handle.write(encode_document(name, doc) + "\n")
            handle.flush()
            if self.fsync or name in {"start", "stop"}:
                os.fsync(handle.fileno())
            return run
        except (OSError, TypeError, ValueError) as exc:  # never lose the run over it
            log.error("run journal: %s document not journaled (%s)", name, exc)
            return None

    def _close(self, run: str, delete: bool) -> None:
        path, handle = self._files.pop(run)
        handle.close()
        for key in [k for k, v in self._owner.items() if v == run]:
            del self._owner[key]
        if delete:
            path.unlink(missing_ok=True)

    def open_runs(self) -> Iterator[str]:
        """Uids of the runs whose stop document has not come yet."""
        yield from list(self._files)

    def close(self) -> None:
        """Close the journals of unfinished runs (kept for ``repair``)."""
        for run in list(self._files):
            self._close(run, delete=False)


__all__ = ["JOURNAL_DIR", "JournalingWriter", "journal_files", "journal_of"]
