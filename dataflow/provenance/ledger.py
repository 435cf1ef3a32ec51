"""A run's documents, exactly as the RunEngine emitted them, chained into one digest.

The provenance record proves a run's *files*; the ledger proves its *documents*: start,
descriptors, events and event pages, stream resources and datums (and the older
resource/datum documents), stop — in the order they were emitted. Each document is one
line ``[name, doc]`` of canonical JSON (sorted keys, no whitespace, numpy values as plain
numbers and lists) in ``<record_dir>/<uid>.documents.jsonl``, and the record carries the
chained digest of those lines::

    H0 = SHA-256("smeflow provenance chain v1\\n" + run uid)
    Hi = SHA-256(H(i-1) + SHA-256(line i))        (raw 32-byte digests)

so changing, removing, adding or reordering any document changes the chain, and the
record (signed, when a key is configured) fixes the chain. ``verify`` recomputes the
chain from the ledger, then compares what the catalog serves with the ledger: the start
and stop documents, every event's data and timestamps (by ``seq_num``, per stream) and
the number of frames announced per data key (frames announced by ``resource``/``datum``
documents counted as the catalog's writer converts them, ``event_pages.stream_form``) —
so an edit in the catalog's database shows
too, although Tiled stores the documents in its own form (tables, merged announcements).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..event_pages import ANNOUNCING, stream_form
from ..spool_files import decode_document, json_default
from .errors import ProvenanceError

CHAIN_VERSION = "smeflow provenance chain v1"
LEDGER_SUFFIX = ".documents.jsonl"
_DOC_KINDS = ("start", "descriptor", "event", "event_page", "stream_resource",
              "stream_datum", "resource", "datum", "datum_page", "stop")


def document_line(name: str, doc: Any) -> str:
    """The canonical ledger line of one document (NaN and infinities kept as JSON's
    non-standard ``NaN``/``Infinity``: detector data may hold them)."""
    return json.dumps([name, doc], default=json_default, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=True)


def ledger_path(record_dir: str | os.PathLike[str], uid: str) -> Path:
    """``<record_dir>/<uid>.documents.jsonl``."""
    return Path(record_dir) / f"{uid}{LEDGER_SUFFIX}"


@dataclass
class Chain:
    """The running chained digest of a run's ledger lines."""

    run_uid: str
    digest: bytes = b""
    count: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.digest:
            self.digest = hashlib.sha256(f"{CHAIN_VERSION}\n{self.run_uid}".encode()).digest()

    def add(self, line: str) -> None:
        """Chain one ledger line."""
        name = line[2:line.index('"', 2)] if line.startswith('["') else "?"
        self.digest = hashlib.sha256(self.digest
                                     + hashlib.sha256(line.encode("utf-8")).digest()).digest()
        self.count += 1
        self.counts[name] = self.counts.get(name, 0) + 1

    def summary(self, ledger: str) -> dict[str, Any]:
        """What the record keeps: the chain, the number of documents of each kind."""
        return {"chain": self.digest.hex(), "count": self.count,
                "counts": dict(sorted(self.counts.items())), "ledger": ledger,
                "version": CHAIN_VERSION}


class LedgerWriter:
    """Appends a run's documents to its ledger and chains them as they come."""

    def __init__(self, record_dir: str | os.PathLike[str], uid: str) -> None:
        self.path = ledger_path(record_dir, uid)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.chain = Chain(uid)
        self._handle: IO[str] | None = open(self.path, "w", encoding="utf-8")  # noqa: SIM115

    def add(self, name: str, doc: Mapping[str, Any]) -> None:
        """One document, in emission order."""
        line = document_line(name, doc)
        self.chain.add(line)
        if self._handle is not None:
            self._handle.write(line + "\n")

    def close(self) -> dict[str, Any]:
        """Flush the ledger to disk; the chain summary for the record."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
        return self.chain.summary(self.path.name)


def read_ledger(path: str | os.PathLike[str]) -> tuple[list[tuple[str, dict[str, Any]]], Chain]:
    """The documents of a ledger and their chain (recomputed from its lines).

    Raises
    ------
    ProvenanceError
        Missing, unreadable, or a line that is not ``[name, doc]``.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ProvenanceError(f"{p}: no such document ledger") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvenanceError(f"{p}: unreadable document ledger: {exc}") from None
    docs: list[tuple[str, dict[str, Any]]] = []
    chain = Chain(p.name.removesuffix(LEDGER_SUFFIX))
    for number, line in enumerate(lines, 1):
        try:
            name, doc = decode_document(line)
        except ValueError as exc:
            raise ProvenanceError(f"{p}:{number}: not a ledger line ({exc})") from None
        chain.add(line)
        docs.append((name, doc))
    return docs, chain


def _events(docs: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(descriptor uid, event) of every event, event pages unpacked."""
    for name, doc in docs:
        if name == "event":
            yield doc["descriptor"], doc
        elif name == "event_page":
            for i, seq in enumerate(doc.get("seq_num", [])):
                yield doc["descriptor"], {
                    "seq_num": seq, "time": doc["time"][i],
                    "data": {k: v[i] for k, v in doc.get("data", {}).items()},
                    "timestamps": {k: v[i] for k, v in doc.get("timestamps", {}).items()}}


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values (NaN equal to NaN; ints equal to the same floats)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def compare_with_catalog(docs: list[tuple[str, dict[str, Any]]], run_node: Any) -> list[str]:
    """Every difference between the ledger's documents and what the catalog serves for
    the run (empty: they agree). See the module docstring for what is compared."""
    from ..run_queries import stream_length
    from .record import plain

    problems: list[str] = []
    md = plain(run_node.metadata or {})
    for kind in ("start", "stop"):
        mine = next((d for n, d in docs if n == kind), None)
        theirs = md.get(kind)
        if mine is None and theirs is None:
            continue
        if mine is None or theirs is None or not _same(json.loads(document_line(kind, mine))[1],
                                                      theirs):
            problems.append(f"the {kind} document in the catalog differs from the ledger")
    if any(name in ANNOUNCING for name, _ in docs):  # as the catalog stores them
        docs = stream_form(docs)
    streams = {d["uid"]: d.get("name", "primary") for n, d in docs if n == "descriptor"}
    by_stream: dict[str, list[dict[str, Any]]] = {}
    for descriptor, event in _events(docs):
        by_stream.setdefault(streams.get(descriptor, "?"), []).append(event)
    for stream, events in sorted(by_stream.items()):
        problems += _compare_events(stream, events, run_node)
    announced: dict[str, int] = {}
    resources = {d["uid"]: d for n, d in docs if n == "stream_resource"}
    for name, doc in docs:
        if name == "stream_datum" and doc.get("stream_resource") in resources:
            key = f"{streams.get(doc['descriptor'], '?')}/" \
                  f"{resources[doc['stream_resource']]['data_key']}"
            announced[key] = announced.get(key, 0) + \
                int(doc["indices"]["stop"]) - int(doc["indices"]["start"])
    for key, n in sorted(announced.items()):
        stream, data_key = key.split("/", 1)
        have = stream_length(run_node[stream], data_key) if stream in run_node else 0
        if have != n:
            problems.append(f"{key}: the catalog has {have} frames, the ledger announces {n}")
    return problems


def _column(node: Any, key: str) -> list[Any]:
    """One column of a stream's event table, as plain values."""
    return list(np.asarray(node[key].read()).tolist())


def _compare_events(stream: str, events: list[dict[str, Any]], run_node: Any) -> list[str]:
    if stream not in run_node:
        return [f"stream {stream}: in the ledger ({len(events)} events), not in the catalog"]
    node = run_node[stream]
    events = sorted(events, key=lambda e: int(e["seq_num"]))
    try:
        seq = [int(v) for v in _column(node, "seq_num")] if "seq_num" in node else []
    except Exception as exc:
        return [f"stream {stream}: the catalog cannot read its events ({exc})"]
    if seq != [int(e["seq_num"]) for e in events]:
        return [f"stream {stream}: the catalog has {len(seq)} events ({seq[:4]}…), the "
                f"ledger {len(events)}"]
    problems = []
    keys = sorted({k for e in events for k in e.get("data", {})})
    if "time" in node:  # when each event was taken
        keys.append("time")
    for key in keys:
        if key not in node:
            problems.append(f"stream {stream}: data key {key} missing from the catalog")
            continue
        stored = _column(node, key)
        for i, event in enumerate(events):
            mine = event.get("time") if key == "time" else event["data"].get(key)
            value = json.loads(document_line("v", mine))[1]
            if not _same(value, stored[i]):
                problems.append(f"stream {stream}: {key} of event {event['seq_num']} is "
                                f"{_shown(stored[i])} in the catalog, {_shown(value)} in "
                                "the ledger")
                break
    return problems


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


__all__ = ["CHAIN_VERSION", "LEDGER_SUFFIX", "Chain", "LedgerWriter", "compare_with_catalog",
           "document_line", "ledger_path", "read_ledger"]
