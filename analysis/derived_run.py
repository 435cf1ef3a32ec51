"""Derived runs: the bluesky documents of a reduction's output (``DerivedRun``: start with
``raw_uid`` and the inputs' digests, descriptors, events, the volume or patterns written to
HDF5, stop), the names of their files and the digests of their inputs.
``analysis.reduce`` re-exports every name.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import numpy as np
import numpy.typing as npt
from event_model import compose_run

from analysis.reduce_chunks import PatternChunk
from analysis.reductions import REDUCTIONS, ReductionError
from dataflow.hdf5 import FrameWriter, file_sha256
from dataflow.integrity import read_sidecar, sidecar_path

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
BoolImage = npt.NDArray[np.bool_]

DERIVED_FOLDER = "derived"
RECONSTRUCTION_KEY = "reconstruction"
Callback = Callable[[str, dict[str, Any]], Any]
"""A bluesky document callback ``(name, doc)``."""


# -- derived runs ------------------------------------------------------------------------------


def uri_path(uri: str) -> Path:
    """The local path of a ``file://localhost/abs/path`` URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise ReductionError(f"input {uri!r}: not a local file:// URI")
    return Path(unquote(parsed.path))


def file_inputs(uris: Iterable[str], *, digest: bool = True) -> list[dict[str, Any]]:
    """``[{"uri": ..., "sha256": ...}]`` for raw files (sha256 None when not ``digest``):
    the digest its writer took when it closed the file, from its ``.sha256`` sidecar
    while the file has not changed since (``dataflow.integrity.read_sidecar``, as the
    provenance record takes it), else computed from the file — a raw file is not read
    a second time in full at the end of every reduction of it."""
    out: list[dict[str, Any]] = []
    for uri in dict.fromkeys(uris):
        path = uri_path(uri)
        if digest and not path.is_file():
            raise ReductionError(f"input {uri}: file is missing")
        out.append({"uri": uri,
                    "sha256": (read_sidecar(path) or file_sha256(path)) if digest else None})
    return out


def _version() -> str:
    try:
        return importlib.metadata.version("smeflow")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - installed -e
        return "unknown"


def derived_md(raw_start: Mapping[str, Any], reduction: str, inputs: list[dict[str, Any]],
               parameters: Mapping[str, Any], *, live: bool) -> dict[str, Any]:
    """The start metadata of a derived run (see the module docstring)."""
    if reduction not in REDUCTIONS:
        raise ReductionError(f"reduction {reduction!r}: expected one of {REDUCTIONS}")
    md: dict[str, Any] = {
        "plan_name": "reduce", "raw_uid": raw_start["uid"],
        "raw_plan_name": raw_start.get("plan_name"), "raw_scan_id": raw_start.get("scan_id"),
        "reduction": reduction, "smeflow_version": _version(), "live": live,
        "inputs": inputs, **parameters}
    for key in ("sample", "beamline"):
        if key in raw_start:
            md[key] = raw_start[key]
    return md


class DerivedRun:
    """Compose a derived run's documents and send them to ``callbacks`` in order.

    The start document is sent on construction (its ``uid`` given, or a new one).
    Exceptions of a callback propagate (the caller decides: offline they are errors, the
    live callback records them).
    """

    def __init__(self, callbacks: Sequence[Callback], md: Mapping[str, Any],
                 uid: str | None = None) -> None:
        self.callbacks = list(callbacks)
        self._bundle = compose_run(uid=uid, metadata=dict(md))
        self.start: dict[str, Any] = dict(self._bundle.start_doc)
        self.uid: str = self.start["uid"]
        self._streams: dict[str, Any] = {}
        self.outputs: list[dict[str, Any]] = []
        self.volume_referenced = False
        """Whether a volume file's ``stream_resource`` was sent (a consumer may have
        stored a reference to the file)."""
        self.volume_declared = False
        """Whether the volume's ``primary`` stream (descriptor, row events) was sent."""
        self._declared_rows: list[int] = []
        self.frames = 0
        self.stop_doc: dict[str, Any] | None = None
        self._stop_sent = False
        self._emit("start", self.start)

    def _emit(self, name: str, doc: Mapping[str, Any]) -> None:
        for callback in self.callbacks:
            callback(name, dict(doc))

    def _flush(self) -> None:
        """Ask the catalog writers that hold documents back
        (:class:`~dataflow.tiled_flush.FlushableTiledWriter`, ``derived_writer()``) to
        write them now: what the stop document would make them write, before it."""
        flushing = sys.modules.get("dataflow.tiled_flush")  # (none made, none to flush)
        if flushing is None:
            return
        for callback in self.callbacks:
            if isinstance(callback, flushing.FlushableTiledWriter):
                callback.flush(self.uid)  # (this run only: others keep their batches)

    def descriptor(self, stream: str, data_keys: Mapping[str, Mapping[str, Any]]) -> None:
        """Declare ``stream`` with ``data_keys`` (once)."""
        if stream in self._streams:
            raise ReductionError(f"derived stream {stream!r} declared twice")
        bundle = self._bundle.compose_descriptor(name=stream, data_keys=dict(data_keys))
        self._streams[stream] = bundle
        self._emit("descriptor", bundle.descriptor_doc)

    def has_stream(self, stream: str) -> bool:
        """Whether ``stream`` was declared."""
        return stream in self._streams

    def event(self, stream: str, data: Mapping[str, Any]) -> None:
        """One event of ``stream`` (numpy values are sent as lists/Python numbers). Its
        keys must be the stream's: that is the check event_model's schema validation
        would make of a document composed here, without its cost (a jsonschema walk of
        every pattern, as much CPU as the integration itself at 100 frames/s)."""
        now = time.time()
        values = {k: (v.tolist() if isinstance(v, np.ndarray | np.generic) else v)
                  for k, v in data.items()}
        bundle = self._stream_of(stream, values)
        doc = bundle.compose_event(data=values, timestamps=dict.fromkeys(values, now),
                                   validate=False)
        self._emit("event", doc)

    def events(self, stream: str, columns: Mapping[str, Any]) -> None:
        """Events of ``stream`` as one event page: ``columns`` maps each of the stream's
        keys to its values in event order (a list, or an array whose first axis is the
        events). The same events as :meth:`event` of each row, in one document: the
        catalog's writer stores a page as one block (``dataflow.event_pages``), where
        it takes each event through its schema on its own."""
        now = time.time()
        values = {k: (v.tolist() if isinstance(v, np.ndarray) else
                      [x.item() if isinstance(x, np.generic) else x for x in v])
                  for k, v in columns.items()}
        lengths = {len(v) for v in values.values()}
        if len(lengths) != 1 or 0 in lengths:
            raise ReductionError(f"event page of derived stream {stream!r}: columns of "
                                 f"lengths {sorted(lengths)}, expected one length > 0")
        n = lengths.pop()
        bundle = self._stream_of(stream, values)
        doc = bundle.compose_event_page(data=values,
                                        timestamps={k: [now] * n for k in values},
                                        validate=False)
        self._emit("event_page", doc)

    def _stream_of(self, stream: str, values: Mapping[str, Any]) -> Any:
        """The bundle of ``stream``, once ``values`` are known to carry its keys."""
        bundle = self._streams[stream]
        declared = {k for k, key in bundle.descriptor_doc["data_keys"].items()
                    if key.get("external") != "STREAM:"}  # (those come in stream_datum)
        if values.keys() != declared:
            raise ReductionError(f"event of derived stream {stream!r}: data keys "
                                 f"{sorted(values)}, the stream declares {sorted(declared)}")
        return bundle

    def write_volume(self, folder: Path, name: str, volume: F32 | Iterable[F32],
                     rows: Sequence[int]) -> Path:
        """Slices ``(n, W, W)`` into the HDF5 file ``folder/name`` and one ``primary``
        event per slice (``row``, external ``reconstruction``). ``volume`` is the whole
        stack or its slabs ``(k, W, W)`` in row order (:meth:`TomoAccumulator.slabs`),
        written as they come."""
        if isinstance(volume, np.ndarray) and (volume.ndim != 3 or len(volume) != len(rows)):
            raise ReductionError(f"volume {volume.shape} and {len(rows)} rows: expected one "
                                 "slice per row")
        slabs = iter([volume] if isinstance(volume, np.ndarray) else volume)
        first = np.ascontiguousarray(next(slabs, np.empty((0, 0, 0))), dtype=np.float32)
        if first.ndim != 3 or first.shape[0] == 0:
            raise ReductionError(f"volume {first.shape}: expected slices (n, W, W) for "
                                 f"{len(rows)} rows")
        writer = volume_file(folder, name, first.shape[1:], str(self.start["raw_uid"]),
                             self.uid)
        try:
            writer.append_many(first)
            del first  # each slab goes once written: one on the host while the next comes
            for slab in slabs:
                writer.append_many(np.asarray(slab, dtype=np.float32))
                del slab
        except BaseException:  # a slab that failed to come: no half-written volume
            discard_volume(writer)
            raise
        self._announce_volume(writer, rows)
        return writer.path

    def finish_written_volume(self, writer: FrameWriter, rows: Sequence[int], frames: int,
                              **extra: Any) -> dict[str, Any]:
        """:meth:`finish_volume` for a reconstruction already in ``writer``
        (:func:`volume_file`): announced, closed, and the stop document."""
        self._announce_volume(writer, rows)
        self.frames = frames
        return self.stop("success", frames=frames, rows=rows, **extra)

    def declare_volume(self, writer: FrameWriter, rows: Sequence[int]) -> None:
        """The ``primary`` stream of a volume whose slices ``writer`` is still receiving
        (written by other processes: :mod:`dataflow.hdf5_reserve`): its descriptor and
        its events (one per slice, ``row``) go out now and the catalog's writers write
        them (:meth:`_flush`); the file is announced (``stream_resource``,
        ``stream_datum``) by :meth:`finish_written_volume`, once every slice is in it.
        The same documents as the announcement alone sends, in the same order: a
        reduction spends the catalog's requests for them while its last tasks compute.
        A reduction failing after this still ends with ``exit_status="fail"`` and no
        ``outputs``: its ``primary`` stream has rows and no volume."""
        self._check_volume(writer, rows)
        self._declare(writer, rows)
        self._flush()

    def _check_volume(self, writer: FrameWriter, rows: Sequence[int]) -> None:
        if writer.n_frames != len(rows):
            raise ReductionError(f"volume of {writer.n_frames} slices and {len(rows)} "
                                 "rows: expected one slice per row")
        if self.volume_declared and [int(row) for row in rows] != self._declared_rows:
            raise ReductionError("volume announced with other rows than it was declared "
                                 "with")

    def _declare(self, writer: FrameWriter, rows: Sequence[int]) -> None:
        """The ``primary`` stream's descriptor and row events (:meth:`declare_volume`)."""
        self.descriptor("primary", {
            RECONSTRUCTION_KEY: writer.describe_key("smeflow.analysis.reduce"),
            "row": {"source": "smeflow.analysis.reduce", "dtype": "integer", "shape": []}})
        self._declared_rows = [int(row) for row in rows]
        self.volume_declared = True
        self.events("primary", {"row": self._declared_rows})

    def _announce_volume(self, writer: FrameWriter, rows: Sequence[int]) -> None:
        """The ``primary`` stream of a written volume (one event per slice, ``row``, the
        frames as external ``reconstruction``), the file closed and listed in
        ``outputs``. When that fails (a callback refused a document, an interrupt), the
        file goes too unless its ``stream_resource`` was sent (``volume_referenced``:
        a consumer may hold it then), and is closed either way."""
        try:
            self._announce(writer, rows)
        except BaseException:
            if self.volume_referenced:
                with contextlib.suppress(Exception):
                    writer.close()
            else:
                discard_volume(writer)
            raise

    def _announce(self, writer: FrameWriter, rows: Sequence[int]) -> None:
        """The volume's documents — the ``primary`` stream's descriptor and row events
        unless :meth:`declare_volume` sent them, then the file's ``stream_resource`` and
        ``stream_datum`` — its file closed first and hashed while they go out (the
        SHA-256 of a 64 MB volume is ~45 ms of CPU; writing the documents into a catalog
        is longer): only the stop document carries the digest, so the callbacks are
        flushed (:meth:`_flush`) before it is waited for."""
        self._check_volume(writer, rows)
        assets = list(writer.asset_docs())
        writer.close_file()  # (its bytes final before anyone is told of the file)
        hashing = ThreadPoolExecutor(1, thread_name_prefix="smeflow-volume-digest")
        digest = hashing.submit(writer.digest)
        hashing.shutdown(wait=False)
        try:
            if not self.volume_declared:
                self._declare(writer, rows)
            desc = self._streams["primary"].descriptor_doc
            for doc_name, doc in assets:
                if doc_name == "stream_resource":
                    doc = {**doc, "run_start": self.uid}
                    self.volume_referenced = True
                else:
                    start, stop = doc["indices"]["start"], doc["indices"]["stop"]
                    doc = {**doc, "descriptor": desc["uid"],
                           "seq_nums": {"start": start + 1, "stop": stop + 1}}
                self._emit(doc_name, doc)
            self._flush()  # (the catalog's writes of them beside the digest, not after)
        finally:
            wait([digest])  # (no sidecar written after the caller removed the file)
        self.outputs.append({"uri": f"file://localhost{writer.path}",
                             "sha256": digest.result()})

    def finish_volume(self, raw_dir: Path, volume: F32 | Iterable[F32], rows: Sequence[int],
                      frames: int, **extra: Any) -> dict[str, Any]:
        """An offline tomography reduction's end: the reconstruction (the stack, or its
        slabs in row order) into ``raw_dir/derived/`` (``write_volume``) and the stop
        document (success, ``frames``,
        ``rows`` and ``extra``)."""
        self.write_volume(raw_dir, derived_file_name("tomo_fbp", str(self.start["raw_uid"]),
                                                     self.uid), volume, rows)
        self.frames = frames
        return self.stop("success", frames=frames, rows=rows, **extra)

    def declare_patterns(self, radial: F64, *, sigma: bool, lag: bool) -> None:
        """The ``axis`` stream (one event: the bin centres ``radial``) and the ``primary``
        stream's keys (``intensity``, ``sigma``, ``raw_seq_num``, live ``lag``)."""
        bins = int(radial.shape[0])
        arr = {"source": "smeflow.analysis.reduce", "dtype": "array", "dtype_numpy": "<f8",
               "shape": [bins]}
        self.descriptor("axis", {"radial": dict(arr)})
        self.event("axis", {"radial": radial})
        keys: dict[str, dict[str, Any]] = {"intensity": dict(arr)}
        if sigma:
            keys["sigma"] = dict(arr)
        keys["raw_seq_num"] = {"source": "smeflow.analysis.reduce", "dtype": "integer",
                               "shape": []}
        if lag:
            keys["lag"] = {"source": "smeflow.analysis.live", "dtype": "number", "shape": [],
                           "units": "s"}
        self.descriptor("primary", keys)

    def emit_patterns(self, chunk: PatternChunk, raw_seq_nums: Sequence[int],
                      lags: Sequence[float] | None = None) -> None:
        """One ``primary`` event per pattern, the chunk's in one event page (declaring
        the streams first if needed)."""
        if not self.has_stream("primary"):
            self.declare_patterns(chunk.radial, sigma=chunk.sigma is not None,
                                  lag=lags is not None)
        n = len(raw_seq_nums)
        if n == 0:
            return
        columns: dict[str, Any] = {"intensity": chunk.intensity[:n],
                                   "raw_seq_num": [int(seq) for seq in raw_seq_nums]}
        if chunk.sigma is not None:
            columns["sigma"] = chunk.sigma[:n]
        if lags is not None:
            columns["lag"] = [float(lag) for lag in lags]
        self.events("primary", columns)
        self.frames += n

    def stop(self, exit_status: str = "success", reason: str = "",
             **extra: Any) -> dict[str, Any]:
        """Send the stop document (``extra`` keys added: outputs, lag, …); idempotent once
        sent. When a callback raises on it (a writer refused the run's files at the end),
        ``stop_doc`` keeps it but a later ``stop("fail", …)`` replaces it."""
        if self._stop_sent and self.stop_doc is not None:
            return self.stop_doc
        if self.stop_doc is None:
            doc = dict(self._bundle.compose_stop(exit_status=exit_status,  # type: ignore[arg-type]
                                                 reason=reason))
        else:  # event_model composes one stop per run: the next one is the same, amended
            doc = {**self.stop_doc, "uid": str(uuid.uuid4()), "time": time.time(),
                   "exit_status": exit_status, "reason": reason}
        doc.update({"outputs": list(self.outputs), **extra})
        self.stop_doc = doc
        self._emit("stop", doc)
        self._stop_sent = True
        return doc


def volume_file(folder: Path, name: str, shape: Sequence[int], raw_uid: str,
                derived_uid: str, *, reserved: bool = False) -> FrameWriter:
    """The HDF5 file ``folder/name`` of a reconstruction (float32 slices of ``shape``, one
    chunk each); ``reserved``: a :class:`~dataflow.hdf5_reserve.ReservedFrameWriter`,
    whose slices other processes write."""
    from dataflow.hdf5_reserve import ReservedFrameWriter

    kind = ReservedFrameWriter if reserved else FrameWriter
    return kind(folder, name, shape, dtype=np.float32, data_key=RECONSTRUCTION_KEY,
                layout="per_frame", attrs={"raw_uid": raw_uid, "derived_uid": derived_uid},
                detector=False)  # (NeXus: the entry's NXdata, no detector's frames)


def discard_volume(writer: FrameWriter) -> None:
    """Remove a volume file nothing references (a reduction that failed or was
    interrupted before announcing it) and its ``.sha256`` sidecar, closing it first."""
    with contextlib.suppress(Exception):  # (the reduction's own error is the one raised)
        writer.close()
    writer.path.unlink(missing_ok=True)
    sidecar_path(writer.path).unlink(missing_ok=True)


def derived_file_name(reduction: str, raw_uid: str, derived_uid: str) -> str:
    """``derived/<reduction>_<raw uid[:8]>_<derived uid[:8]>.h5`` inside ``raw_dir``."""
    return f"{DERIVED_FOLDER}/{reduction}_{raw_uid[:8]}_{derived_uid[:8]}.h5"
