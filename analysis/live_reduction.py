"""What the live reducer's worker (:class:`analysis.live.LiveReducer`) does with one run:
reduce its ready frames (tomography into a running back-projection, diffraction into 1D
pattern events), and end its derived run — at the raw run's stop, or failed with the
reason. The functions take the run's state (:class:`analysis.live_runs.RunState`) and the
reducer's settings; the reducer keeps the document routing and the bookkeeping."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from analysis.derived_run import uri_path
from analysis.live_runs import Frame, RunState
from analysis.reduce import (
    AzintParams,
    Callback,
    DerivedRun,
    ReductionError,
    TomoAccumulator,
    TomoParams,
    azint_chunk,
    checked_mask,
    derived_file_name,
    derived_md,
    file_inputs,
    select_rows,
    tomo_references,
)
from analysis.run_read import frame_file_mask
from dataflow.pixel_mask import BoolImage

log = logging.getLogger(__name__)

ENDED_BY_CONSUMER = "smeflow_ended_by_consumer"
"""Key of a stop document a consumer makes up for a raw run it stops following (its
reason is then the derived run's reason as is, not "raw run ended …")."""


def begin_derived(run: RunState, callbacks: list[Callback],
                  parameters: dict[str, Any]) -> DerivedRun:
    """The run's derived run, started (its start document sent to ``callbacks``) if it
    was not yet."""
    if run.derived is None:
        md = derived_md(run.start, str(run.reduction),
                        file_inputs(run.uris, digest=False), parameters, live=True)
        run.derived = DerivedRun(callbacks, md)
        run.result.derived_uid = run.derived.uid
    return run.derived


def reduce_ready(run: RunState, tomo: TomoParams, azint: AzintParams) -> None:
    """Reduce the run's ready frames (its mask first, when it is among them)."""
    ready, run.ready = run.ready, []
    masks = [f for f in ready if run.role(f.desc) == "mask"]
    if masks:  # the plans publish it before the first frame
        ready = [f for f in ready if run.role(f.desc) != "mask"]
        image = run.read(masks[-1:])[0]
        run.mask = checked_mask(image, image.shape[-2:])
        if not ready and run.reduction == "azint1d":
            _prepare_azint(run, azint)
    if not ready:
        return
    if run.mask is None and not run.file_mask_read:
        run.file_mask_read = True
        if not any(run.role(desc) == "mask" for desc in run.descriptors):
            run.mask = _frame_file_mask(run, ready[0])
    if run.reduction == "tomo_fbp":
        _reduce_tomo(run, ready, tomo)
    else:
        _reduce_azint(run, ready, azint)


def _frame_file_mask(run: RunState, frame: Frame) -> BoolImage | None:
    """The mask the detector wrote into ``frame``'s file (NeXus ``pixel_mask``), for a
    run that publishes no mask stream (``bp.count``); None when the file has none."""
    path = uri_path(str(run.resources[frame.resource]["uri"]))
    bits = frame_file_mask(path, str(run.start["uid"]))
    return None if bits is None else checked_mask(bits, bits.shape)  # (frames: _fit_mask)


def _prepare_azint(run: RunState, azint: AzintParams) -> None:
    """Build the run's masked integration as soon as its mask arrives (the plans publish
    it while the detector starts, before the first frame): its pixel-to-bin matrix and
    the matrix on the OpenCL device (about 0.3 s for a megapixel detector) are then ready
    when the first frames come, instead of making them wait (the live lag's start). The
    derived run's pattern streams are declared then too (their bins are known with the
    mask): the catalog's writer creates a node per stream, two requests that made the
    first patterns wait 0.3 s (a busy machine)."""
    if run.integrator is None:
        return
    shape = run.integrator.geometry.shape
    if run.mask is not None and run.mask.shape != shape:
        return  # (the first frames fail with what does not match)
    chunk = azint_chunk(np.zeros((1, *shape), np.uint16), run.integrator, azint,
                        mask=run.mask)
    if run.derived is not None and not run.derived.has_stream("primary"):
        run.derived.declare_patterns(chunk.radial, sigma=chunk.sigma is not None, lag=True)


def _fit_mask(run: RunState, frames: np.ndarray[Any, Any]) -> None:
    """Check the run's mask against the frames read (``ReductionError`` when another
    shape: a mask of another detector or binning, as offline). A mask that fits is
    already the boolean image ``checked_mask`` makes: kept, not rebuilt per chunk."""
    if run.mask is not None and run.mask.shape != frames.shape[-2:]:
        checked_mask(run.mask, frames.shape[-2:])  # (raises, naming both shapes)


def _reduce_tomo(run: RunState, ready: list[Frame], tomo: TomoParams) -> None:
    stack = run.read(ready)
    _fit_mask(run, stack)
    projections: list[Frame] = []
    images: list[np.ndarray[Any, Any]] = []
    for frame, image in zip(ready, stack, strict=True):
        role = run.role(frame.desc)
        if role == "projection":
            projections.append(frame)
            images.append(image)
            continue
        (run.darks if role == "dark" else run.flats).append(image)
        run.lag(frame, time.time())
    if not projections:
        return
    if run.acc is None:
        refs = tomo_references(np.stack(run.darks) if run.darks else np.zeros((0, 0, 0)),
                               np.stack(run.flats) if run.flats else np.zeros((0, 0, 0)),
                               run.mask)
        run.rows = select_rows(tomo.rows, int(refs.dark.shape[0]))
        run.acc = TomoAccumulator(refs, run.rows, floor=tomo.floor, device=tomo.device)
        axis = run.start.get("rotation_axis")
        desc = run.descriptors[projections[0].desc]
        run.angles_from = "events" if axis in (desc.get("data_keys") or {}) else "start"
    run.acc.add(stack if len(images) == len(ready) else np.stack(images),
                [run.angle(f) for f in projections])
    now = time.time()
    for f in projections:
        run.lag(f, now)


def _reduce_azint(run: RunState, ready: list[Frame], azint: AzintParams) -> None:
    derived = run.derived
    assert derived is not None
    frames = run.read(ready, reuse=True)  # (done with once azint_chunk returns)
    _fit_mask(run, frames)
    chunk = azint_chunk(frames, run.integrator, azint, mask=run.mask)
    now = time.time()
    lags = [run.lag(f, now) for f in ready]
    derived.emit_patterns(chunk, [f.seq for f in ready], lags)


def complete(run: RunState, stop: dict[str, Any], callbacks: list[Callback],
             tomo: TomoParams, derived_dir: Path) -> None:
    """End the derived run at the raw run's ``stop``: the tomography volume written into
    ``derived_dir``, the stop document with the raw files' digests and the lag figures.
    Raises ``ReductionError`` when no frame (projection) arrived."""
    if run.reduction == "tomo_fbp":
        if run.acc is None:
            raise ReductionError(f"run {run.start['uid']}: no projections arrived "
                                 f"(raw run ended {stop.get('exit_status')!r})")
        begun = begin_derived(run, callbacks, tomo.metadata())
        begun.write_volume(derived_dir,
                           derived_file_name("tomo_fbp", run.start["uid"], begun.uid),
                           run.acc.slabs(), run.rows)
    elif run.result.frames == 0:
        raise ReductionError(f"run {run.start['uid']}: no frames arrived (raw run "
                             f"ended {stop.get('exit_status')!r})")
    derived = run.derived
    assert derived is not None
    raw_status = stop.get("exit_status", "success")
    status = "success" if raw_status == "success" else raw_status
    if stop.get(ENDED_BY_CONSUMER):  # not the raw run's stop: the follower gave up
        reason = str(stop.get("reason", ""))
    else:
        reason = "" if raw_status == "success" else f"raw run ended {raw_status!r}: " \
            f"{stop.get('reason', '')}"
    extra = {"rows": run.rows, "angles_from": run.angles_from} \
        if run.reduction == "tomo_fbp" else {}
    derived.stop(status, reason, **run.stats(digest=True), **extra)
    run.result.exit_status = status
    run.result.reason = reason


def record_failure(run: RunState, reason: str, callbacks: list[Callback]) -> list[str]:
    """Mark the run failed and end its derived run with ``reason`` (starting it first if
    the failure came before it began). Returns the errors met while recording that (the
    failure itself must not raise in the worker)."""
    run.failed = True
    run.result.exit_status = "fail"
    run.result.reason = reason
    run.ready.clear()
    run.pending.clear()
    try:
        params: dict[str, Any] = {}
        if run.reduction == "azint1d":
            params = {"geometry": run.start.get("geometry")}
        begin_derived(run, callbacks, params).stop("fail", reason, **run.stats(digest=False))
    except Exception as inner:
        log.exception("live reducer: cannot record the failure of run %s",
                      run.start.get("uid"))
        return [f"recording failure: {type(inner).__name__}: {inner}"]
    return []
