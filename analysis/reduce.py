"""Reduction of one bluesky run into a *derived run*: tomographic slices or 1D patterns.

Two reductions exist, chosen from the raw run's start document (:func:`reduction_for`):

``"tomo_fbp"``
    Runs of ``tomo_scan`` (and any run with ``"angles"`` or ``"rotation_axis"`` in its
    start document and the streams dark/flat/primary, e.g. a fly tomography plan). Darks
    and flats are averaged, every projection is normalised (``(p - dark) / (flat -
    dark)``), ``-log`` gives line integrals, and the OpenCL filtered back-projection
    reconstructs one slice per detector row (or the rows asked for), float32. The angle
    of each projection is the primary stream's reading of the rotation stage (data key =
    start ``"rotation_axis"``) when the events carry it — a fly scan's measured angles —
    else the start document's ``"angles"``.
``"azint1d"``
    Runs with a ``"geometry"`` in their start document (``PoniGeometry.to_metadata``):
    every frame of the primary stream becomes a 1D pattern (``integrate1d``, 500 bins in
    ``2th_deg`` by default, Poisson error propagation).

Chunks (so that a Dask version can map them onto workers): the frames are split into
chunks that are reduced independently by pure functions on numpy arrays, then combined.
Back-projection is linear in the projections, so a chunk of ``n_k`` projections gives a
partial reconstruction ``fbp_k`` (scaled for ``n_k`` angles) and the volume is
``sum_k n_k fbp_k / sum_k n_k`` (:func:`tomo_chunk`, :func:`tomo_combine`); detector
rows are independent as well (``rows=``), so chunks may also split the rows. Patterns
are per frame (:func:`azint_chunk`, :func:`azint_combine`). The live callback
(:mod:`analysis.live`) feeds the same functions a few frames at a time, keeping the
running sum (:class:`TomoAccumulator`).

Where results go — a derived run, not a stream of the raw run. A raw run is closed when
its stop document is written and must stay exactly what the instrument recorded; a
reduction may be redone with other parameters or another software version, and each
attempt must be kept apart with its own provenance and its own success or failure. So
every reduction is a separate bluesky run composed with ``event_model.compose_run``:

* start document: ``plan_name="reduce"``, ``raw_uid`` (the link; the catalog finds the
  derived runs of a raw run with ``Key("raw_uid") == uid``), ``raw_plan_name``,
  ``raw_scan_id``, ``reduction``, ``smeflow_version``, ``live`` (reduced while acquired
  or offline), ``inputs`` (``[{"uri": "file://localhost/…", "sha256": hex}]``, every raw
  HDF5 file the run refers to) and the parameters (tomography: ``rows`` asked for,
  None for all, and ``floor``; diffraction: ``bins``, ``unit``, ``error_model``,
  ``geometry``);
* ``"primary"`` stream: tomography — one event per slice, ``row`` in the event and the
  slice ``reconstruction`` (``(W, W)`` float32) in an HDF5 file of the catalog's
  ``raw/derived/`` folder announced with ``stream_resource``/``stream_datum``;
  diffraction — one event per frame with the in-event arrays ``intensity`` and
  ``sigma`` (``[bins]`` float64; TiledWriter stores arrays of more than 16 values as
  zarr) and ``raw_seq_num`` (and ``lag`` when reduced live); a one-event ``"axis"``
  stream holds the bin centres ``radial``;
* stop document: ``exit_status`` (``"fail"`` with the ``reason`` when the reduction
  failed), ``frames`` (frames reduced), ``outputs`` (derived files with their SHA-256)
  and for tomography the ``rows`` reconstructed and ``angles_from`` (``"events"``: the
  rotation readings, ``"start"``: the start document's ``angles``); when live also
  ``lag_max_s``/``lag_mean_s``, ``dropped_frames`` and ``inputs`` (a live derived run
  starts with the raw run, before any raw file exists, so its start document has
  ``"inputs": []`` and the stop document the complete list with digests).

The documents go to a list of document callbacks (the catalog's ``TiledWriter`` by
default), so other consumers (a provenance recorder) can be attached.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import numpy as np
import numpy.typing as npt
from event_model import compose_run

from dataflow.hdf5 import FrameWriter, file_sha256
from dataflow.pixel_mask import MASK_STREAM, as_bool
from geometry import PoniGeometry
from sme.progress import progress

if TYPE_CHECKING:
    from analysis.azint import AzimuthalIntegrator
    from dataflow.catalog import RunCatalog

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_CHUNK_FRAMES",
    "DEFAULT_UNIT",
    "REDUCTIONS",
    "AzintParams",
    "Callback",
    "DerivedRun",
    "PatternChunk",
    "ReductionError",
    "ReductionSummary",
    "TomoAccumulator",
    "TomoParams",
    "TomoPartial",
    "TomoReferences",
    "azint_chunk",
    "azint_combine",
    "check_derived_folder",
    "checked_mask",
    "derived_md",
    "file_inputs",
    "image_key",
    "reduce_run",
    "reduction_for",
    "run_mask",
    "select_rows",
    "stop_failed",
    "tomo_chunk",
    "tomo_combine",
    "tomo_references",
    "tomo_streams",
    "uri_path",
]

REDUCTIONS = ("tomo_fbp", "azint1d")
DEFAULT_BINS = 500
DEFAULT_UNIT = "2th_deg"
DEFAULT_CHUNK_FRAMES = 16
DERIVED_FOLDER = "derived"
RECONSTRUCTION_KEY = "reconstruction"
TOMO_DEFAULT_STREAMS = {"dark": "dark", "flat": "flat", "projection": "primary"}

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
BoolImage = npt.NDArray[np.bool_]
Callback = Callable[[str, dict[str, Any]], Any]
"""A bluesky document callback ``(name, doc)``."""


class ReductionError(ValueError):
    """A run that cannot be reduced (names the run and the missing or bad key)."""


# -- choosing a reduction ------------------------------------------------------------------


def tomo_streams(start: Mapping[str, Any]) -> dict[str, str]:
    """The dark, flat and projection stream names (start ``"streams"`` or the defaults)."""
    given = start.get("streams")
    out = dict(TOMO_DEFAULT_STREAMS)
    if isinstance(given, Mapping):
        out.update({k: str(v) for k, v in given.items() if k in out})
    return out


def reduction_for(start: Mapping[str, Any], streams: Collection[str] | None = None) -> str | None:
    """Which reduction applies to a run (``"tomo_fbp"``, ``"azint1d"``) or None.

    ``streams`` (the run's stream names) confirms a tomography layout when known; the
    live callback decides from the start document alone and checks the streams later.
    """
    if "geometry" in start:
        return "azint1d"
    tomo_like = start.get("plan_name") == "tomo_scan" or "angles" in start \
        or "rotation_axis" in start
    layout_ok = streams is None or set(tomo_streams(start).values()) <= set(streams)
    return "tomo_fbp" if tomo_like and layout_ok else None


def image_key(data_keys: Mapping[str, Mapping[str, Any]], start: Mapping[str, Any],
              where: str = "descriptor") -> str:
    """The data key of the detector frames: the external 2-D key of a stream.

    With several, ``<start["detector"]>_image`` decides. Raises ``ReductionError``
    when there is none (or no way to choose)."""
    keys = [k for k, v in data_keys.items()
            if "external" in v and len(v.get("shape") or []) == 2]
    if len(keys) == 1:
        return keys[0]
    preferred = f"{start.get('detector')}_image"
    if preferred in keys:
        return preferred
    if not keys:
        raise ReductionError(f"{where}: no external 2-D frame data key to reduce "
                             f"(data keys: {', '.join(data_keys) or 'none'})")
    raise ReductionError(f"{where}: several frame data keys ({', '.join(keys)}) and none "
                         f"is {preferred!r}")


def select_rows(rows: Sequence[int] | None, height: int) -> list[int]:
    """The detector rows to reconstruct: ``rows`` checked against ``height`` (None: all)."""
    if rows is None:
        return list(range(height))
    out = [int(r) for r in rows]
    if not out:
        raise ReductionError("argument `rows`: expected at least one row")
    bad = [r for r in out if not 0 <= r < height]
    if bad:
        raise ReductionError(f"argument `rows`: row(s) {bad} outside the detector's rows "
                             f"0..{height - 1}")
    if len(set(out)) != len(out):
        raise ReductionError(f"argument `rows`: repeated rows in {out}")
    return out


# -- tomography chunks -----------------------------------------------------------------------


@dataclass(frozen=True)
class TomoParams:
    """Tomography reduction parameters: ``rows`` to reconstruct (None: all), the ``-log``
    ``floor``, and the OpenCL ``device`` choice."""

    rows: tuple[int, ...] | None = None
    floor: float = 1e-6
    device: str | None = None

    def metadata(self) -> dict[str, Any]:
        """The parameters as start-document values (``rows`` None: every detector row;
        the stop document lists the rows reconstructed)."""
        return {"rows": None if self.rows is None else list(self.rows), "floor": self.floor}


@dataclass(frozen=True)
class TomoReferences:
    """Mean dark and flat frames (float32), the references of flat-field normalisation,
    and the run's pixel ``mask`` (True: ignore the pixel), if it published one."""

    dark: F32
    flat: F32
    mask: BoolImage | None = None

    def rows(self, rows: Sequence[int] | slice) -> TomoReferences:
        """The references restricted to ``rows`` (in that order)."""
        idx: Any = rows if isinstance(rows, slice) else np.asarray(rows, dtype=np.intp)
        return TomoReferences(np.ascontiguousarray(self.dark[idx]),
                              np.ascontiguousarray(self.flat[idx]),
                              None if self.mask is None
                              else np.ascontiguousarray(self.mask[idx]))


def tomo_references(darks: npt.ArrayLike, flats: npt.ArrayLike,
                    mask: npt.ArrayLike | None = None) -> TomoReferences:
    """Average the dark and flat stacks ``(n, rows, cols)``; ``ReductionError`` if empty
    or when the pixel ``mask`` (NeXus bits or bool, :mod:`dataflow.pixel_mask`) does not
    have the frames' shape."""
    from analysis.tomo import average_reference

    d, f = np.asarray(darks), np.asarray(flats)
    for name, stack in (("dark", d), ("flat", f)):
        if stack.ndim != 3 or stack.shape[0] == 0:
            raise ReductionError(f"tomography needs at least one {name} frame; got "
                                 f"{name} stack of shape {stack.shape}")
    if d.shape[1:] != f.shape[1:]:
        raise ReductionError(f"dark frames {d.shape[1:]} and flat frames {f.shape[1:]} "
                             "differ in shape")
    return TomoReferences(average_reference(d), average_reference(f),
                          None if mask is None else checked_mask(mask, d.shape[1:]))


def checked_mask(mask: npt.ArrayLike, shape: tuple[int, ...]) -> BoolImage:
    """``mask`` as bool of the frames' ``shape`` (True: ignore); ``ReductionError`` when
    it is another shape or not integer bits."""
    try:
        return as_bool(mask, shape)
    except ValueError as exc:
        raise ReductionError(str(exc)) from None


@dataclass(frozen=True)
class TomoPartial:
    """A chunk's reconstruction ``(rows, W, W)`` float32, scaled for its own ``n`` angles."""

    volume: F32
    n: int


class _RowsPrep:
    """The line integrals of chosen ``rows`` of projections: the references of those rows
    and the pixels to fill (mask, dead flats), prepared once (:mod:`analysis.tomo_stream`)."""

    def __init__(self, refs: TomoReferences, rows: Sequence[int], floor: float) -> None:
        from analysis.tomo_stream import fill_for

        self.refs = refs
        self.rows = list(rows)
        self.idx = np.asarray(self.rows, dtype=np.intp)
        self.sub = refs.rows(self.rows)
        self.fill = fill_for(self.sub.mask, self.sub.dark, self.sub.flat)
        self.floor = floor

    def __call__(self, projections: npt.ArrayLike, angles: npt.ArrayLike) -> tuple[F32, F64]:
        """``(k, rows, cols)`` line integrals and the ``k`` angles, checked."""
        from analysis.tomo_stream import line_integrals

        p = np.asarray(projections)
        a = np.asarray(angles, dtype=np.float64)
        if p.ndim != 3 or a.ndim != 1 or p.shape[0] != a.shape[0]:
            raise ReductionError(f"chunk of projections {p.shape} and {a.shape} angles: "
                                 "expected (angles, rows, cols) with one angle per projection")
        if p.shape[1:] != self.refs.dark.shape:
            raise ReductionError(f"projections {p.shape[1:]} and dark/flat references "
                                 f"{self.refs.dark.shape} differ in shape")
        if not np.all(np.isfinite(a)):
            raise ReductionError(f"angles {a.tolist()}: not finite")
        return line_integrals(p[:, self.idx, :], self.sub.dark, self.sub.flat, self.fill,
                              self.floor), a


def tomo_chunk(projections: npt.ArrayLike, angles: npt.ArrayLike, refs: TomoReferences, *,
               rows: Sequence[int] | None = None, floor: float = 1e-6,
               device: str | None = None) -> TomoPartial:
    """Reconstruct ``rows`` from one chunk of projections ``(k, rows, cols)`` at ``angles``
    (degrees): a pure function of numpy arrays (a Dask task)."""
    from analysis.fbp import FilteredBackProjection

    p = np.asarray(projections)
    chosen = select_rows(rows, int(p.shape[1]) if p.ndim == 3 else 0)
    mu, a = _RowsPrep(refs, chosen, floor)(p, angles)
    plan = FilteredBackProjection(a, int(p.shape[2]), degrees=True, device=device)
    volume = plan(np.ascontiguousarray(np.swapaxes(mu, 0, 1)))
    return TomoPartial(np.asarray(volume, dtype=np.float32), int(p.shape[0]))


def tomo_combine(partials: Iterable[TomoPartial]) -> F32:
    """The reconstruction from chunk partials: ``sum_k n_k fbp_k / sum_k n_k``."""
    total: F32 | None = None
    n = 0
    for part in partials:
        weighted = part.volume * np.float32(part.n)
        total = weighted if total is None else total + weighted
        n += part.n
    if total is None or n == 0:
        raise ReductionError("no projections to reconstruct")
    return np.asarray(total / np.float32(n), dtype=np.float32)


class TomoAccumulator:
    """The running reconstruction of a tomography run, one projection (or a few) at a
    time (live use): each :meth:`add` filters and back-projects its projections into a
    sum kept on the OpenCL device (:class:`analysis.tomo_stream.StreamingFBP`), so its
    cost is that of its own projections, and :meth:`result` is the reconstruction of
    every projection added so far.
    """

    def __init__(self, refs: TomoReferences, rows: Sequence[int], *, floor: float = 1e-6,
                 device: str | None = None) -> None:
        from analysis.tomo_stream import StreamingFBP

        self.refs = refs
        self.rows = select_rows(rows, refs.dark.shape[0])
        self.floor = floor
        self.device = device
        self._prep = _RowsPrep(refs, self.rows, floor)
        self._fbp = StreamingFBP(int(refs.dark.shape[1]), len(self.rows), device=device)

    @property
    def n(self) -> int:
        """Projections added so far."""
        return self._fbp.n

    def add(self, projections: npt.ArrayLike, angles: npt.ArrayLike) -> None:
        """Back-project projections ``(k, rows, cols)`` at ``angles`` (degrees) into the sum."""
        mu, a = self._prep(projections, angles)
        self._fbp.add(mu, a)

    def result(self) -> F32:
        """The reconstruction ``(rows, W, W)`` float32 of every projection added so far."""
        if self.n == 0:
            raise ReductionError("no projections to reconstruct")
        return self._fbp.result()

    def slabs(self) -> Iterator[F32]:
        """:meth:`result` a few rows at a time (``(k, W, W)`` slabs in row order), for
        writing it out without the whole volume on the host."""
        if self.n == 0:
            raise ReductionError("no projections to reconstruct")
        return self._fbp.slabs()


# -- diffraction chunks ----------------------------------------------------------------------


@dataclass(frozen=True)
class AzintParams:
    """1D integration parameters: ``bins``, ``unit``, the ``error_model`` (Poisson, asked
    for explicitly: the integrator's default, like pyFAI's, is none) and the pixel
    splitting ``method`` (``"no"``: one bin per pixel, the fastest)."""

    bins: int = DEFAULT_BINS
    unit: str = DEFAULT_UNIT
    error_model: str | None = "poisson"
    device: str | None = None
    method: str = "no"

    def __post_init__(self) -> None:
        from analysis.azint_args import split_of
        from geometry import RADIAL_UNITS as UNITS

        try:
            split_of(self.method)
        except ValueError as exc:
            raise ReductionError(f"argument `method`: {exc}") from None
        if isinstance(self.bins, bool) or not isinstance(self.bins, int) or self.bins < 1:
            raise ReductionError(f"argument `bins`: expected an integer >= 1, got "
                                 f"{self.bins!r}")
        if self.unit not in UNITS:
            raise ReductionError(f"argument `unit`: {self.unit!r} is not one of "
                                 f"{', '.join(UNITS)}")

    def metadata(self, geometry: PoniGeometry) -> dict[str, Any]:
        """The parameters as start-document values."""
        return {"bins": self.bins, "unit": self.unit, "error_model": self.error_model,
                "method": self.method, "geometry": geometry.to_metadata()}


@dataclass(frozen=True)
class PatternChunk:
    """Patterns of consecutive frames from frame ``first``: ``intensity`` and ``sigma``
    ``(k, bins)`` float64 (``sigma`` None without error model), bin centres ``radial``."""

    first: int
    radial: F64
    intensity: F64
    sigma: F64 | None


def geometry_from(start: Mapping[str, Any]) -> PoniGeometry:
    """The run's detector geometry (start ``"geometry"``), ``PoniError`` when malformed."""
    return PoniGeometry.from_metadata(start.get("geometry"), where="start document "
                                      "'geometry'")


def azint_chunk(frames: npt.ArrayLike, integrator: AzimuthalIntegrator, params: AzintParams,
                first: int = 0, mask: BoolImage | None = None) -> PatternChunk:
    """Integrate each frame of ``(k, rows, cols)`` to a 1D pattern (one Dask task): one
    call of the integrator's stack API for all ``k`` frames, ignoring the pixels where
    ``mask`` is True (the run's pixel mask) and, always, the detector's module gaps (a
    mask given to the integrator replaces the detector's, as in pyFAI)."""
    stack = np.asarray(frames)
    if stack.ndim != 3:
        raise ReductionError(f"frames: expected (n, rows, cols), got shape {stack.shape}")
    if stack.shape[1:] != integrator.geometry.shape:
        raise ReductionError(f"frames {stack.shape[1:]} do not match the geometry's "
                             f"detector shape {integrator.geometry.shape}")
    if mask is not None:
        mask = mask | integrator.geometry.detector.mask
    res = integrator.integrate1d(np.ascontiguousarray(stack), params.bins, unit=params.unit,
                                 error_model=params.error_model, mask=mask,
                                 method=params.method)
    sigma = None if res.sigma is None else np.asarray(res.sigma, dtype=np.float64)
    return PatternChunk(first, np.asarray(res.radial, dtype=np.float64),
                        np.asarray(res.intensity, dtype=np.float64), sigma)


def azint_combine(chunks: Iterable[PatternChunk]) -> PatternChunk:
    """Concatenate pattern chunks in frame order; they must be contiguous."""
    ordered = sorted(chunks, key=lambda c: c.first)
    if not ordered:
        raise ReductionError("no frames to integrate")
    expected = ordered[0].first
    for c in ordered:
        if c.first != expected:
            raise ReductionError(f"pattern chunks not contiguous: chunk starts at frame "
                                 f"{c.first}, expected {expected}")
        expected += c.intensity.shape[0]
    sig = None
    if all(c.sigma is not None for c in ordered):
        sig = np.concatenate([c.sigma for c in ordered if c.sigma is not None])
    return PatternChunk(ordered[0].first, ordered[0].radial,
                        np.concatenate([c.intensity for c in ordered]), sig)


# -- derived runs ------------------------------------------------------------------------------


def uri_path(uri: str) -> Path:
    """The local path of a ``file://localhost/abs/path`` URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise ReductionError(f"input {uri!r}: not a local file:// URI")
    return Path(unquote(parsed.path))


def file_inputs(uris: Iterable[str], *, digest: bool = True) -> list[dict[str, Any]]:
    """``[{"uri": ..., "sha256": ...}]`` for raw files (sha256 None when not ``digest``)."""
    out: list[dict[str, Any]] = []
    for uri in dict.fromkeys(uris):
        path = uri_path(uri)
        if digest and not path.is_file():
            raise ReductionError(f"input {uri}: file is missing")
        out.append({"uri": uri, "sha256": file_sha256(path) if digest else None})
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

    The start document is sent on construction. Exceptions of a callback propagate
    (the caller decides: offline they are errors, the live callback records them).
    """

    def __init__(self, callbacks: Sequence[Callback], md: Mapping[str, Any]) -> None:
        self.callbacks = list(callbacks)
        self._bundle = compose_run(metadata=dict(md))
        self.start: dict[str, Any] = dict(self._bundle.start_doc)
        self.uid: str = self.start["uid"]
        self._streams: dict[str, Any] = {}
        self.outputs: list[dict[str, Any]] = []
        self.frames = 0
        self.stop_doc: dict[str, Any] | None = None
        self._stop_sent = False
        self._emit("start", self.start)

    def _emit(self, name: str, doc: Mapping[str, Any]) -> None:
        for callback in self.callbacks:
            callback(name, dict(doc))

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
        """One event of ``stream`` (numpy values are sent as lists/Python numbers)."""
        now = time.time()
        values = {k: (v.tolist() if isinstance(v, np.ndarray | np.generic) else v)
                  for k, v in data.items()}
        doc = self._streams[stream].compose_event(data=values,
                                                  timestamps=dict.fromkeys(values, now))
        self._emit("event", doc)

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
        with FrameWriter(folder, name, first.shape[1:], dtype=np.float32,
                         data_key=RECONSTRUCTION_KEY, layout="per_frame",
                         attrs={"raw_uid": str(self.start["raw_uid"]),
                                "derived_uid": self.uid}) as writer:
            for slab in itertools.chain([first], slabs):
                writer.append_many(np.asarray(slab, dtype=np.float32))
            if writer.n_frames != len(rows):
                raise ReductionError(f"volume of {writer.n_frames} slices and {len(rows)} "
                                     "rows: expected one slice per row")
            self.descriptor("primary", {
                RECONSTRUCTION_KEY: writer.describe_key("smeflow.analysis.reduce"),
                "row": {"source": "smeflow.analysis.reduce", "dtype": "integer",
                        "shape": []}})
            desc = self._streams["primary"].descriptor_doc
            for doc_name, doc in writer.asset_docs():
                if doc_name == "stream_resource":
                    doc = {**doc, "run_start": self.uid}
                else:
                    start, stop = doc["indices"]["start"], doc["indices"]["stop"]
                    doc = {**doc, "descriptor": desc["uid"],
                           "seq_nums": {"start": start + 1, "stop": stop + 1}}
                self._emit(doc_name, doc)
            for row in rows:
                self.event("primary", {"row": int(row)})
            digest = writer.close()
        self.outputs.append({"uri": f"file://localhost{writer.path}", "sha256": digest})
        return writer.path

    def finish_volume(self, raw_dir: Path, volume: F32, rows: Sequence[int], frames: int,
                      **extra: Any) -> dict[str, Any]:
        """An offline tomography reduction's end: the reconstruction into
        ``raw_dir/derived/`` (``write_volume``) and the stop document (success, ``frames``,
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
        """One ``primary`` event per pattern (declaring the streams first if needed)."""
        if not self.has_stream("primary"):
            self.declare_patterns(chunk.radial, sigma=chunk.sigma is not None,
                                  lag=lags is not None)
        for i, seq in enumerate(raw_seq_nums):
            data: dict[str, Any] = {"intensity": chunk.intensity[i], "raw_seq_num": int(seq)}
            if chunk.sigma is not None:
                data["sigma"] = chunk.sigma[i]
            if lags is not None:
                data["lag"] = float(lags[i])
            self.event("primary", data)
            self.frames += 1

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


def derived_file_name(reduction: str, raw_uid: str, derived_uid: str) -> str:
    """``derived/<reduction>_<raw uid[:8]>_<derived uid[:8]>.h5`` inside ``raw_dir``."""
    return f"{DERIVED_FOLDER}/{reduction}_{raw_uid[:8]}_{derived_uid[:8]}.h5"


# -- offline reduction ------------------------------------------------------------------------


@dataclass
class ReductionSummary:
    """What an offline (or live) reduction produced."""

    uid: str
    raw_uid: str
    reduction: str
    exit_status: str
    shape: tuple[int, ...]
    frames: int
    seconds: float
    outputs: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""

    def text(self) -> str:
        """One line for people."""
        what = "reconstruction" if self.reduction == "tomo_fbp" else "patterns"
        line = (f"derived run {self.uid} ({self.reduction}) of raw run {self.raw_uid}: "
                f"{self.exit_status}, {what} {'×'.join(map(str, self.shape))} from "
                f"{self.frames} frames in {self.seconds:.1f} s")
        return line + (f" ({self.reason})" if self.reason else "")


def _stream_image_key(run: Any, stream: str, start: Mapping[str, Any]) -> str:
    try:
        node = run[stream]
    except KeyError:
        raise ReductionError(f"run {start['uid']}: no stream {stream!r}") from None
    return image_key((node.metadata or {}).get("data_keys") or {}, start,
                     where=f"run {start['uid']} stream {stream!r}")


def run_mask(run: Any, start: Mapping[str, Any], shape: tuple[int, ...]) -> BoolImage | None:
    """The run's pixel mask (its ``"mask"`` stream, :mod:`dataflow.pixel_mask`) as bool of
    the frames' ``shape``, True where a pixel is ignored; None for a run without one.
    ``ReductionError`` when the stream is there but unreadable or of another shape."""
    if MASK_STREAM not in run:
        return None
    key = _stream_image_key(run, MASK_STREAM, start)
    bits = _read(run[MASK_STREAM][key], f"run {start['uid']} pixel mask", slice(0, 1))
    return checked_mask(bits, shape)


def mask_uris(run: Any, start: Mapping[str, Any]) -> list[str]:
    """The files of the run's pixel mask (an input of its reductions), none without one."""
    if MASK_STREAM not in run:
        return []
    return _asset_uris(run[MASK_STREAM][_stream_image_key(run, MASK_STREAM, start)])


def _asset_uris(node: Any) -> list[str]:
    uris: list[str] = []
    for source in node.data_sources() or []:
        uris.extend(str(asset.data_uri) for asset in source.assets)
    return uris


def _read(node: Any, what: str, sl: slice | None = None) -> npt.NDArray[Any]:
    try:
        return np.asarray(node[sl] if sl is not None else node[:])
    except Exception as exc:  # tiled wraps file errors in several types
        raise ReductionError(f"{what}: cannot read frames ({type(exc).__name__}: "
                             f"{exc})") from None


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def tomo_angles_of(run: Any, start: Mapping[str, Any], stream: str, n: int,
                   partial: bool = False) -> tuple[F64, str]:
    """Projection angles (degrees) and where they came from (``"events"``/``"start"``).

    ``partial``: the run has no stop document (its process was killed), so the angles
    may be more than the ``n`` frames (the rest were never taken) or fewer (a frame
    announced before its event): the first ``min`` of both are returned."""
    axis = start.get("rotation_axis")
    node = run[stream]
    if isinstance(axis, str) and axis in node:
        angles = np.asarray(node[axis].read(), dtype=np.float64)
        source = "events"
    elif "angles" in start:
        angles = np.asarray(start["angles"], dtype=np.float64)
        source = "start"
    else:
        raise ReductionError(f"run {start['uid']}: no projection angles (no rotation "
                             f"reading {axis!r} in stream {stream!r}, no start 'angles')")
    if partial and angles.ndim == 1:
        angles = angles[:n]
    if angles.shape != (n,) and not (partial and angles.ndim == 1):
        raise ReductionError(f"run {start['uid']}: {angles.shape[0] if angles.ndim else 0} "
                             f"angles ({source}) for {n} projections")
    return angles, source


def reducible_run(catalog: RunCatalog, ref: str | int) -> tuple[Any, dict[str, Any], str]:
    """The run ``ref``, its start document and its reduction (``reduction_for``);
    ``ReductionError`` saying what is missing when it has none."""
    run = catalog.run(ref)
    start = dict(run.metadata.get("start") or {})
    streams = list(run)
    reduction = reduction_for(start, streams)
    if reduction is None:
        raise ReductionError(
            f"run {start.get('uid')} (plan {start.get('plan_name')!r}): nothing to reduce; "
            "tomography needs start 'angles' or 'rotation_axis' and streams dark/flat/"
            f"primary, diffraction a start 'geometry' (streams: {', '.join(streams)})")
    return run, start, reduction


def reduce_run(catalog: RunCatalog, ref: str | int, *, rows: Sequence[int] | None = None,
               bins: int = DEFAULT_BINS, unit: str = DEFAULT_UNIT,
               chunk_frames: int = DEFAULT_CHUNK_FRAMES,
               callbacks: Sequence[Callback] | None = None,
               device: str | None = None) -> ReductionSummary:
    """Re-reduce a stored run offline into a new derived run.

    Parameters
    ----------
    catalog
        Where the raw run is and (derived HDF5 files) ``raw_dir/derived/`` goes.
    ref
        Raw run uid, uid prefix or scan number (``Catalog.run``).
    rows
        Tomography: detector rows to reconstruct (default all).
    bins, unit
        Diffraction: number of bins and radial unit.
    chunk_frames
        Frames per chunk (the unit a Dask worker would get).
    callbacks
        Document callbacks of the derived run; default ``[catalog.derived_writer()]``.
    device
        OpenCL device choice.

    Raises
    ------
    ReductionError
        The run has no reduction or misses what it needs (after stopping the derived
        run with ``exit_status="fail"`` when it had been started).
    """
    if chunk_frames < 1:
        raise ReductionError(f"argument `chunk_frames`: expected >= 1, got {chunk_frames}")
    run, start, reduction = reducible_run(catalog, ref)
    targets = (callbacks if callbacks is not None else [catalog.derived_writer()])
    t0 = time.perf_counter()
    if reduction == "tomo_fbp":
        check_derived_folder(catalog, run, start)
        return _reduce_tomo(run, start, catalog, targets,
                            TomoParams(tuple(rows) if rows is not None else None,
                                       device=device), chunk_frames, t0)
    return _reduce_azint(run, start, catalog, targets,
                         AzintParams(bins, unit, device=device), chunk_frames, t0)


def stop_failed(derived: DerivedRun, exc: BaseException, catalog: RunCatalog | None) -> None:
    """End ``derived`` with ``exit_status="fail"`` and ``exc`` as the reason, never raising.

    When the writer itself failed (the server refused a file, say), ``TiledWriter`` may
    drop the rest of the run, the stop document included, or have stored a stop document
    that no longer holds; then this stop document goes into the derived run's metadata in
    ``catalog`` directly, so no run is left without one, or with the wrong one.
    """
    with contextlib.suppress(Exception):  # the reduction's own error is the one to raise
        derived.stop("fail", f"{type(exc).__name__}: {exc}")
    if catalog is None or derived.stop_doc is None:
        return
    try:
        node = catalog.derived[derived.uid]
        if ((node.metadata or {}).get("stop") or {}).get("uid") != derived.stop_doc["uid"]:
            node.update_metadata(metadata={"stop": derived.stop_doc})
    except Exception as again:  # pragma: no cover - the catalog is gone as well
        log.warning("derived run %s: cannot record its failure (%s)", derived.uid, again)


def check_derived_folder(catalog: RunCatalog, run: Any, start: Mapping[str, Any]) -> None:
    """Refuse to reduce into a catalog server whose data folder is not ``raw_dir``.

    A server registers external files only from its own folders, so a derived file
    written to another ``--data`` would be refused after all the work; the raw run's
    files show where the server's folder is. Embedded catalogs always read their own.
    """
    from dataflow.remote import RemoteCatalog

    if not isinstance(catalog, RemoteCatalog):
        return
    raw_dir = catalog.raw_dir
    names = tomo_streams(start)
    paths = [uri_path(uri) for stream in names.values()
             for uri in _asset_uris(run[stream][_stream_image_key(run, stream, start)])]
    if paths and not any(path.resolve().is_relative_to(raw_dir) for path in paths):
        raise ReductionError(
            f"--data: derived files would go to {raw_dir / 'derived'}, but the server "
            f"reads run {start['uid']}'s files from {paths[0].parent}; give the server's "
            "data folder (the one holding its raw/)")


def _reduce_tomo(run: Any, start: dict[str, Any], catalog: RunCatalog,
                 callbacks: Sequence[Callback], params: TomoParams, chunk: int,
                 t0: float) -> ReductionSummary:
    names = tomo_streams(start)
    keys = {kind: _stream_image_key(run, stream, start) for kind, stream in names.items()}
    nodes = {kind: run[names[kind]][keys[kind]] for kind in names}
    n, height, _ = (int(v) for v in nodes["projection"].shape)
    chosen = select_rows(params.rows, height)
    angles, source = tomo_angles_of(run, start, names["projection"], n,
                                    partial=not run.metadata.get("stop"))
    n = len(angles)
    if n == 0:
        raise ReductionError(f"run {start['uid']}: no projections to reduce (a killed run: "
                             "smeflow catalog repair recovers what it acquired)")
    inputs = file_inputs([*(u for node in nodes.values() for u in _asset_uris(node)),
                          *mask_uris(run, start)])
    md = derived_md(start, "tomo_fbp", inputs, params.metadata(), live=False)
    # Every frame is read (and checked: complete, checksum) before the derived run
    # starts: damaged input is an error and leaves no derived run behind.
    refs = tomo_references(_read(nodes["dark"], "darks"), _read(nodes["flat"], "flats"),
                           run_mask(run, start, (height, int(nodes["dark"].shape[2]))))
    partials = [tomo_chunk(_read(nodes["projection"], "projections", sl), angles[sl], refs,
                           rows=chosen, floor=params.floor, device=params.device)
                for sl in progress(_chunks(n, chunk), desc="reconstructing", unit="chunk")]
    volume = tomo_combine(partials)
    derived = DerivedRun(callbacks, md)
    try:
        stop = derived.finish_volume(catalog.raw_dir, volume, chosen, n, angles_from=source)
    except Exception as exc:
        stop_failed(derived, exc, catalog)
        raise
    return ReductionSummary(derived.uid, start["uid"], "tomo_fbp", stop["exit_status"],
                            tuple(volume.shape), n, time.perf_counter() - t0,
                            list(derived.outputs))


def _reduce_azint(run: Any, start: dict[str, Any], catalog: RunCatalog,
                  callbacks: Sequence[Callback], params: AzintParams, chunk: int,
                  t0: float) -> ReductionSummary:
    from analysis.azint import AzimuthalIntegrator

    geometry = geometry_from(start)
    key = _stream_image_key(run, "primary", start)
    node = run["primary"][key]
    n = int(node.shape[0])
    md = derived_md(start, "azint1d", file_inputs([*_asset_uris(node), *mask_uris(run, start)]),
                    params.metadata(geometry), live=False)
    seq = np.asarray(run["primary"]["seq_num"].read(), dtype=np.int64) \
        if "seq_num" in run["primary"] else np.arange(1, n + 1)
    n = min(n, len(seq))  # a killed run: a frame may be announced before its event
    if n == 0:
        raise ReductionError(f"run {start['uid']}: no frames to reduce (a killed run: "
                             "smeflow catalog repair recovers what it acquired)")
    # Every frame is read (and checked: complete, checksum) before the derived run
    # starts: damaged input is an error and leaves no derived run behind.
    integrator = AzimuthalIntegrator(geometry, device=params.device)
    mask = run_mask(run, start, tuple(int(v) for v in node.shape[1:]))
    chunks = [azint_chunk(_read(node, "frames", sl), integrator, params, first=sl.start,
                          mask=mask)
              for sl in progress(_chunks(n, chunk), desc="integrating", unit="chunk")]
    patterns = azint_combine(chunks)
    derived = DerivedRun(callbacks, md)
    try:
        derived.emit_patterns(patterns, [int(s) for s in seq[:n]])
        stop = derived.stop("success", frames=n)
    except Exception as exc:
        stop_failed(derived, exc, catalog)
        raise
    return ReductionSummary(derived.uid, start["uid"], "azint1d", stop["exit_status"],
                            tuple(patterns.intensity.shape), n, time.perf_counter() - t0)
