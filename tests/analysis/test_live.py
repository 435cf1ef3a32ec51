"""Live reduction (``analysis.live.LiveReducer``) following real runs of the beamline:
same numbers as the offline reduction, lag recorded, failures and a full inbox never
touch the raw run."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np
import pytest

from analysis.live import LiveReducer, LiveRunResult
from analysis.reduce import DEFAULT_BINS, DEFAULT_UNIT, reduce_run
from plans import diffraction_scan

from .conftest import PROJECTIONS, AcquiredRuns


def _stop(catalog: Any, uid: str | None) -> dict[str, Any]:
    assert uid is not None
    return dict(catalog.run(uid).metadata["stop"])


def test_live_tomography_equals_offline(acquired: AcquiredRuns) -> None:
    catalog = acquired.catalog
    result = acquired.live.results[acquired.tomo_uid]
    assert result.finished and result.exit_status == "success", result.reason
    assert result.frames == 2 + 2 + PROJECTIONS and result.dropped_frames == 0
    assert result.derived_uid is not None
    live_run = catalog.run(result.derived_uid)
    live_volume = np.asarray(live_run["primary"]["reconstruction"][:])
    assert live_volume.shape == (64, 64, 64) and live_volume.dtype == np.float32

    offline = reduce_run(catalog, acquired.tomo_uid)
    offline_volume = np.asarray(catalog.run(offline.uid)["primary"]["reconstruction"][:])
    scale = np.abs(offline_volume).max()
    assert scale > 0.01
    np.testing.assert_allclose(live_volume, offline_volume, rtol=0, atol=1e-5 * scale)

    start = live_run.metadata["start"]
    assert start["raw_uid"] == acquired.tomo_uid and start["live"] is True
    assert start["inputs"] == []  # unknown when the raw run starts: see the stop document
    stop = live_run.metadata["stop"]
    offline_inputs = catalog.run(offline.uid).metadata["start"]["inputs"]
    assert sorted(i["uri"] for i in stop["inputs"]) == sorted(i["uri"] for i in offline_inputs)
    assert {i["sha256"] for i in stop["inputs"]} == {i["sha256"] for i in offline_inputs}
    assert stop["angles_from"] == "events" and stop["rows"] == list(range(64))


def test_live_diffraction_equals_offline(acquired: AcquiredRuns) -> None:
    catalog = acquired.catalog
    result = acquired.live.results[acquired.diff_uid]
    assert result.exit_status == "success", result.reason
    assert result.derived_uid is not None
    live_run = catalog.run(result.derived_uid)
    offline = catalog.run(reduce_run(catalog, acquired.diff_uid).uid)
    for key in ("intensity", "sigma", "raw_seq_num"):
        np.testing.assert_array_equal(np.asarray(live_run["primary"][key].read()),
                                      np.asarray(offline["primary"][key].read()))
    np.testing.assert_array_equal(np.asarray(live_run["axis"]["radial"][0]),
                                  np.asarray(offline["axis"]["radial"][0]))
    lags = np.asarray(live_run["primary"]["lag"].read())
    assert lags.shape == (3,) and np.all(lags >= 0)
    np.testing.assert_allclose(lags, result.lags)


def _mask_descriptors(docs: list[tuple[str, dict[str, Any]]]) -> set[str]:
    return {doc["uid"] for name, doc in docs if name == "descriptor" and doc["name"] == "mask"}


def _first_frame(docs: list[tuple[str, dict[str, Any]]]) -> int:
    """The index of the first frame's document, after the mask's ``stream_datum``."""
    mask_desc = _mask_descriptors(docs)
    return next(i for i, (name, doc) in enumerate(docs)
                if name in ("event", "event_page", "stream_datum")
                and doc.get("descriptor") not in mask_desc and i > 0
                and any(n == "stream_datum" and d.get("descriptor") in mask_desc
                        for n, d in docs[:i]))


def test_the_masked_integration_is_built_when_the_mask_arrives(
        acquired: AcquiredRuns, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plans publish the run's pixel mask before the first frame: the reducer builds
    the integration with it then, so the first frames do not wait for it (the largest
    part of the live lag's start on a megapixel detector); the patterns are the live
    run's."""
    import analysis.azint as azint

    built: list[int] = []
    real_build = azint.build
    monkeypatch.setattr(azint, "build", lambda *a, **k: (built.append(1), real_build(*a, **k))[1])
    docs = acquired.documents[acquired.diff_uid]
    first_frame = _first_frame(docs)
    reducer = LiveReducer.for_catalog(acquired.catalog)
    try:
        for name, doc in docs[:first_frame]:
            reducer(name, doc)
        assert reducer.wait(None, timeout=60)
        before = len(built)
        for name, doc in docs[first_frame:]:
            reducer(name, doc)
        assert reducer.wait(acquired.diff_uid, timeout=60)
    finally:
        reducer.close()
    assert len(built) == before, "the first frames waited for their integration's build"
    result = reducer.results[acquired.diff_uid]
    assert result.exit_status == "success", result.reason
    live = acquired.catalog.run(acquired.live.results[acquired.diff_uid].derived_uid)
    again = acquired.catalog.run(result.derived_uid)
    np.testing.assert_array_equal(np.asarray(again["primary"]["intensity"].read()),
                                  np.asarray(live["primary"]["intensity"].read()))


def test_the_pattern_streams_are_declared_when_the_mask_arrives(
        acquired: AcquiredRuns) -> None:
    """With the mask (before the first frame) the derived run's ``axis`` and ``primary``
    streams are declared: the catalog's writer creates their nodes then, not while the
    first patterns wait for them; the derived run is the live one."""
    docs = acquired.documents[acquired.diff_uid]
    first_frame = _first_frame(docs)
    sent: list[tuple[str, dict[str, Any]]] = []
    reducer = LiveReducer.for_catalog(acquired.catalog,
                                      extra_callbacks=(lambda n, d: sent.append((n, d)),))
    try:
        for name, doc in docs[:first_frame]:
            reducer(name, doc)
        assert reducer.wait(None, timeout=60)
        declared = [doc["name"] for name, doc in sent if name == "descriptor"]
        assert declared == ["axis", "primary"]
        assert not any(name == "event_page" for name, _ in sent)  # (no pattern yet)
        for name, doc in docs[first_frame:]:
            reducer(name, doc)
        assert reducer.wait(acquired.diff_uid, timeout=60)
    finally:
        reducer.close()
    assert [doc["name"] for name, doc in sent if name == "descriptor"] == ["axis", "primary"]
    result = reducer.results[acquired.diff_uid]
    assert result.exit_status == "success", result.reason
    live = acquired.catalog.run(acquired.live.results[acquired.diff_uid].derived_uid)
    again = acquired.catalog.run(result.derived_uid)
    for key in ("intensity", "sigma", "raw_seq_num"):
        np.testing.assert_array_equal(np.asarray(again["primary"][key].read()),
                                      np.asarray(live["primary"][key].read()))
    np.testing.assert_array_equal(np.asarray(again["axis"]["radial"][0]),
                                  np.asarray(live["axis"]["radial"][0]))


def test_lag_is_recorded(acquired: AcquiredRuns) -> None:
    for uid in (acquired.tomo_uid, acquired.diff_uid):
        result = acquired.live.results[uid]
        stop = _stop(acquired.catalog, result.derived_uid)
        assert math.isfinite(stop["lag_max_s"]) and math.isfinite(stop["lag_mean_s"])
        assert 0 <= stop["lag_mean_s"] <= stop["lag_max_s"]
        assert stop["lag_max_s"] == result.lag_max and stop["frames"] == len(result.lags)
        assert stop["dropped_frames"] == 0
        # measured here on the shared 2-core machine (noisy): printed with -s
        print(f"live lag of {uid[:8]}: max {result.lag_max:.3f} s, "
              f"mean {result.lag_mean:.3f} s")
    assert acquired.live.lag_max == acquired.live.results[acquired.diff_uid].lag_max


def test_reduction_failures_do_not_abort_the_scan(acquired: AcquiredRuns) -> None:
    bl, live, catalog = acquired.beamline, acquired.live, acquired.catalog
    bl.use_powder()
    good = bl.geometry.to_metadata()
    cases = {
        # fails when the raw run starts: no such detector distance
        "start": ({**good, "dist": -1.0}, "PoniError: start document 'geometry'"),
        # fails at the first frame: 64x64 frames, a geometry for 32x32
        "frame": ({**good, "shape": [32, 32]}, "do not match the geometry's detector shape"),
    }
    for when, (geometry, message) in cases.items():
        errors_before = len(live.errors)
        (uid,) = acquired.RE(diffraction_scan(bl.det, bl.sample_x, bl.sample_y,
                                              [(0.0, 0.0), (0.2, 0.0)], num=1,
                                              shutter=bl.shutter, md={"geometry": geometry}))
        assert live.wait(uid, timeout=60)
        raw = catalog.run(uid)
        assert raw.metadata["stop"]["exit_status"] == "success", when
        assert raw["primary"]["det_image"].shape == (2, 64, 64)
        result = live.results[uid]
        assert result.exit_status == "fail" and message in result.reason, (when, result)
        stop = _stop(catalog, result.derived_uid)
        assert stop["exit_status"] == "fail" and message in stop["reason"]
        assert catalog.run(result.derived_uid).metadata["start"]["raw_uid"] == uid
        assert len(live.errors) == errors_before + 1
    # the reducer keeps working for the next run
    (uid,) = acquired.RE(diffraction_scan(bl.det, bl.sample_x, bl.sample_y, [(0.0, 0.0)],
                                          shutter=bl.shutter, md={"geometry": good}))
    assert live.wait(uid, timeout=60) and live.results[uid].exit_status == "success"


def _replayed(acquired: AcquiredRuns, uid: str, **options: Any) -> LiveRunResult:
    """The result of a new reducer (``LiveReducer.for_catalog(catalog, **options)``) fed
    the documents of the acquired run ``uid`` and closed once it has reduced it."""
    reducer = LiveReducer.for_catalog(acquired.catalog, **options)
    try:
        for name, doc in acquired.documents[uid]:
            reducer(name, doc)
        assert reducer.wait(uid, timeout=60)
    finally:
        reducer.close()
    return reducer.results[uid]


def test_replayed_documents_reduce_like_the_live_run(acquired: AcquiredRuns) -> None:
    """Documents alone drive the reducer (as from a 0MQ proxy, files already closed)."""
    catalog = acquired.catalog
    replayed = _replayed(acquired, acquired.tomo_uid)
    assert replayed.exit_status == "success", replayed.reason
    first = catalog.run(acquired.live.results[acquired.tomo_uid].derived_uid)
    again = catalog.run(replayed.derived_uid)
    a = np.asarray(first["primary"]["reconstruction"][:])
    b = np.asarray(again["primary"]["reconstruction"][:])
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(a).max())


@pytest.mark.parametrize("unit", [None, "q_nm^-1"])
def test_none_for_bins_or_unit_is_the_default_as_offline(acquired: AcquiredRuns,
                                                         unit: str | None) -> None:
    """``bins=None`` and ``unit=None`` mean ``DEFAULT_BINS`` and ``DEFAULT_UNIT``, as for
    ``reduce_run`` (a live stream has runs of both reductions, so no caller can give the
    diffraction options only when they apply): the replayed diffraction run is reduced
    with them, to the offline reduction's pattern."""
    catalog = acquired.catalog
    result = _replayed(acquired, acquired.diff_uid, bins=None, unit=unit)
    assert result.exit_status == "success", result.reason
    live_run = catalog.run(result.derived_uid)
    start = live_run.metadata["start"]
    assert (start["bins"], start["unit"]) == (DEFAULT_BINS, unit or DEFAULT_UNIT)
    offline = catalog.run(reduce_run(catalog, acquired.diff_uid, bins=None, unit=unit).uid)
    radial = np.asarray(live_run["axis"]["radial"][0])
    assert radial.shape == (DEFAULT_BINS,)
    np.testing.assert_array_equal(radial, np.asarray(offline["axis"]["radial"][0]))
    np.testing.assert_array_equal(np.asarray(live_run["primary"]["intensity"].read()),
                                  np.asarray(offline["primary"]["intensity"].read()))


def test_full_inbox_drops_reductions_without_blocking(acquired: AcquiredRuns) -> None:
    """A consumer of the derived run that stalls fills the inbox: frame documents are
    dropped after ``put_timeout`` (never blocking longer), counted, and the derived run
    still ends with a stop document."""
    catalog = acquired.catalog
    gate = threading.Event()
    seen: list[str] = []

    def stalled_consumer(name: str, doc: dict[str, Any]) -> None:
        gate.wait(30)
        seen.append(name)

    reducer = LiveReducer([stalled_consumer, catalog.writer()], catalog.raw_dir, capacity=2,
                          put_timeout=0.05)
    docs = acquired.documents[acquired.tomo_uid]
    mask_desc = _mask_descriptors(docs)
    # the mask's documents are never dropped (a reduction without it would be wrong)
    frame_docs = sum(name in ("stream_datum", "event") and doc["descriptor"] not in mask_desc
                     for name, doc in docs)
    try:
        t0 = time.perf_counter()
        for name, doc in docs:
            reducer(name, doc)
        elapsed = time.perf_counter() - t0
        gate.set()
        assert reducer.wait(acquired.tomo_uid, timeout=60)
    finally:
        gate.set()
        reducer.close()
    assert elapsed < 1.0  # one timeout, then shedding without waiting
    assert reducer.dropped_documents == frame_docs - 2
    result = reducer.results[acquired.tomo_uid]
    # the two documents kept are the first dark's datum and event: no projections left
    assert result.exit_status == "fail" and "no projections arrived" in result.reason
    assert result.dropped_frames == 2 + 2 + PROJECTIONS - 1
    assert seen[0] == "start" and seen[-1] == "stop"
    stop = _stop(catalog, result.derived_uid)
    assert stop["dropped_frames"] == result.dropped_frames


def test_runs_without_reduction_are_skipped(acquired: AcquiredRuns) -> None:
    import bluesky.plans as bp

    (uid,) = acquired.RE(bp.count([acquired.beamline.det], 1))
    assert acquired.live.wait(uid, timeout=30)
    assert acquired.live.results[uid].exit_status == "skipped"
    assert acquired.live.results[uid].derived_uid is None
    assert len(acquired.catalog.derived_runs(uid)) == 0


def test_a_consumer_that_stops_mid_run_says_so_not_that_the_raw_run_aborted(
        acquired: AcquiredRuns) -> None:
    from analysis.live_consumer import STOP_REASON, _abort_open_runs

    catalog = acquired.catalog
    reducer = LiveReducer.for_catalog(catalog)
    try:
        for name, doc in acquired.documents[acquired.diff_uid]:
            if name != "stop":  # the consumer stops before the raw run ends
                reducer(name, doc)
        _abort_open_runs(reducer)
        assert reducer.wait(acquired.diff_uid, timeout=60)
    finally:
        reducer.close()
    result = reducer.results[acquired.diff_uid]
    assert (result.exit_status, result.reason) == ("abort", STOP_REASON)
    assert _stop(catalog, result.derived_uid)["reason"] == STOP_REASON
    # the raw run itself ended well and is untouched
    assert catalog.run(acquired.diff_uid).metadata["stop"]["exit_status"] == "success"


def test_warming_up_for_megapixel_frames_does_not_build_their_volume() -> None:
    """warm_up compiles the back-projection on one group of slices: for 1024 x 1024
    frames the whole volume (1024 slices of 1024 x 1024 float32, 4 GB, and as much again
    to read it back) must not be allocated. Measured in a fresh process (peak memory)."""
    import subprocess
    import sys

    code = """
from analysis.live import LiveReducer, LiveRunResult
def peak():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) // 1024
live = LiveReducer([], ".")
before = peak()
live.warm_up((1024, 1024))
assert not live.errors, live.errors
live.close()
print(peak() - before)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    grown_mb = int(done.stdout.split()[-1])
    assert grown_mb < 1000, f"warm_up grew the peak memory by {grown_mb} MB"


def test_read_frames_in_any_order_while_written_and_after(tmp_path: Any) -> None:
    """Frames asked in any order (runs of consecutive ones are read as one slice) come
    back as written, from a file the writer still has open and from the closed file; a
    frame the file does not have is an error naming it."""
    import pytest

    from analysis.live import read_frames
    from analysis.live_runs import read_frame_stack
    from dataflow.hdf5 import FrameWriter
    from dataflow.hdf5_read import DEFAULT_DATASET
    from dataflow.integrity import HDF5ReadError

    frames = np.random.default_rng(3).integers(0, 60000, (20, 16, 24), dtype=np.uint16)
    writer = FrameWriter(tmp_path, "frames.h5", (16, 24), dtype=np.uint16)
    writer.append_many(frames)
    writer.flush()
    name = DEFAULT_DATASET
    order = [8, 9, 10, 11, 3, 4, 19, 0, 1, 2, 12]
    for _ in (0, 1):
        got = read_frames(writer.path, name, order)
        assert len(got) == len(order)
        for i, image in zip(order, got, strict=True):
            np.testing.assert_array_equal(image, frames[i])
        np.testing.assert_array_equal(read_frame_stack(writer.path, name, order), frames[order])
        run = read_frame_stack(writer.path, name, [4, 5, 6])  # one run: HDF5's own array
        np.testing.assert_array_equal(run, frames[4:7])
        assert run.flags.owndata and run.flags.writeable
        with pytest.raises((HDF5ReadError, IndexError), match=r"20"):
            read_frames(writer.path, name, [18, 19, 20])
        with pytest.raises((HDF5ReadError, IndexError), match=r"20"):
            read_frame_stack(writer.path, name, [19, 20])
        with pytest.raises(ValueError, match="no frames asked for"):
            read_frame_stack(writer.path, name, [])
        # into an earlier stack's memory while the writer has the file open (in this
        # process), a stack of its own otherwise and when it does not fit
        spare = np.zeros((12, 16, 24), np.uint16)
        got_into = read_frame_stack(writer.path, name, order, into=spare)
        np.testing.assert_array_equal(got_into, frames[order])
        assert np.shares_memory(got_into, spare) == (not writer.closed)
        for other in (np.zeros((5, 16, 24), np.uint16), np.zeros((12, 16, 24), np.int32),
                      np.zeros((12, 16, 23), np.uint16)):
            stack = read_frame_stack(writer.path, name, order, into=other)
            np.testing.assert_array_equal(stack, frames[order])
            assert not np.shares_memory(stack, other)
        if not writer.closed:
            writer.close()
