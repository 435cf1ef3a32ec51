"""``smeflow catalog repair`` closes the frame file of a killed scan, so the peers' readers
read it as far as it got.

The references are the readers themselves: h5py without SWMR and nexusformat's ``nxload``
refuse a file HDF5 still sees open for write ("already open for write"); DIALS' ``nxmx``
raises on the empty ``end_time`` (NXmx: "If the data collection aborts ... this field
should be omitted"). After the repair each of them reads the frames the file held before
it, bit for bit, and ``smeflow catalog verify`` finds the file as the repair recorded it.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import nxmx
import pytest
from nexusformat.nexus import NeXusError, nxload

from dataflow import repair as repair_module
from dataflow.catalog import Catalog
from dataflow.cli import main as catalog_main
from dataflow.hdf5_files import file_sha256
from dataflow.hdf5_read import FrameReader
from dataflow.integrity import read_sidecar, read_superblock
from dataflow.killed_file import close_killed_file
from dataflow.repair import RepairReport, _close_files, repair_run
from tests.dataflow.test_kill import killed_scan
from tests.dataflow.test_killed_nxmx import check_paired, written

DATA = "/entry/data/data"


def frames_of(path: Path) -> np.ndarray:
    """The frames of ``path`` as smeflow's reader serves them (each checked)."""
    with FrameReader(path) as reader:
        return np.asarray(reader.read())


def hold(path: Path) -> subprocess.Popen[str]:
    """Another process that has ``path`` open (a reader, or a writer still alive)."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                             "f = open(sys.argv[1], 'rb'); print('open', flush=True)\n"
                             "time.sleep(60)", str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    return proc


def test_a_killed_scans_file_is_closed_by_repair_and_read_by_every_reader(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    killed_scan(data, batch_size=0)
    with Catalog(data) as catalog:
        (summary,) = catalog.runs()
        uid = summary.uid
        (path,) = catalog.raw_dir.glob("det_*.h5")
    before, size, digest = frames_of(path), path.stat().st_size, file_sha256(path)
    assert len(before) >= 6 and before.any()
    assert read_superblock(path).open_for_write
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(path, "r")
    with pytest.raises(NeXusError, match="already open for write"):
        nxload(str(path))

    # refused while any process has the file open: nothing changes
    holder = hold(path)
    try:
        assert catalog_main(["repair", uid, "--data", str(data)]) == 1
        err = capsys.readouterr().err
        assert f"{path}: still open by process {holder.pid}" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait(10)
    with h5py.File(path, "r", swmr=True) as f, Catalog(data) as catalog:
        assert catalog.run(uid).metadata.get("stop") is None
        with pytest.raises(Exception, match=f"{path}: still open in this process"):
            repair_run(catalog, uid)
        assert f[DATA].shape[0] == len(before)
    assert file_sha256(path) == digest and read_superblock(path).open_for_write

    assert catalog_main(["repair", uid, "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert (f"closed {path}: HDF5 consistency flags cleared, empty end_time removed; "
            f"{len(before)} frames unchanged") in out
    assert "problem" not in out
    assert path.stat().st_size == size  # (h5clear -s alone cuts it back to its EOA)
    assert not read_superblock(path).open_for_write
    assert read_sidecar(path) == file_sha256(path) != digest
    with h5py.File(path, "r") as f:  # plain h5py, no SWMR
        np.testing.assert_array_equal(f[DATA][()], before)
        assert "end_time" not in f["entry"] and f["entry/end_time_estimated"][()]
    np.testing.assert_array_equal(nxload(str(path))["entry/data/data"].nxdata, before)
    np.testing.assert_array_equal(frames_of(path), before)
    with Catalog(data) as catalog:
        run = catalog.run(uid)
        (closed,) = run.metadata["recovery"]["files"]
        assert closed["path"] == str(path) and closed["frames"] == len(before)
        assert (closed["sha256_before"], closed["sha256"]) == (digest, file_sha256(path))
        served = np.asarray(run["primary"]["det_image"].read())
        np.testing.assert_array_equal(served, before[:len(served)])
    assert catalog_main(["verify", uid, "--data", str(data)]) == 3  # (no record: unverifiable)
    out = capsys.readouterr().out
    assert re.search(r"OK\s+frames\s+primary/det_image\s+\d+ frames intact on disk", out)

    # twice: nothing to repair, nothing changed
    after = file_sha256(path)
    assert catalog_main(["repair", uid, "--data", str(data)]) == 1
    assert "nothing to repair" in capsys.readouterr().err
    assert close_killed_file(path, {DATA: len(before)}) is None
    assert file_sha256(path) == after


def test_a_killed_nxmx_file_closed_is_read_by_nxmx_with_its_positions(tmp_path: Path) -> None:
    path = written(tmp_path, 70, close=False)
    with h5py.File(path, "r", swmr=True) as f:
        before = f[DATA][()]
        with pytest.raises(ValueError, match="ISO string"):
            _ = nxmx.NXmx(f).entries[0].end_time
    started = time.monotonic()
    closed = close_killed_file(path, {DATA: len(before)})
    assert closed is not None and closed.end_time_removed and time.monotonic() - started < 60
    with h5py.File(path, "r") as f:
        entry = nxmx.NXmx(f).entries[0]
        assert entry.end_time is None and entry.start_time is not None
        np.testing.assert_array_equal(entry.data[0][entry.data[0].signal][()], before)
        chain = nxmx.get_dependency_chain(entry.samples[0].depends_on)
        omega = next(t for t in chain if t.transformation_type == "rotation")
        assert len(omega) == 64  # the positions the writer flushed: unchanged
        check_paired(before[:64], np.stack(
            [omega[()].to("degree").magnitude,
             next(t for t in chain if t.transformation_type == "translation")[()]
             .to("mm").magnitude], axis=1))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == closed.sha256


def test_a_flagged_file_without_its_frame_dataset_is_a_problem_named_not_a_keyerror(
        tmp_path: Path) -> None:
    """A file a killed writer left flagged, without the dataset the run names (a review
    found ``KeyError 'Unable to synchronously open object'`` escaping the repair): the
    repair names the file and the dataset among its problems, and leaves the file as it
    was."""
    path = tmp_path / "k.h5"
    subprocess.run([sys.executable, "-c", (
        "import os, sys, h5py\n"
        "f = h5py.File(sys.argv[1], 'w', libver='latest')\n"
        "d = f.create_dataset('entry/other', shape=(0, 4, 4), maxshape=(None, 4, 4), "
        "dtype='u2', chunks=(1, 4, 4))\n"
        "f.swmr_mode = True\n"
        "d.resize((3, 4, 4)); d[:] = 7; d.flush()\n"
        "os._exit(0)"), str(path)], check=True)
    before = file_sha256(path)
    with pytest.raises(OSError, match=rf"{re.escape(str(path))}: has no frame dataset "
                                      rf"'{DATA}'"):
        close_killed_file(path, {DATA: 3})
    report = RepairReport("uid", "catalog")
    report.files[path] = {DATA: 3}
    _close_files(report, lambda: None)
    assert report.closed == [] and len(report.problems) == 1, report.problems
    assert f"no frame dataset '{DATA}'" in report.problems[0]
    assert file_sha256(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.h5"]


def test_a_run_repaired_before_repair_closed_files_gets_its_file_closed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs repaired before 3a40e96 have a stop document (abort, recovered) and a frame
    file still marked open for write. ``verify`` says so and what to do; ``repair``
    closes it and adds it to the run's ``recovery`` entry (it said 'nothing to repair',
    and ``verify`` said nothing of it: the file stayed unreadable to h5py, nxload, DIALS).
    """
    data = tmp_path / "data"
    killed_scan(data, batch_size=0)
    with Catalog(data) as catalog:
        (summary,) = catalog.runs()
        uid = summary.uid
        (path,) = catalog.raw_dir.glob("det_*.h5")
    before, digest = frames_of(path), file_sha256(path)
    with monkeypatch.context() as m:  # the repair of those versions: files left as found
        m.setattr(repair_module, "_close_files", lambda report, save: None)
        assert catalog_main(["repair", uid, "--data", str(data)]) == 0
    capsys.readouterr()
    with Catalog(data) as catalog:
        md = catalog.run(uid).metadata
        assert md["stop"]["reason"] == "recovered" and md["recovery"]["files"] == []
    assert read_superblock(path).open_for_write and file_sha256(path) == digest

    assert catalog_main(["verify", uid, "--data", str(data)]) == 1
    out = capsys.readouterr().out
    assert re.search(rf"OPEN\s+frames\s+{re.escape(str(path))}\s+still marked open for "
                     rf"write .*; smeflow catalog repair {uid} closes it", out), out

    # a damaged record of an unfinished repair: one error naming it, nothing changed
    record = data / "journal" / f"{uid}.repair.json"
    record.write_bytes(b'{"files": [1, 2')
    assert catalog_main(["repair", uid, "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (f"smeflow catalog: error: {record}: the record of an unfinished "
                           "repair is damaged (not the JSON a repair writes); the frame "
                           "files it names may be closed already: move it away and repair "
                           "the run again"), err
    assert read_superblock(path).open_for_write and file_sha256(path) == digest
    record.unlink()

    assert catalog_main(["repair", uid, "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert f"closed {path}: HDF5 consistency flags cleared, empty end_time removed" in out
    assert "stop document already written (exit_status abort, reason recovered): repair " \
           "finished" in out and "problem" not in out
    assert not read_superblock(path).open_for_write
    with h5py.File(path, "r") as f:  # plain h5py, no SWMR
        np.testing.assert_array_equal(f[DATA][()], before)
    np.testing.assert_array_equal(nxload(str(path))["entry/data/data"].nxdata, before)
    with Catalog(data) as catalog:
        md = catalog.run(uid).metadata
    (closed,) = md["recovery"]["files"]
    assert (closed["sha256_before"], closed["sha256"]) == (digest, file_sha256(path))
    assert closed["frames"] == len(before) and md["stop"]["reason"] == "recovered"
    assert catalog_main(["verify", uid, "--data", str(data)]) == 3  # (no record, all OK)
    assert "OPEN" not in capsys.readouterr().out
    assert catalog_main(["repair", uid, "--data", str(data)]) == 1
    assert "nothing to repair" in capsys.readouterr().err
