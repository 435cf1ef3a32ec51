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

This module runs a reduction offline (:func:`reduce_run`); choosing it and reading a raw
run's inputs from the catalog is :mod:`analysis.run_read`, the chunk functions are
:mod:`analysis.reduce_chunks`, the derived run's documents and files
:mod:`analysis.derived_run`, the error :mod:`analysis.reductions`. Their public names
are importable from here as well.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from analysis.derived_run import (  # re-exported
    DERIVED_FOLDER,
    RECONSTRUCTION_KEY,
    Callback,
    DerivedRun,
    derived_file_name,
    derived_md,
    file_inputs,
    uri_path,
)
from analysis.reduce_chunks import (  # re-exported
    DEFAULT_BINS,
    DEFAULT_UNIT,
    MAX_BINS,
    AzintParams,
    PatternChunk,
    TomoAccumulator,
    TomoParams,
    TomoPartial,
    TomoReferences,
    azint_chunk,
    azint_combine,
    check_bins,
    checked_mask,
    geometry_from,
    select_rows,
    tomo_chunk,
    tomo_combine,
    tomo_references,
)
from analysis.reductions import REDUCTIONS, ReductionError  # re-exported
from analysis.run_nodes import RunNodes, run_nodes, run_streams  # re-exported
from analysis.run_read import (  # re-exported (asset_uris and read_node used here)
    asset_uris,
    frames_node,
    image_key,
    mask_uris,
    read_node,
    reduction_for,
    run_mask,
    stream_frames,
    tomo_angles_of,
    tomo_streams,
)
from sme.progress import progress

if TYPE_CHECKING:
    from dataflow.catalog import RunCatalog

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_CHUNK_FRAMES",
    "DEFAULT_UNIT",
    "DERIVED_FOLDER",
    "MAX_BINS",
    "RECONSTRUCTION_KEY",
    "REDUCTIONS",
    "AzintParams",
    "Callback",
    "DerivedRun",
    "PatternChunk",
    "ReductionError",
    "ReductionSummary",
    "RunNodes",
    "TomoAccumulator",
    "TomoParams",
    "TomoPartial",
    "TomoReferences",
    "azint_chunk",
    "azint_combine",
    "check_bins",
    "check_derived_folder",
    "check_options",
    "checked_mask",
    "derived_file_name",
    "derived_md",
    "file_inputs",
    "frames_node",
    "geometry_from",
    "image_key",
    "listed_run",
    "mask_uris",
    "reduce_run",
    "reduction_for",
    "run_mask",
    "run_nodes",
    "run_streams",
    "select_rows",
    "stop_failed",
    "stream_frames",
    "tomo_angles_of",
    "tomo_chunk",
    "tomo_combine",
    "tomo_references",
    "tomo_streams",
    "uri_path",
]

DEFAULT_CHUNK_FRAMES = 16

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
BoolImage = npt.NDArray[np.bool_]


# -- choosing a reduction ------------------------------------------------------------------


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


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def reducible_run(catalog: RunCatalog, ref: str | int) -> tuple[Any, dict[str, Any], str]:
    """The run ``ref``, its start document and its reduction (``reduction_for``);
    ``ReductionError`` saying what is missing when it has none."""
    run, start, reduction, _ = listed_run(catalog, ref)
    return run, start, reduction


def listed_run(catalog: RunCatalog, ref: str | int
               ) -> tuple[Any, dict[str, Any], str, RunNodes]:
    """:func:`reducible_run` and the run's streams and arrays (:func:`run_nodes`, listed
    to find the reduction: one request)."""
    run = catalog.run(ref)
    start = dict(run.metadata.get("start") or {})
    nodes = run_nodes(run)
    streams = sorted(nodes.streams)
    reduction = reduction_for(start, streams)
    if reduction is None:
        raise ReductionError(
            f"run {start.get('uid')} (plan {start.get('plan_name')!r}): nothing to reduce; "
            "tomography needs start 'angles' or 'rotation_axis' and streams dark/flat/"
            f"primary, diffraction a start 'geometry' (streams: {', '.join(streams)})")
    return run, start, reduction, nodes


def check_options(reduction: str, start: Mapping[str, Any], rows: Sequence[int] | None,
                  bins: int | None, unit: str | None) -> None:
    """Refuse the options of the other reduction: ``rows`` for a run reduced as
    diffraction patterns, ``bins``/``unit`` for a tomography run (None: not given). They
    would be dropped without a word, and the answer not the one asked for."""
    uid = start.get("uid")
    if reduction == "azint1d" and rows is not None:
        raise ReductionError(
            f"run {uid}: --rows (rows=) is an option of tomography, but this run is reduced "
            "as 1D diffraction patterns (azint1d: its start document has a geometry); "
            "use --bins/--unit")
    if reduction == "tomo_fbp" and (bins is not None or unit is not None):
        given = "/".join(name for name, value in (("--bins", bins), ("--unit", unit))
                         if value is not None)
        raise ReductionError(
            f"run {uid}: {given} is an option of diffraction, but this run is reduced as "
            "a tomographic reconstruction (tomo_fbp); use --rows")


def reduce_run(catalog: RunCatalog, ref: str | int, *, rows: Sequence[int] | None = None,
               bins: int | None = None, unit: str | None = None,
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
        Diffraction: number of bins and radial unit (default ``DEFAULT_BINS``,
        ``DEFAULT_UNIT``). The other reduction's options are refused
        (:func:`check_options`).
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
    run, start, reduction, listing = listed_run(catalog, ref)
    check_options(reduction, start, rows, bins, unit)
    targets = (callbacks if callbacks is not None else [catalog.derived_writer()])
    t0 = time.perf_counter()
    if reduction == "tomo_fbp":
        check_derived_folder(catalog, run, start, listing)
        return _reduce_tomo(run, start, catalog, targets,
                            TomoParams(tuple(rows) if rows is not None else None,
                                       device=device), chunk_frames, t0, listing)
    return _reduce_azint(run, start, catalog, targets,
                         AzintParams.given(bins, unit, device),
                         chunk_frames, t0, listing)


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


def check_derived_folder(catalog: RunCatalog, run: Any, start: Mapping[str, Any],
                         nodes: RunNodes | None = None) -> None:
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
             for uri in asset_uris(stream_frames(run, stream, start, nodes)[1])]
    if paths and not any(path.resolve().is_relative_to(raw_dir) for path in paths):
        raise ReductionError(
            f"--data: derived files would go to {raw_dir / 'derived'}, but the server "
            f"reads run {start['uid']}'s files from {paths[0].parent}; give the server's "
            "data folder (the one holding its raw/)")


def _reduce_tomo(run: Any, start: dict[str, Any], catalog: RunCatalog,
                 callbacks: Sequence[Callback], params: TomoParams, chunk: int,
                 t0: float, listing: RunNodes) -> ReductionSummary:
    names = tomo_streams(start)
    nodes = {kind: stream_frames(run, stream, start, listing)[1]
             for kind, stream in names.items()}
    n, height, _ = (int(v) for v in nodes["projection"].shape)
    chosen = select_rows(params.rows, height)
    angles, source = tomo_angles_of(run, start, names["projection"], n,
                                    partial=not run.metadata.get("stop"), nodes=listing)
    n = len(angles)
    if n == 0:
        raise ReductionError(f"run {start['uid']}: no projections to reduce (a killed run: "
                             "smeflow catalog repair recovers what it acquired)")
    inputs = file_inputs([*(u for node in nodes.values() for u in asset_uris(node)),
                          *mask_uris(run, start, nodes=listing)])
    md = derived_md(start, "tomo_fbp", inputs, params.metadata(), live=False)
    # Every frame is read (and checked: complete, checksum) before the derived run
    # starts: damaged input is an error and leaves no derived run behind.
    refs = tomo_references(read_node(nodes["dark"], "darks"), read_node(nodes["flat"], "flats"),
                           run_mask(run, start, (height, int(nodes["dark"].shape[2])),
                                    nodes=listing))
    from analysis.fbp import OutputBuffers

    buffers = OutputBuffers()  # the chunks' volumes in one pair of arrays, folded in turn
    volume = tomo_combine(
        tomo_chunk(read_node(nodes["projection"], "projections", sl), angles[sl], refs,
                   rows=chosen, floor=params.floor, device=params.device, buffers=buffers)
        for sl in progress(_chunks(n, chunk), desc="reconstructing", unit="chunk"))
    del buffers
    derived = DerivedRun(callbacks, md)
    try:
        stop = derived.finish_volume(catalog.raw_dir, volume, chosen, n, angles_from=source)
    except BaseException as exc:  # (an interrupt too: the run gets its stop document)
        stop_failed(derived, exc, catalog)
        raise
    return ReductionSummary(derived.uid, start["uid"], "tomo_fbp", stop["exit_status"],
                            tuple(volume.shape), n, time.perf_counter() - t0,
                            list(derived.outputs))


def _reduce_azint(run: Any, start: dict[str, Any], catalog: RunCatalog,
                  callbacks: Sequence[Callback], params: AzintParams, chunk: int,
                  t0: float, listing: RunNodes) -> ReductionSummary:
    from analysis.azint import AzimuthalIntegrator

    geometry = geometry_from(start)
    _, node = stream_frames(run, "primary", start, listing)
    n = int(node.shape[0])
    md = derived_md(start, "azint1d",
                    file_inputs([*asset_uris(node), *mask_uris(run, start, nodes=listing)]),
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
    mask = run_mask(run, start, tuple(int(v) for v in node.shape[1:]), nodes=listing)
    chunks = [azint_chunk(read_node(node, "frames", sl), integrator, params, first=sl.start,
                          mask=mask)
              for sl in progress(_chunks(n, chunk), desc="integrating", unit="chunk")]
    patterns = azint_combine(chunks)
    derived = DerivedRun(callbacks, md)
    try:
        derived.emit_patterns(patterns, [int(s) for s in seq[:n]])
        stop = derived.stop("success", frames=n)
    except BaseException as exc:  # (an interrupt too: the run gets its stop document)
        stop_failed(derived, exc, catalog)
        raise
    return ReductionSummary(derived.uid, start["uid"], "azint1d", stop["exit_status"],
                            tuple(patterns.intensity.shape), n, time.perf_counter() - t0)
