"""Offline reduction on dask.distributed workers, identical to ``reduce_run``'s result.

``reduce_on_dask(catalog, ref, session)`` reduces a stored run the way
:func:`analysis.reduce.reduce_run` does, with the chunk functions of
:mod:`analysis.reduce` run as tasks on the workers of a Dask scheduler
(:func:`connect`: ``"local"`` starts a :class:`distributed.LocalCluster` on loopback,
``tcp://HOST:PORT`` joins a running scheduler), and writes the same derived run, whose
start document also records ``scheduler`` and ``workers``.

What travels (never frames from the client, never OpenCL objects):

* to the workers: where the frames are (:class:`FrameSource`: HDF5 paths, dataset,
  frame counts), index ranges, the projection angles, the chosen rows and plain
  parameters; each worker reads its frames from the files itself and builds its own
  OpenCL context (:func:`analysis.cl.runtime`, once per worker process);
* back: tomography — one block of reconstructed slices per task (the averaged dark and
  flat references come from the client, which reads those few frames from the files,
  or, frames read from the catalog server, from one task); diffraction — the patterns
  of a chunk of frames (``PatternChunk``).

Workers of the local cluster reading the raw files (``frames_from="files"``) write their
slices into the volume file themselves (:mod:`dataflow.hdf5_reserve`: the client creates
the file with every slice's place reserved, each task writes its slices there and
sends back their CRC-32s), so no slice crosses to the client, which would spend as much
CPU receiving and writing the 4 bytes per voxel as the workers spend sending them, on
the cores they compute on. Workers elsewhere (a running scheduler, or frames fetched
from the catalog server) may not see the client's folder: their blocks come back and the
client writes them as they come.

Identical results. Tomography tasks split the *detector rows* into blocks
(``task_rows``); within a block a task runs :func:`~analysis.reduce.tomo_chunk` on the
same frame chunks (``chunk_frames``) in the same order as ``reduce_run`` and folds them
with :func:`~analysis.reduce.tomo_combine`, and the client concatenates the blocks. Every
step is per row (flat field and ``-log`` per pixel, the ramp filter per sinogram row, the
back-projection per slice) and the float32 sum over chunks keeps ``reduce_run``'s order,
so the volume is bitwise the single-process one for the same ``chunk_frames`` (a tree
reduction across workers would change the summation order and the last bits). Splitting
rows instead of sending every chunk's full partial volume back also keeps the traffic at
one volume instead of one per chunk. Diffraction patterns are per frame: chunks of
frames are independent and concatenated in frame order.

Threads, memory and background work of the local cluster's workers:
:mod:`analysis.dask_session` (:func:`connect`, :class:`DaskSession`, re-exported here).

The client's own work (the catalog's answers, the inputs' digests, the derived run, the
volume file's documents and digest) is serial, except the inputs' digests: a thread
reads the raw files from the moment the listing names them, on the core the client's
own preparation leaves idle until the tasks start. The tasks are submitted before the
derived run is started, and blocks that come back are written as they come, while the
workers compute the rest. The volume's stream (descriptor, row events) goes into the
catalog as soon as the client has a core the local workers leave idle (at once with
fewer workers than cores, else beside the last tasks, once a worker has none left), so
only the file's announcement, its digest and the stop document follow the last task.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from analysis.dask_session import (  # re-exported
    LOCAL,
    POCL_THREAD_VARIABLES,
    DaskSession,
    SchedulerError,
    connect,
    usable_cores,
    worker_environment,
)
from analysis.derived_run import derived_file_name, discard_volume, volume_file
from analysis.file_frames import FrameSource, frame_source
from analysis.reduce import (
    DEFAULT_CHUNK_FRAMES,
    AzintParams,
    Callback,
    DerivedRun,
    PatternChunk,
    ReductionError,
    ReductionSummary,
    RunNodes,
    TomoParams,
    TomoReferences,
    azint_chunk,
    azint_combine,
    check_derived_folder,
    check_options,
    derived_md,
    file_inputs,
    geometry_from,
    listed_run,
    mask_uris,
    run_mask,
    select_rows,
    stop_failed,
    stream_frames,
    tomo_angles_of,
    tomo_chunk,
    tomo_combine,
    tomo_references,
    tomo_streams,
)
from analysis.tiled_frames import API_KEY_ENV, TiledFrameSource, tiled_frame_source
from dataflow.hdf5_reserve import ReservedFrameWriter, write_frames_at

if TYPE_CHECKING:
    from analysis.azint import AzimuthalIntegrator
    from dataflow.catalog import RunCatalog

__all__ = [
    "DEFAULT_TASK_ROWS", "LOCAL", "POCL_THREAD_VARIABLES", "DaskSession", "FrameSource",
    "SchedulerError", "connect", "frame_source", "reduce_on_dask", "reduce_run_dask",
    "worker_environment",
]

DEFAULT_TASK_ROWS = 32
"""Detector rows per tomography task (a multiple of the back-projection's 8 slices per
work-item; 256 rows make 8 tasks)."""
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


Source = FrameSource | TiledFrameSource
"""Where a task reads its frames: the raw files, or the catalog server."""


# -- tasks (run on the workers) ----------------------------------------------------------------


def _frame_chunks(n: int, size: int) -> list[tuple[int, int]]:
    """``reduce_run``'s frame chunks ``[start, stop)``."""
    return [(i, min(n, i + size)) for i in range(0, n, size)]


def references_task(dark: Source, flat: Source,
                    mask: npt.NDArray[np.bool_] | None = None) -> TomoReferences:
    """Task: read the darks and flats and average them (with the run's pixel mask)."""
    return tomo_references(dark.read(slice(None)), flat.read(slice(None)), mask)


def tomo_rows_task(rows: Sequence[int], refs: TomoReferences, projections: Source,
                   angles: F64, chunks: Sequence[tuple[int, int]], floor: float,
                   device: str | None) -> F32:
    """Task: reconstruct detector ``rows`` from every projection, chunk by chunk.

    Reads the row band ``min(rows)..max(rows)`` of each frame chunk, runs ``tomo_chunk``
    and folds the partials with ``tomo_combine`` in chunk order (``reduce_run``'s
    order); returns ``(len(rows), W, W)`` float32. ``refs`` are the references of the
    whole frame or of the band's rows only (:func:`_band_references`)."""
    lo, hi = min(rows), max(rows) + 1
    local = [r - lo for r in rows]
    height = projections.shape[1]
    if refs.dark.shape[0] == height:
        band = refs.rows(slice(lo, hi))
    elif refs.dark.shape[0] == hi - lo:
        band = refs
    else:
        raise ReductionError(f"references of {refs.dark.shape[0]} rows for rows {lo}..{hi - 1} "
                             f"of {height}: expected the frame's or the band's")
    from analysis.fbp import OutputBuffers

    with projections.open() as files:
        def partials() -> Iterator[Any]:
            buffers = OutputBuffers()  # each partial folded before the next overwrites it
            for start, stop in chunks:
                yield tomo_chunk(files.read(slice(start, stop), slice(lo, hi)),
                                 angles[start:stop], band, rows=local, floor=floor,
                                 device=device, buffers=buffers)

        return tomo_combine(partials())


def tomo_rows_file_task(rows: Sequence[int], refs: TomoReferences, offsets: Sequence[int],
                        projections: Source, angles: F64, chunks: Sequence[tuple[int, int]],
                        floor: float, device: str | None, path: str
                        ) -> npt.NDArray[np.uint32]:
    """Task: :func:`tomo_rows_task`, its slices written into the volume file ``path`` at
    ``offsets`` (reserved by the client); returns their CRC-32s."""
    block = tomo_rows_task(rows, refs, projections, angles, chunks, floor, device)
    return write_frames_at(path, offsets, block, np.float32)


_INTEGRATORS: dict[tuple[str, str | None], AzimuthalIntegrator] = {}


def _integrator(geometry: Mapping[str, Any], device: str | None) -> AzimuthalIntegrator:
    """This worker's integrator for ``geometry`` (built once per process and device)."""
    from analysis.azint import AzimuthalIntegrator
    from geometry import PoniGeometry

    key = (json.dumps(dict(geometry), sort_keys=True), device)
    integrator = _INTEGRATORS.get(key)
    if integrator is None:
        integrator = _INTEGRATORS[key] = AzimuthalIntegrator(
            PoniGeometry.from_metadata(dict(geometry), where="start document 'geometry'"),
            device=device)
    return integrator


_MASKS: dict[bytes, npt.NDArray[np.bool_]] = {}


def _same_mask(mask: npt.NDArray[np.bool_] | None) -> npt.NDArray[np.bool_] | None:
    """One array object per mask content in this worker (the integrator caches its tables
    by the mask's identity, and each task receives its own copy)."""
    if mask is None:
        return None
    key = repr(mask.shape).encode() + np.packbits(mask).tobytes()
    return _MASKS.setdefault(key, mask)


def azint_task(frames: Source, start: int, stop: int, geometry: Mapping[str, Any],
               params: AzintParams, mask: npt.NDArray[np.bool_] | None = None) -> PatternChunk:
    """Task: read frames ``[start, stop)`` and integrate each to a 1D pattern, ignoring
    the pixels of the run's ``mask``."""
    return azint_chunk(frames.read(slice(start, stop)),
                       _integrator(geometry, params.device), params, first=start,
                       mask=_same_mask(mask))


# -- the reduction -----------------------------------------------------------------------------


def reduce_on_dask(catalog: RunCatalog, ref: str | int, session: DaskSession, *,
                   rows: Sequence[int] | None = None, bins: int | None = None,
                   unit: str | None = None, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                   task_rows: int = DEFAULT_TASK_ROWS,
                   callbacks: Sequence[Callback] | None = None,
                   device: str | None = None, frames_from: str | None = None
                   ) -> ReductionSummary:
    """Re-reduce a stored run on ``session``'s workers into a new derived run.

    The arguments are :func:`analysis.reduce.reduce_run`'s (the result is identical to
    its result for the same ``chunk_frames``), plus ``session`` (:func:`connect`) and
    ``task_rows`` (tomography: detector rows per task). ``device`` is the OpenCL device
    choice *on the workers*. ``frames_from``: ``"files"`` — the workers open the raw HDF5
    files (a shared file system); ``"tiled"`` — they fetch their frames from the catalog
    server over HTTP (:mod:`analysis.tiled_frames`; the catalog must be a
    ``RemoteCatalog``, the workers need ``$SMEFLOW_API_KEY``); default ``"files"``. The
    derived run's start document also has
    ``scheduler``, ``workers`` (connected when the reduction started) and ``frames_from``.

    Raises
    ------
    ReductionError
        As ``reduce_run``; a task's own error (``HDF5ReadError`` for a bad file, …) is
        raised here after the derived run was stopped with ``exit_status="fail"``.
    """
    for name, value in (("chunk_frames", chunk_frames), ("task_rows", task_rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ReductionError(f"argument `{name}`: expected an integer >= 1, got {value!r}")
    url = getattr(catalog, "url", None)
    frames_from = "files" if frames_from is None else frames_from
    if frames_from not in ("files", "tiled"):
        raise ReductionError(f"argument `frames_from`: expected 'files' or 'tiled', got "
                             f"{frames_from!r}")
    if frames_from == "tiled" and not isinstance(url, str):
        raise ReductionError("argument `frames_from`: 'tiled' needs a catalog server "
                             "(a RemoteCatalog); this catalog is embedded")
    run, start, reduction, listing = listed_run(catalog, ref)
    check_options(reduction, start, rows, bins, unit)
    workers = session.workers
    if workers < 1:
        raise SchedulerError(f"scheduler {session.scheduler}: no workers")
    targets = callbacks if callbacks is not None else [catalog.derived_writer()]
    where = {"scheduler": session.scheduler, "workers": workers, "frames_from": frames_from}
    t0 = time.perf_counter()
    if reduction == "tomo_fbp":
        params = TomoParams(tuple(rows) if rows is not None else None, device=device)
        check_derived_folder(catalog, run, start, listing)
        return _tomo(run, start, listing, catalog, targets, session, params, chunk_frames,
                     task_rows, where, t0, url)
    return _azint(run, start, listing, catalog, targets, session,
                  AzintParams.given(bins, unit, device),
                  chunk_frames, where, t0, url)


def reduce_run_dask(catalog: RunCatalog, ref: str | int, scheduler: str = LOCAL,
                    workers: int | None = None, **kwargs: Any) -> ReductionSummary:
    """:func:`connect`, :func:`reduce_on_dask` (``kwargs``), close: one call. The local
    workers of a catalog server's reduction get its API key in their environment."""
    key = getattr(catalog, "api_key", None)
    env = {API_KEY_ENV: key} if isinstance(key, str) and key else None
    with connect(scheduler, workers, worker_env=env) as session:
        return reduce_on_dask(catalog, ref, session, **kwargs)


def _stream_source(run: Any, stream: str, start: Mapping[str, Any],
                   where: Mapping[str, Any], url: str | None, listing: RunNodes) -> Source:
    """Where the workers read the frames of ``stream`` (``where["frames_from"]``);
    ``listing``: the run's nodes (:func:`~analysis.reduce.run_nodes`)."""
    _, frames = stream_frames(run, stream, start, listing)
    what = f"run {start['uid']} stream {stream!r}"
    if where["frames_from"] == "tiled":
        assert url is not None
        return tiled_frame_source(frames, url, what)
    return frame_source(frames, what)


def _band_references(refs: Any, rows: Sequence[int]) -> Any:
    """What a row task gets of the references: the rows ``min(rows)..max(rows)`` of
    references the client holds (the whole frame's would travel with every task, 8 times
    the volume's references for 8 tasks, through the scheduler), or the future of a
    references task as it is."""
    if isinstance(refs, TomoReferences):
        return refs.rows(slice(min(rows), max(rows) + 1))
    return refs


def _tomo(run: Any, start: dict[str, Any], listing: RunNodes, catalog: RunCatalog,
          callbacks: Sequence[Callback], session: DaskSession, params: TomoParams, chunk: int,
          task_rows: int, where: Mapping[str, Any], t0: float, url: str | None
          ) -> ReductionSummary:
    names, workers = tomo_streams(start), int(where["workers"])
    sources = {kind: _stream_source(run, stream, start, where, url, listing)
               for kind, stream in names.items()}
    n, height, width = sources["projection"].shape
    chosen = select_rows(params.rows, height)
    angles, angle_source = tomo_angles_of(run, start, names["projection"], n, nodes=listing)
    mask = run_mask(run, start, tuple(sources["dark"].shape[1:]), nodes=listing)
    client = session.client
    # The tasks go out first: the derived run's start (after the inputs' digests) and
    # writing blocks as they come back overlap with the workers' reconstruction instead
    # of adding to it (its uid is chosen here: the volume file is named by it).
    blocks = [chosen[i:i + task_rows] for i in range(0, len(chosen), task_rows)]
    firsts = range(0, len(chosen), task_rows)
    common = {"projections": sources["projection"], "angles": angles,
              "chunks": _frame_chunks(n, chunk), "floor": params.floor,
              "device": params.device}
    uid = str(uuid.uuid4())
    futures: list[Any] = []
    writer: ReservedFrameWriter | None = None
    derived: DerivedRun | None = None
    # The inputs' digests (every raw file read) start now, on a core the client's own
    # preparation leaves idle until the tasks start, and end beside the workers.
    digests = ThreadPoolExecutor(1, thread_name_prefix="smeflow-input-digests")
    inputs = digests.submit(file_inputs, [*(uri for s in sources.values() for uri in s.uris),
                                          *mask_uris(run, start, nodes=listing)])
    digests.shutdown(wait=False)
    try:
        dark, flat = sources["dark"], sources["flat"]
        refs: Any
        if isinstance(dark, FrameSource) and isinstance(flat, FrameSource):
            # A few frames the client reads as fast as a task's round trip takes: averaged
            # here, each task gets its band's rows, no task waits for another.
            refs = references_task(dark, flat, mask)
        else:  # (the workers have the catalog server's key, maybe not this process)
            refs = client.submit(references_task, dark, flat, mask, pure=False)
            futures.append(refs)
        bands = [_band_references(refs, block) for block in blocks]
        if session.cluster is not None and where["frames_from"] == "files":  # (docstring)
            writer = cast(ReservedFrameWriter, volume_file(
                catalog.raw_dir, derived_file_name("tomo_fbp", start["uid"], uid),
                (width, width), start["uid"], uid, reserved=True))
            offsets = writer.reserve(len(chosen))
            # (one graph for every task: one message to the scheduler, not one each)
            row_futures = client.map(
                tomo_rows_file_task, blocks, bands,
                [offsets[first:first + len(block)] for first, block in zip(firsts, blocks,
                                                                           strict=True)],
                path=str(writer.path), pure=False, **common)
        else:
            row_futures = client.map(tomo_rows_task, blocks, bands, pure=False, **common)
        futures.extend(row_futures)
        md = derived_md(start, "tomo_fbp", inputs.result(), {**params.metadata(), **where},
                        live=False)
        derived = DerivedRun(callbacks, md, uid=uid)
        if writer is None:
            stop = derived.finish_volume(catalog.raw_dir, (f.result() for f in row_futures),
                                         chosen, n, angles_from=angle_source)
        else:
            _checksums_as_tasks_end(session, workers, writer, derived, chosen,
                                    dict(zip(row_futures, firsts, strict=True)))
            stop = derived.finish_written_volume(writer, chosen, n, angles_from=angle_source)
    except BaseException as exc:  # (an interrupt too: nothing half-written stays)
        client.cancel(futures)
        wait([inputs])  # (no file read in the background once this returns)
        if writer is not None and (derived is None or not derived.volume_referenced):
            discard_volume(writer)  # (a referenced one was closed by the announcement)
        if derived is not None:
            stop_failed(derived, exc, catalog)
        raise
    return ReductionSummary(derived.uid, start["uid"], "tomo_fbp", stop["exit_status"],
                            (len(chosen), width, width), n, time.perf_counter() - t0,
                            list(derived.outputs))


def _client_has_a_core(session: DaskSession, workers: int, unfinished: int) -> bool:
    """Whether the client has a core to itself while ``unfinished`` tasks remain: always
    with workers elsewhere (a running scheduler's); with the local cluster's, once they
    leave one of this machine's cores idle (at once when there are fewer workers than
    cores, else once fewer tasks remain than workers)."""
    if session.cluster is None:
        return True
    return min(unfinished, workers) * session.cores_per_worker < usable_cores()


def _checksums_as_tasks_end(session: DaskSession, workers: int,
                            writer: ReservedFrameWriter, derived: DerivedRun,
                            rows: Sequence[int], first_of: Mapping[Any, int]) -> None:
    """Wait for the row tasks (``first_of``: the first slice of each task's block, in
    row order), declare the volume's stream (:meth:`~analysis.reduce.DerivedRun.\
declare_volume`: its descriptor and row events, written into the catalog) as soon as
    the client has a core the workers leave idle (:func:`_client_has_a_core`): those
    catalog requests then run beside the last tasks instead of after them, on a core no
    task needs (with as many local workers as cores, while the last tasks run beside an
    idle worker); then record every task's checksums in ``writer``, fetched in one
    request once all have ended (not one round trip per task while the workers
    compute). Raises the first failed task's error as it fails."""
    import distributed as dd

    as_completed: Any = dd.as_completed  # (untyped)
    unfinished = len(first_of)
    if _client_has_a_core(session, workers, unfinished):
        derived.declare_volume(writer, rows)
    for future in as_completed(list(first_of), loop=session.client.loop):
        if future.status != "finished":
            future.result()  # (the task's error, or its cancellation)
        unfinished -= 1
        if not derived.volume_declared and _client_has_a_core(session, workers, unfinished):
            derived.declare_volume(writer, rows)
    crcs = session.client.gather(list(first_of))
    writer.set_checksums(next(iter(first_of.values())), np.concatenate(crcs))


def _azint(run: Any, start: dict[str, Any], listing: RunNodes, catalog: RunCatalog,
           callbacks: Sequence[Callback], session: DaskSession, params: AzintParams,
           chunk: int, where: Mapping[str, Any], t0: float, url: str | None
           ) -> ReductionSummary:
    geometry = geometry_from(start)
    source = _stream_source(run, "primary", start, where, url, listing)
    n = source.shape[0]
    inputs = file_inputs([*source.uris, *mask_uris(run, start, nodes=listing)])
    md = derived_md(start, "azint1d", inputs, {**params.metadata(geometry), **where},
                    live=False)
    derived = DerivedRun(callbacks, md)
    client = session.client
    futures: list[Any] = []
    try:
        seq = np.asarray(run["primary"]["seq_num"].read(), dtype=np.int64) \
            if "seq_num" in run["primary"] else np.arange(1, n + 1)
        geometry_md = geometry.to_metadata()
        mask = run_mask(run, start, tuple(source.shape[1:]), nodes=listing)
        futures = [client.submit(azint_task, source, a, b, geometry_md, params, mask,
                                 pure=False)
                   for a, b in _frame_chunks(n, chunk)]
        patterns = azint_combine(client.gather(futures))
        derived.emit_patterns(patterns, [int(s) for s in seq[:n]])
        stop = derived.stop("success", frames=n)
    except BaseException as exc:
        client.cancel(futures)
        stop_failed(derived, exc, catalog)
        raise
    return ReductionSummary(derived.uid, start["uid"], "azint1d", stop["exit_status"],
                            tuple(patterns.intensity.shape), n, time.perf_counter() - t0)
