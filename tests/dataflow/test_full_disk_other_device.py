"""A full disk mid-scan with a frame-writing device that has no ``close_run_files()``
(another ophyd device writing through ``FrameWriter`` and closing its file at
``unstage``, as ``tests/dataflow/conftest.FrameCam`` does).

Measured before: the frame write that failed was the flush ``asset_docs`` makes when the
RunEngine collects the frames, and HDF5's own text became the run's stop reason: several
lines naming a buffer address, a write size and an offset ("[Errno 27] Can't write
unprocessed chunk data (file write failed: time = ..., buf = 0x7f..., total write size =
...)"). Now the stop says 'fail' with one line naming the file, the frames and why, and
what stays; the announced frames read back through the catalog, each intact. A disk
that fills at the file's last close fails the run too: the writers a run announced are
closed before its stop document (``dataflow.run_files``), not at ``unstage`` after it.
"""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dataflow.catalog import Catalog
from dataflow.hdf5 import FrameFileError, failed_write
from dataflow.integrity import read_sidecar
from tests.dataflow.conftest import make_frame

SHAPE = (256, 256)
SCAN = textwrap.dedent("""
    import resource, signal, sys
    import numpy as np
    from bluesky import RunEngine, plans as bp
    from ophyd import Component, Device, Signal
    from ophyd.status import StatusBase
    from dataflow.catalog import Catalog
    from dataflow.hdf5 import FrameWriter

    data, limit = sys.argv[1], int(sys.argv[2])

    def frame(i):
        base = np.arange(256 * 256, dtype=np.uint32).reshape(256, 256)
        return ((base * 7 + i * 1009) % 65521).astype(np.uint16)

    class Cam(Device):  # (no close_run_files: its file is closed at unstage)
        total = Component(Signal, value=0, kind="hinted")

        def stage(self):
            self.writer = FrameWriter(self.folder, "cam.h5", (256, 256), data_key="cam_image")
            self.i = 0
            return super().stage()

        def unstage(self):
            self.writer.close()
            return super().unstage()

        def trigger(self):
            self.writer.append(frame(self.i))
            self.total.put(int(frame(self.i).sum()))
            self.i += 1
            status = StatusBase()
            status.set_finished()
            return status

        def describe(self):
            d = super().describe()
            d["cam_image"] = {"source": "test", "shape": [256, 256], "dtype": "array",
                              "dtype_numpy": "<u2", "external": "STREAM:"}
            return d

        def collect_asset_docs(self):
            yield from self.writer.asset_docs()

    catalog = Catalog(data)
    RE = RunEngine({})
    catalog.subscribe(RE)
    cam = Cam(name="cam")
    cam.folder = catalog.raw_dir
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, as a full disk gives ENOSPC
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        RE(bp.count([cam], 40))
    except Exception as exc:
        sys.exit(f"scan failed: {exc}")
""")


def frame(i: int) -> np.ndarray:
    base = np.arange(SHAPE[0] * SHAPE[1], dtype=np.uint32).reshape(SHAPE)
    return ((base * 7 + i * 1009) % 65521).astype(np.uint16)


def test_a_full_disk_fails_the_run_with_one_line_naming_the_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Catalog(data).close()  # the catalog exists: the limit hits the frame file first
    biggest = max(p.stat().st_size for p in data.rglob("*") if p.is_file())
    limit = biggest + SHAPE[0] * SHAPE[1] * 2 * 8
    done = subprocess.run([sys.executable, "-c", SCAN, str(data), str(limit)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    path = data / "raw" / "cam.h5"
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"scan failed: {path}: the frame file could not be written to "
                           "the end (File too large)"), done.stderr[-2000:]
    with Catalog(data) as catalog:
        (summary,) = catalog.runs()
        run = catalog.run(summary.uid)
        stop = run.metadata["stop"]
        frames = np.asarray(run["primary"]["cam_image"].read())
    reason = stop["reason"]
    assert stop["exit_status"] == "fail"
    assert "\n" not in reason and "buf =" not in reason, reason
    assert reason.startswith(f"{path}: frame") and "could not be written (File too large); " \
        f"the {len(frames)} frames announced before stay in the file" in reason, reason
    assert 1 <= len(frames) < 40
    for i, got in enumerate(frames):
        np.testing.assert_array_equal(got, frame(i))


def _cam_failing_at_close(cam: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``cam``'s next file cannot be completed when closed (the disk fills at its last
    close: HDF5's close of the file fails once with ENOSPC)."""
    stage = type(cam).stage

    def staged(self: Any) -> list[Any]:
        done: list[Any] = stage(self)
        close, tried = self.writer._file.close, []

        def full() -> None:
            if not tried:
                tried.append(True)
                raise OSError(errno.ENOSPC, "No space left on device")
            close()
        self.writer._file.close = full
        return done
    monkeypatch.setattr(type(cam), "stage", staged)


def test_a_file_closed_at_unstage_is_closed_before_the_stop(
        catalog: Catalog, frame_cam: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A device that closes its FrameWriter at unstage (no close_run_files): measured
    before, the disk filling at that close left the stop saying 'success' and the error
    came out of RE(...) after the run. Now the run's announced writers are closed before
    its stop (dataflow.run_files): the stop says 'fail' naming the file; a file that
    closes well is closed, with its sidecar, at the stop, and unstage gets its digest."""
    from bluesky import RunEngine
    from bluesky.plans import count

    RE = RunEngine({})
    catalog.subscribe(RE)
    cam = frame_cam(name="cam", folder=catalog.raw_dir)
    at_stop: list[bool] = []

    def watch(name: str, doc: dict[str, Any]) -> None:
        if name == "stop":
            at_stop.append(cam.writer.closed and read_sidecar(cam.writer.path) is not None)
    (uid,) = RE(count([cam], 3), watch)
    assert at_stop == [True]
    assert catalog.run(uid).metadata["stop"]["exit_status"] == "success"
    assert cam.digests == [read_sidecar(cam.writer.path)]

    _cam_failing_at_close(cam, monkeypatch)
    stops: list[dict[str, Any]] = []
    with pytest.raises(FrameFileError, match="could not be written to the end"):
        RE(count([cam], 3), {"stop": [lambda name, doc: stops.append(doc)]})
    path = cam.writer.path
    (stop,) = stops
    assert stop["exit_status"] == "fail", stop
    assert stop["reason"] == (f"{path}: the frame file could not be written to the end "
                              "(No space left on device); the 3 frames announced before "
                              "stay readable, the file was closed as found, without its "
                              ".sha256")
    assert failed_write(path) == "No space left on device"
    run = catalog.run(stop["run_start"])
    assert run.metadata["stop"]["exit_status"] == "fail"
    for i, got in enumerate(np.asarray(run["primary"]["cam_image"].read())):
        np.testing.assert_array_equal(got, make_frame(i))


def _announced_writer(folder: Path, name: str) -> Any:
    from dataflow.hdf5 import FrameWriter

    writer = FrameWriter(folder, name, (4, 4))
    writer.append(np.zeros((4, 4), np.uint16))
    list(writer.asset_docs())  # (announced: to another run, RunEngine or thread)
    return writer


@pytest.mark.parametrize("where", ["before the run", "on another thread"])
def test_a_run_closes_only_the_writers_it_announced(tmp_path: Path, where: str) -> None:
    """The review of c5f8cd7: every announced writer of the process was closed at any
    run's close_run (another RunEngine's, a live reducer thread's, one a user keeps), so
    its next append was refused, and its failing close failed the unrelated run."""
    import threading

    import bluesky.plans as bp
    from bluesky import RunEngine
    from ophyd.sim import det

    from dataflow import run_files

    if where == "before the run":
        other = _announced_writer(tmp_path, "other.h5")
    else:
        made: list[Any] = []

        def announce() -> None:
            made.append(_announced_writer(tmp_path, "other.h5"))

        thread = threading.Thread(target=announce)
        thread.start()
        thread.join()
        (other,) = made

    def full_disk() -> None:
        raise OSError(errno.ENOSPC, f"{other.path}: No space left on device")

    real_close, other.close = other.close, full_disk
    RE = RunEngine({})
    run_files.install(RE)
    stops: list[dict[str, Any]] = []
    RE.subscribe(lambda name, doc: stops.append(doc) if name == "stop" else None)
    RE(bp.count([det]))
    assert stops[-1]["exit_status"] == "success"
    other.close = real_close
    assert not other.closed
    other.append(np.ones((4, 4), np.uint16))  # (still open: its owner goes on)
    other.close()
