"""The provenance record of a run: its layout, its file entries, and its two copies.

A record, built from a run's documents by ``build_record``::

    {"format": 2, "run_uid": ..., "exit_status": "success", "recorded": "<ISO 8601 UTC>",
     "smeflow_version": "0.1.0", "host": ..., "instrument": ...,
     "files": [{"uri": "file://localhost/abs/path.h5", "data_key": "det_image",
                "dataset": "/entry/data/data", "sha256": "<hex>", "size": 123,
                "digest_source": "sidecar", "attributes": {...},
                "counters": {"good": 180, "corrupt": 0, "dropped": 0, ...}}],
     "inputs": [{"uri": ..., "sha256": ...}],          # derived runs only (from start)
     "raw_uid": ...,                                   # derived runs only (from start)
     "documents": {"chain": "<hex>", "count": 12, "counts": {"event": 3, ...},
                   "ledger": "<uid>.documents.jsonl", "version": ...},   # ``ledger``
     "signature": {...}}                               # added by ``keys.sign_record``

Digests are the instrument's own: ``FrameWriter.close()`` writes ``<file>.sha256`` next
to the file (``read_sidecar``). A file without a sidecar, or that changed after its
sidecar was written (written to, replaced, renamed), is hashed as found
(``"digest_source": "computed"``; a stale sidecar also adds a ``"note"``, as does a
file its writer left incomplete, ``dataflow.hdf5.failed_write``: a full disk). ``attributes``
are the frame dataset's HDF5 attributes that are JSON-able; ``counters`` are the
readout counters the detector stores in the file (``dataflow.hdf5.read_counters``:
good, corrupt and dropped frames, framing errors, stray words; ``{}`` when none), so the
run's provenance shows what the firmware link lost.

The record is kept twice: as ``<record_dir>/<uid>.json`` (``write_record_file``,
atomic) and under the top-level key ``"provenance"`` of the run's catalog metadata
(``attach_record``), with what went wrong while recording under
``"provenance_errors"``.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from sme.atomic_file import atomic_write

from ..hdf5 import (
    DEFAULT_DATASET,
    HDF5_MIMETYPE,
    HDF5ReadError,
    failed_write,
    file_sha256,
    read_counters,
)
from ..integrity import read_sidecar, sidecar_path
from ..regular_file import NotRegularFileError, check_regular, h5_open, open_regular
from .errors import ProvenanceError
from .keys import canonical_json

RECORD_FORMAT = 2
"""Version of the record layout (``"format"`` in every record). 2: ``documents``, the
chained digest of the run's document ledger (``ledger``)."""
METADATA_KEY = "provenance"
"""Top-level run-metadata key holding the record in the catalog."""
ERRORS_KEY = "provenance_errors"
"""Top-level run-metadata key listing what went wrong while recording (if anything)."""
RECORD_DIR_NAME = "provenance"
"""Sub-folder of a catalog's ``raw_dir`` holding ``<uid>.json`` records."""
MAX_ATTRIBUTE_BYTES = 64 * 1024
"""An attribute whose JSON is larger is recorded as a size note, not in full."""
MAX_ARRAY_ATTRIBUTE = 64
"""Array attributes with more elements are left out (they are data, not metadata)."""
_UID_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,127}$")


def smeflow_version() -> str:
    """The installed smeflow version (``"unknown"`` when not installed as a package)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("smeflow")
    except PackageNotFoundError:
        return "unknown"


def uri_to_path(uri: str) -> Path:
    """The local path of a ``file://localhost/abs/path`` (or ``file:///abs/path``) URI.

    Raises
    ------
    ProvenanceError
        For another scheme, a remote host or a relative path.
    """
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise ProvenanceError(f"uri {uri!r}: not a local file (expected "
                              "file://localhost/absolute/path)")
    if not parts.path.startswith("/"):
        raise ProvenanceError(f"uri {uri!r}: path is not absolute")
    path = Path(parts.path)
    decoded = Path(unquote(parts.path))
    # FrameWriter does not percent-encode; other writers may.
    return decoded if decoded != path and not path.exists() and decoded.exists() else path


def record_path(record_dir: str | os.PathLike[str], uid: str) -> Path:
    """``<record_dir>/<uid>.json``, refusing a uid that is not a plain name."""
    if not isinstance(uid, str) or not _UID_RE.match(uid):
        raise ProvenanceError(f"run uid {uid!r}: not a plain uid (letters, digits, '-', "
                              "'_'); refusing to use it as a file name")
    return Path(record_dir) / f"{uid}.json"


def sidecar_state(path: Path) -> str:
    """``"fresh"`` (``read_sidecar`` trusts it), ``"stale"`` (the file changed after it,
    or it does not name the file) or ``"none"``."""
    if read_sidecar(path) is not None:
        return "fresh"
    return "stale" if sidecar_path(path).exists() else "none"


def _json_value(value: Any) -> tuple[bool, Any]:
    """``(True, plain)`` for a JSON-able attribute value, ``(False, None)`` otherwise."""
    if isinstance(value, bytes | np.bytes_):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return False, None
    if isinstance(value, str):
        return True, value
    if isinstance(value, np.ndarray):
        if value.size > MAX_ARRAY_ATTRIBUTE or value.dtype.kind not in "biufSUO":
            return False, None
        items = [_json_value(v) for v in value.ravel().tolist()]
        if not all(ok for ok, _ in items):
            return False, None
        flat = [v for _, v in items]
        return True, np.array(flat, dtype=object).reshape(value.shape).tolist() \
            if value.ndim > 1 else flat
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int):
        return True, value
    if isinstance(value, float):
        return True, value if math.isfinite(value) else repr(value)
    return False, None


def dataset_attributes(path: str | os.PathLike[str],
                       dataset: str = DEFAULT_DATASET) -> dict[str, Any]:
    """The JSON-able HDF5 attributes of ``dataset`` in ``path`` (strings as text).

    Opened read-only; when another handle (a SWMR reader in this process, say) holds
    the file with other flags, SWMR and then lock-free opening are tried.

    Raises
    ------
    ProvenanceError
        When the file or the dataset cannot be read.
    """
    def open_file() -> Any:
        error: Exception | None = None
        for kwargs in ({}, {"swmr": True}, {"locking": False}):
            try:
                return h5_open(path, **kwargs)
            except NotRegularFileError:
                raise
            except (OSError, ValueError) as exc:
                error = error or exc
        assert error is not None
        raise error

    try:
        with open_file() as f:
            node = f[dataset]
            out: dict[str, Any] = {}
            for key in sorted(node.attrs):
                ok, value = _json_value(node.attrs[key])
                if not ok:
                    continue
                size = len(canonical_json(value))
                out[str(key)] = value if size <= MAX_ATTRIBUTE_BYTES else \
                    {"omitted": f"{size} bytes of JSON, over {MAX_ATTRIBUTE_BYTES}"}
            return out
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
        why = exc.strerror if isinstance(exc, NotRegularFileError) else exc
        raise ProvenanceError(f"{path}: cannot read the attributes of {dataset!r}: "
                              f"{why}") from None


def _file_entry(resource: Mapping[str, Any], digests: dict[Path, tuple[str, str]]
                ) -> dict[str, Any]:
    """The record's entry for one ``stream_resource``: digest, size, attributes, counters.

    ``digests`` caches per path (several data keys may share a file).
    """
    uri = str(resource.get("uri"))
    params = resource.get("parameters") or {}
    dataset = str(params.get("dataset", DEFAULT_DATASET)) if isinstance(params, Mapping) \
        else DEFAULT_DATASET
    entry: dict[str, Any] = {"uri": uri, "data_key": resource.get("data_key"),
                             "dataset": dataset, "sha256": None, "size": None}
    try:
        path = uri_to_path(uri)
    except ProvenanceError as exc:
        entry["error"] = str(exc)
        return entry
    try:
        check_regular(path)  # a named pipe or device in its place is refused, not read
        entry["size"] = path.stat().st_size
        if path not in digests:
            sidecar = read_sidecar(path)
            digests[path] = (sidecar, "sidecar") if sidecar else \
                (file_sha256(path), "computed")
        entry["sha256"], entry["digest_source"] = digests[path]
        if (failure := failed_write(path)) is not None:
            entry["note"] = (f"left by a failed write ({failure}): its writer could not "
                             "complete it; digest computed from the file as found")
        elif entry["digest_source"] == "computed" and sidecar_state(path) == "stale":
            entry["note"] = ("file changed after its writer's digest (written, replaced "
                             "or its metadata changed after the .sha256); digest computed "
                             "from the file as closed")
    except OSError as exc:
        entry["error"] = f"{path}: {exc.strerror or exc} when the run stopped"
        return entry
    if resource.get("mimetype", HDF5_MIMETYPE) == HDF5_MIMETYPE:
        try:
            entry["attributes"] = dataset_attributes(path, dataset)
        except ProvenanceError as exc:
            entry["attributes_error"] = str(exc)
        try:
            entry["counters"] = read_counters(path)
        except HDF5ReadError as exc:
            entry["counters_error"] = str(exc)
    return entry


def _inputs(start: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``inputs`` of a derived run's start document, malformed ones marked."""
    out = []
    for item in start.get("inputs") or []:
        if isinstance(item, Mapping) and isinstance(item.get("uri"), str):
            digest = item.get("sha256")
            out.append({"uri": item["uri"],
                        "sha256": digest if isinstance(digest, str) else None})
        else:
            out.append({"uri": None, "sha256": None,
                        "error": f"malformed input entry {item!r}"[:200]})
    return out


def build_record(start: Mapping[str, Any], resources: Iterable[Mapping[str, Any]],
                 stop: Mapping[str, Any] | None = None, *,
                 instrument: str | None = None,
                 documents: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The unsigned provenance record of a run from its documents (see the module doc);
    ``documents`` is the chain summary of its document ledger (``ledger.Chain``)."""
    digests: dict[Path, tuple[str, str]] = {}
    files = [_file_entry(r, digests) for r in resources]
    files.sort(key=lambda e: (e["uri"], str(e["data_key"])))
    record: dict[str, Any] = {
        "format": RECORD_FORMAT, "run_uid": str(start["uid"]),
        "exit_status": (stop or {}).get("exit_status"),
        "recorded": datetime.now(UTC).isoformat(timespec="microseconds"),
        "smeflow_version": smeflow_version(), "host": socket.gethostname(),
        "files": files}
    if instrument:
        record["instrument"] = instrument
    if documents is not None:
        record["documents"] = dict(documents)
    # a live derived run knows its inputs only at the end: its stop document lists them
    late = (stop or {}).get("inputs")
    source = stop if isinstance(late, list) and late else start
    if source is not None and "inputs" in source:
        record["inputs"] = _inputs(source)
    if isinstance(start.get("raw_uid"), str):
        record["raw_uid"] = start["raw_uid"]
    return record


def write_record_file(record_dir: str | os.PathLike[str], record: Mapping[str, Any]) -> Path:
    """Write ``<record_dir>/<run_uid>.json`` atomically (temporary file, fsync, rename)."""
    path = record_path(record_dir, str(record.get("run_uid")))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, fsync=True) as f:
        json.dump(record, f, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False)
        f.write("\n")
    return path


def load_record_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A record written by ``write_record_file``.

    Raises
    ------
    ProvenanceError
        Missing, unreadable or not a JSON object.
    """
    p = Path(path)
    try:
        with open_regular(p) as f:  # a named pipe in its place is refused, not read
            data = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise ProvenanceError(f"{p}: no such provenance record") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, NotRegularFileError) else exc
        raise ProvenanceError(f"{p}: not a readable provenance record: {why}") from None
    if not isinstance(data, dict):
        raise ProvenanceError(f"{p}: not a provenance record (expected a JSON object)")
    return data


def attach_record(run_node: Any, record: Mapping[str, Any],
                  errors: Sequence[str] = ()) -> None:
    """Store ``record`` (and recording ``errors``) in a Tiled run node's metadata.

    Also the way to attach a record kept only in its file after the catalog was
    unreachable: ``attach_record(client[uid], load_record_file(path))``.
    """
    md: dict[str, Any] = {METADATA_KEY: dict(record)}
    if errors:
        md[ERRORS_KEY] = list(errors)
    run_node.update_metadata(metadata=md, drop_revision=True)


def plain(value: Any) -> Any:
    """Tiled metadata views (``DictView``, ``ListView``) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value

