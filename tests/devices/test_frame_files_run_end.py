"""A run's frame files are closed before its stop document (``dataflow.run_files``, which
``Catalog.subscribe`` installs): a file the disk cannot complete at its close fails the
run, instead of a stop saying ``success`` followed by the error at ``unstage``."""

from __future__ import annotations

import errno
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import pytest

from dataflow.hdf5 import FrameFileError, FrameWriter, failed_write
from devices.fly import FlyParameters
from devices.flyer import DetectorFlyer


def _failing_at_close(det: Any, monkeypatch: pytest.MonkeyPatch) -> list[FrameWriter]:
    """The detector's files from now on cannot be completed when closed (the disk fills
    at their last close, as on a full disk or a quota HDF5 meets writing its last
    metadata); returns the writers opened."""
    opened: list[FrameWriter] = []
    open_file = det.files._open

    def open_failing(*args: Any) -> FrameWriter:
        writer: FrameWriter = open_file(*args)
        close, tried = writer._file.close, []

        def full() -> None:  # (the first close fails: the file is left to close_failed_file)
            if not tried:
                tried.append(True)
                raise OSError(errno.ENOSPC, "No space left on device")
            close()
        writer._file.close = full  # type: ignore[method-assign]
        opened.append(writer)
        return writer
    monkeypatch.setattr(det.files, "_open", open_failing)
    return opened


def _run(bl: Any, plan: Any) -> tuple[list[tuple[str, dict[str, Any]]], list[bool]]:
    """Run ``plan``: its documents, and at its stop whether the detector's files were
    all closed."""
    docs: list[tuple[str, dict[str, Any]]] = []
    closed_at_stop: list[bool] = []

    def watch(name: str, doc: dict[str, Any]) -> None:
        docs.append((name, doc))
        if name == "stop":
            closed_at_stop.append(not bl.det.files.open_files())
    bl.RE(plan, watch)
    return docs, closed_at_stop


def test_the_files_are_closed_before_the_stop_document(smeflow_beamline: Any) -> None:
    """Closed at unstage before: the stop came while the file was open. Two runs in one
    staging get files of their own (each run's stream_resource names its own file)."""
    bl = smeflow_beamline
    runs = [bpp.run_wrapper(bpp.pchain(*(bps.trigger_and_read([bl.det])
                                         for _ in range(n)))) for n in (2, 1)]
    plan = bpp.stage_wrapper(bpp.pchain(*runs), [bl.det])
    docs, closed_at_stop = _run(bl, plan)
    assert closed_at_stop == [True, True]
    uris = [doc["uri"] for name, doc in docs if name == "stream_resource"]
    assert len(uris) == 2 and len(set(uris)) == 2
    assert [doc["exit_status"] for name, doc in docs if name == "stop"] == ["success"] * 2
    assert list(bl.det.digests) == [uri.removeprefix("file://localhost") for uri in uris]


def test_a_file_that_cannot_be_closed_fails_its_run(
        smeflow_beamline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills at the file's last close: the run's stop said 'success' and the
    FrameFileError came after it (at unstage), a successful run in the catalog whose
    file is not whole. Now the stop says 'fail', naming the file, and RE raises."""
    bl = smeflow_beamline
    opened = _failing_at_close(bl.det, monkeypatch)
    docs: list[tuple[str, dict[str, Any]]] = []
    with pytest.raises(FrameFileError, match="could not be written to the end"):
        bl.RE(bp.count([bl.det], 2), lambda name, doc: docs.append((name, doc)))
    (writer,) = opened
    stop = docs[-1][1]
    assert docs[-1][0] == "stop" and stop["exit_status"] == "fail"
    assert stop["reason"].startswith(f"{writer.path}: the frame file could not be written "
                                     "to the end (No space left on device)")
    assert failed_write(writer.path) == "No space left on device"
    run = bl.catalog.run(stop["run_start"])
    assert run.metadata["stop"]["exit_status"] == "fail"
    assert not bl.det.files.staged  # (unstaged after it, as a failed plan is)
    monkeypatch.undo()  # (room on the disk again: the next run is not touched)
    (uid,) = bl.RE(bp.count([bl.det], 1))
    assert bl.catalog.run(uid).metadata["stop"]["exit_status"] == "success"


def test_a_failing_plan_keeps_its_own_error_and_adds_the_files(
        smeflow_beamline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan that fails after a frame, whose file then cannot be closed either: the stop
    keeps the plan's failure first and adds the file's; RE raises the plan's error."""
    bl = smeflow_beamline

    def fails() -> Any:
        yield from bps.trigger_and_read([bl.det])
        raise ValueError("the user's plan failed")
    writers = _failing_at_close(bl.det, monkeypatch)
    docs: list[tuple[str, dict[str, Any]]] = []
    with pytest.raises(ValueError, match="the user's plan failed"):
        bl.RE(bpp.stage_wrapper(bpp.run_wrapper(fails()), [bl.det]),
              lambda name, doc: docs.append((name, doc)))
    (written,) = writers
    stop = docs[-1][1]
    assert stop["exit_status"] == "fail"
    assert stop["reason"].startswith(f"the user's plan failed; {written.path}: the frame "
                                     "file could not be written to the end")


def test_a_fly_file_that_cannot_be_closed_fails_its_run(
        smeflow_beamline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """bp.fly: the flyer stages the detector itself and unstaged it at the stop; the
    finished acquisition's file is closed before the stop now, and its failure fails
    the run."""
    bl = smeflow_beamline
    opened = _failing_at_close(bl.det, monkeypatch)
    flyer = DetectorFlyer(bl.det, FlyParameters(frames=6, exposure=0.005, period=0.005))
    docs: list[tuple[str, dict[str, Any]]] = []
    with pytest.raises(FrameFileError, match="could not be written to the end"):
        bl.RE(bp.fly([flyer]), lambda name, doc: docs.append((name, doc)))
    (writer,) = opened
    assert "_fly" in writer.path.name
    stop = docs[-1][1]
    assert stop["exit_status"] == "fail" and str(writer.path) in stop["reason"]
    assert not bl.det.files.staged


def test_without_the_preprocessor_the_stop_says_success_and_re_raises(
        smeflow_beamline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/provenance.md: a RunEngine no catalog subscribed and without
    ``run_files.install``: bluesky emits the stop at ``close_run`` and calls no device
    there, so the stop says 'success'; the detector closes the file at ``unstage``, after
    it, and the file's error comes out of ``RE(...)`` — visible to its caller, not in the
    run. Installing the preprocessor fails the run."""
    from bluesky import RunEngine

    from dataflow import run_files

    bl = smeflow_beamline
    for install, status in ((False, "success"), (True, "fail")):
        RE = RunEngine({})
        if install:
            run_files.install(RE)
        opened = _failing_at_close(bl.det, monkeypatch)
        stops: list[dict[str, Any]] = []

        def keep(name: str, doc: dict[str, Any], stops: list[Any] = stops) -> None:
            stops.append(doc)
        with pytest.raises(FrameFileError, match="could not be written to the end"):
            RE(bp.count([bl.det], 2), {"stop": [keep]})
        (writer,) = opened
        assert [stop["exit_status"] for stop in stops] == [status]
        assert failed_write(writer.path) == "No space left on device"
        assert not bl.det.files.staged
        monkeypatch.undo()
