"""Keep writing runs while the catalog server is away: spool documents, replay them later.

``SpoolingWriter(client, spool_dir)`` is a RunEngine callback wrapping one
``bluesky_tiled_plugins.TiledWriter`` per run. Before each document it checks that the
server answers (``/healthz``, ``probe_timeout``); when it does not, or a write fails with
a connection error or a 5xx, the run switches to its spool file
``<spool_dir>/<start time ns>-<uid>.jsonl``: every document of the run so far and each
later one, one JSON line ``[name, doc]`` each, flushed and fsync'ed. The writer never
raises into the RunEngine (bluesky aborts a scan when a callback raises); failures are
logged.

Replaying a run **replaces** it: any partial copy on the server (whatever the failed
writer managed to send, complete or half a batch) is deleted together with its
Tiled-written tables, then a fresh ``TiledWriter`` writes all the run's documents in
order. External HDF5 files are only registered, never deleted. So a replayed run holds
each event exactly once, and replaying the same spool twice gives the same run.

Replay happens in the writer's background thread, never in the caller's (the RunEngine
waits for at most one document write, whatever a replay of a long run costs):

- while the run is open, at most every ``retry_interval`` seconds, woken by the next
  document (the run then continues live on the new writer; documents that arrive during
  the replay are appended to the spool and sent after it, in order);
- from the same thread every ``retry_interval`` seconds, and on ``flush()`` (which does
  the work in the calling thread, without holding up the document callback);
- after a process restart: ``smeflow catalog replay SPOOL_DIR --url URL`` (or
  ``replay_spool``), or a new ``SpoolingWriter`` on the same folder (its timer and
  ``flush()`` pick up the files no other live writer holds; open spool files are locked).

A run the server refuses for another reason (a 4xx: bad document, wrong key) goes to
``<…>.rejected.jsonl`` and is not retried automatically (``replay --rejected``).
One spool folder per writing process.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

from .errors import CatalogError
from .spool_files import (
    REJECTED_SUFFIX,
    SPOOL_SUFFIX,
    Document,
    SpoolError,
    encode_document,
    read_spool,
    spool_files,
)

log = logging.getLogger(__name__)

# -- helpers -----------------------------------------------------------------------------


def server_reachable(url: str, timeout: float = 1.0) -> bool:
    """True when a Tiled server at ``url`` answers ``/healthz`` within ``timeout`` seconds.

    ``url`` is the server (``http://host:port``) or any address under it.
    """
    import httpx

    target = urljoin(url if url.endswith("/") else url + "/", "/healthz")
    try:
        response = httpx.get(target, timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) means "server unreachable or failing": a
    connection error or an HTTP 5xx/429, worth retrying later unchanged."""
    import httpx

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, httpx.TransportError | ConnectionError):
            return True
        if isinstance(current, httpx.HTTPStatusError):
            code = current.response.status_code
            return code >= 500 or code == 429
        current = current.__cause__ or current.__context__
    return False


def write_run(client: Any, docs: Sequence[Document], batch_size: int | None = None) -> Any:
    """Write one run's documents with a fresh ``TiledWriter``, replacing any copy of it.

    Returns the writer, which can take the run's further documents.
    """
    import httpx

    from .event_pages import tiled_writer

    uid = docs[0][1]["uid"]
    if uid in client:
        try:
            client.delete_contents([uid], recursive=True, external_only=False)
        except httpx.HTTPStatusError as exc:  # 404: the client sent a delete again whose
            if exc.response.status_code != 404 or uid in client:  # answer came too late
                raise
    has_stop = any(name == "stop" for name, _ in docs)
    # an unfinished run must not leave events in the writer's batch
    size = batch_size if batch_size is not None else (None if has_stop else 1)
    writer = tiled_writer(client, size)
    for name, doc in docs:
        writer(name, doc)
    return writer


def _locked(handle: IO[str]) -> bool:
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def replay_spool(folder: str | os.PathLike[str], client: Any, *,
                 include_rejected: bool = False) -> list[str]:
    """Write every spooled run of ``folder`` to ``client``, oldest first; return their uids.

    Each run replaces any copy on the server; its file is deleted once written. Files
    another live ``SpoolingWriter`` holds (runs still open there) are skipped.

    Raises
    ------
    CatalogError
        The server went away or refused a run (the runs before it are done and gone
        from the folder; the rest stay).
    """
    done: list[str] = []
    for path in spool_files(folder, include_rejected):
        with open(path, encoding="utf-8") as handle:
            if not _locked(handle):
                log.info("%s: held by a live writer, skipped", path)
                continue
            docs = read_spool(path)
            try:
                write_run(client, docs)
            except Exception as exc:
                kind = "unreachable" if is_transient(exc) else "refused the run"
                raise CatalogError(f"replaying {path.name}: the server {kind} ({exc}); "
                                   f"{len(done)} run(s) replayed, run again later") from exc
            path.unlink()
            done.append(str(docs[0][1]["uid"]))
    return done


# -- the writer --------------------------------------------------------------------------


@dataclass
class _Run:
    uid: str
    started_ns: int
    lines: list[str] = field(default_factory=list)
    writer: Any = None
    spool: Path | None = None
    handle: IO[str] | None = None
    rejected: bool = False
    stopped: bool = False
    last_attempt: float = 0.0


class SpoolingWriter:
    """A document callback writing runs to a Tiled server, spooling while it is away.

    Parameters
    ----------
    client
        Tiled client of the server's runs catalog (``RemoteCatalog.client``).
    spool_dir
        Folder for the spool files (created).
    batch_size
        The live writer's batching (1: every document is on the server when the callback
        returns, so a failure loses nothing buffered; larger batches also work since a
        replay rewrites the whole run).
    probe_timeout
        Seconds the ``/healthz`` check may take before the server counts as away.
    retry_interval
        Seconds between attempts to bring a spooled run back (timer and new documents).
    """

    def __init__(self, client: Any, spool_dir: str | os.PathLike[str], *,
                 batch_size: int = 1, probe_timeout: float = 1.0,
                 retry_interval: float = 5.0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size}: must be >= 1")
        self.client = client
        self.folder = Path(spool_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.batch_size = batch_size
        self.probe_timeout = probe_timeout
        self.retry_interval = retry_interval
        self.url = str(client.context.api_uri)
        self.spooled_documents = 0
        self.replayed_runs = 0
        self._runs: dict[str, _Run] = {}
        self._owner: dict[str, str] = {}
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._wake = threading.Event()
        self._replaying: set[str] = set()
        self._timer: threading.Thread | None = None
        if spool_files(self.folder):
            self._start_timer()

    # -- the callback ------------------------------------------------------------------

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        """Take one document; never raises (errors are logged)."""
        try:
            with self._lock:
                self._take(name, doc)
        except Exception:
            log.exception("spooling writer: %s document not handled", name)

    def _run_of(self, name: str, doc: dict[str, Any]) -> str | None:
        if name == "start":
            return str(doc["uid"])
        for key in ("run_start", "descriptor", "stream_resource", "resource"):
            ref = doc.get(key)
            if isinstance(ref, str):
                if ref in self._runs:
                    return ref
                if ref in self._owner:
                    return self._owner[ref]
        open_runs = [r for r in self._runs.values() if not r.stopped]
        return open_runs[-1].uid if open_runs else None

    def _take(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            self._runs[str(doc["uid"])] = _Run(str(doc["uid"]), time.time_ns())
        uid = self._run_of(name, doc)
        if uid is None:
            log.warning("spooling writer: %s document of no known run ignored", name)
            return
        run = self._runs[uid]
        if name in {"descriptor", "stream_resource", "resource"} and "uid" in doc:
            self._owner[str(doc["uid"])] = uid
        run.lines.append(encode_document(name, doc))
        if name == "stop":
            run.stopped = True
        if run.spool is None:
            self._write_live(run, name, doc)
        else:
            self._append(run, run.lines[-1])
            if not run.rejected and time.monotonic() - run.last_attempt >= self.retry_interval:
                self._wake.set()  # the background thread replays; the caller goes on
        if run.stopped and run.spool is None:
            self._forget(run)

    def _write_live(self, run: _Run, name: str, doc: dict[str, Any]) -> None:
        if not server_reachable(self.url, self.probe_timeout):
            self._to_spool(run, "server unreachable")
            return
        try:
            if run.writer is None:
                from .event_pages import tiled_writer

                run.writer = tiled_writer(self.client, self.batch_size)
            run.writer(name, doc)
        except Exception as exc:
            if is_transient(exc):
                self._to_spool(run, f"{type(exc).__name__}: {exc}")
            else:
                self._to_spool(run, f"refused: {exc}", rejected=True)

    def _forget(self, run: _Run) -> None:
        del self._runs[run.uid]
        for key in [k for k, v in self._owner.items() if v == run.uid]:
            del self._owner[key]

    # -- spooling ----------------------------------------------------------------------

    def _open_spool(self, run: _Run, suffix: str) -> None:
        path = self.folder / f"{run.started_ns:020d}-{run.uid}{suffix}"
        handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        run.spool, run.handle = path, handle
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new file's name survives a crash
        finally:
            os.close(dir_fd)

    def _append(self, run: _Run, *lines: str) -> None:
        assert run.handle is not None
        run.handle.write("".join(f"{line}\n" for line in lines))
        run.handle.flush()
        os.fsync(run.handle.fileno())
        self.spooled_documents += len(lines)

    def _close_spool(self, run: _Run, delete: bool) -> None:
        if run.handle is not None:
            run.handle.close()
        if delete and run.spool is not None:
            run.spool.unlink(missing_ok=True)
        run.spool = run.handle = None

    def _to_spool(self, run: _Run, reason: str, rejected: bool = False) -> None:
        run.writer = None
        run.rejected = rejected
        run.last_attempt = time.monotonic()
        if rejected:
            log.error("catalog server refused run %s (%s); its documents are kept in %s",
                      run.uid, reason, self.folder)
        else:
            log.warning("catalog server away (%s): spooling run %s to %s", reason, run.uid,
                        self.folder)
        self._open_spool(run, REJECTED_SUFFIX if rejected else SPOOL_SUFFIX)
        self._append(run, *run.lines)
        if not rejected:
            self._start_timer()

    def _resume(self, run: _Run) -> bool:
        """Rewrite a spooled run on the server; True when it is live again.

        Called without the lock held: the documents so far are written, then any that
        arrived meanwhile, and only the switch to live takes the lock (so the document
        callback never waits for the network)."""
        with self._lock:
            if run.uid in self._replaying or run.spool is None or run.rejected:
                return run.spool is None
            self._replaying.add(run.uid)
            run.last_attempt = time.monotonic()
            lines = list(run.lines)
        try:
            if not server_reachable(self.url, self.probe_timeout):
                return False
            try:
                writer = write_run(self.client, [tuple(json.loads(x)) for x in lines],
                                   self.batch_size)
                while True:
                    with self._lock:
                        extra = run.lines[len(lines):]
                        if not extra:
                            self._close_spool(run, delete=True)
                            run.writer = writer
                            self.replayed_runs += 1
                            if run.stopped:
                                self._forget(run)
                            break
                    for line in extra:
                        writer(*json.loads(line))
                    lines += extra
            except Exception as exc:
                if not is_transient(exc):
                    with self._lock:
                        self._close_spool(run, delete=True)
                        self._to_spool(run, f"refused on replay: {exc}", rejected=True)
                return False
        finally:
            with self._lock:
                self._replaying.discard(run.uid)
        log.info("run %s replayed to the catalog server (%d documents)", run.uid, len(lines))
        return True

    # -- replay ------------------------------------------------------------------------

    @property
    def pending(self) -> list[Path]:
        """Spool files waiting for the server (this writer's and any left in the folder)."""
        return spool_files(self.folder)

    def flush(self) -> bool:
        """Try to send every spooled run now; True when none is left waiting. The work is
        done in the calling thread without holding up the document callback."""
        with self._lock:
            mine = [r for r in self._runs.values() if r.spool is not None and not r.rejected]
        for run in mine:
            self._resume(run)
        with self._lock:
            held = {r.spool for r in self._runs.values() if r.spool is not None}
        foreign = [p for p in spool_files(self.folder) if p not in held]
        if foreign and server_reachable(self.url, self.probe_timeout):
            try:
                self.replayed_runs += len(replay_spool(self.folder, self.client))
            except CatalogError as exc:
                log.warning("%s", exc)
        return not self.pending

    def _start_timer(self) -> None:
        if self._timer is not None and self._timer.is_alive():
            return
        self._closing.clear()
        self._timer = threading.Thread(target=self._tick, name="smeflow-spool-replay",
                                       daemon=True)
        self._timer.start()

    def _tick(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(self.retry_interval)
            self._wake.clear()
            if self._closing.is_set():
                return
            try:
                if self.flush():
                    return
            except Exception:
                log.exception("spool replay failed")

    def close(self) -> None:
        """Stop the replay timer and close spool files (they stay for a later replay)."""
        self._closing.set()
        self._wake.set()
        if self._timer is not None:
            self._timer.join(self.retry_interval + 30)
        with self._lock:
            for run in self._runs.values():
                if run.handle is not None:
                    run.handle.close()
                    run.handle = None

    def runs(self) -> Iterator[tuple[str, str]]:
        """``(uid, state)`` of the runs this writer holds: "live", "spooled" or "rejected"."""
        with self._lock:
            for run in self._runs.values():
                state = "rejected" if run.rejected else "spooled" if run.spool else "live"
                yield run.uid, state


__all__ = ["REJECTED_SUFFIX", "SPOOL_SUFFIX", "SpoolError", "SpoolingWriter", "encode_document",
           "is_transient", "read_spool", "replay_spool", "server_reachable", "spool_files",
           "write_run"]
