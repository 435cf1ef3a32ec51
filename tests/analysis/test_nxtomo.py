"""``smeflow export nxtomo`` (``analysis.nxtomo``): tomography runs as NeXus NXtomo files,
read back by what ESRF's reconstruction tools read them with (tomoscan's ``NXtomoScan``,
the reader of nabu and tomwer; nxtomo's ``NXtomo.load``) and checked by NeXus's own
validator against the NXtomo application definition.

The runs: a step ``tomo_scan`` and a ``fly_tomo_scan`` (whose projections' angles are
the ones the position capture latched, not the nominal ones) and a ``bp.count`` (no
tomography), on the compiled 64×64 beamline, in one catalog.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bluesky.plans as bp
import h5py
import numpy as np
import pytest

from analysis.nxtomo import export_nxtomo
from analysis.nxtomo_cli import export_main
from analysis.reductions import ReductionError

N_DARKS, N_FLATS, N_PROJ = 2, 1, 5


@dataclass
class Runs:
    catalog: Any
    step: str
    fly: str
    count: str


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    from bluesky import RunEngine
    from bluesky import plan_stubs as bps

    from dataflow.catalog import Catalog
    from devices.beamline import Beamline
    from fpga.designs.params import ChainParams
    from plans import fly_tomo_scan, tomo_scan

    catalog = Catalog(tmp_path_factory.mktemp("nxtomo") / "data")
    RE = RunEngine({})
    catalog.subscribe(RE)
    bl = Beamline.create(catalog.raw_dir, params=ChainParams(64, 64, 16), backend="compiled",
                         time_scale=0.001)
    try:
        RE(bps.mv(bl.shutter, "open"))
        bl.use_phantom()
        args = (bl.det, bl.rotation, bl.sample_x, bl.shutter)
        (step,) = RE(tomo_scan(*args, out_position=20.0, num_projections=N_PROJ,
                               n_darks=N_DARKS, n_flats=N_FLATS))
        (fly,) = RE(fly_tomo_scan(*args, out_position=20.0, exposure=0.1,
                                  num_projections=N_PROJ, n_darks=N_DARKS, n_flats=N_FLATS))
        (count,) = RE(bp.count([bl.det], 1))
        yield Runs(catalog, step, fly, count)
    finally:
        bl.close()
        catalog.close()


def stored(run: Any, stream: str, key: str) -> np.ndarray:
    return np.asarray(run[stream][key].read())


def expected(run: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frames, image keys and angles of ``run`` in the order NXtomo files list them."""
    frames = [stored(run, s, "det_image") for s in ("dark", "flat", "primary")]
    angles = [stored(run, s, "rotation") for s in ("dark", "flat", "primary")]
    keys = np.repeat([2, 1, 0], [len(f) for f in frames])
    return np.concatenate(frames), keys, np.concatenate(angles)


@pytest.mark.parametrize("kind", ["step", "fly"])
def test_tomoscan_reads_the_exported_scan(runs: Runs, tmp_path: Path, kind: str) -> None:
    """Darks, flats and projections come back from tomoscan's ``NXtomoScan`` as the
    catalog has them, bit for bit, each with the rotation stage's reading."""
    from silx.io.utils import get_data
    from tomoscan.esrf.scan.nxtomoscan import NXtomoScan

    run = runs.catalog.run(getattr(runs, kind))
    done = export_nxtomo(run, tmp_path / "scan.nx")
    assert done.frames == {"dark": N_DARKS, "flat": N_FLATS, "projection": N_PROJ}
    frames, keys, angles = expected(run)
    scan = NXtomoScan(str(done.path), done.entry)
    assert (len(scan.darks), len(scan.flats), len(scan.projections)) == (N_DARKS, N_FLATS,
                                                                         N_PROJ)
    for index, key in enumerate(keys):
        url = {2: scan.darks, 1: scan.flats, 0: scan.projections}[int(key)][index]
        np.testing.assert_array_equal(get_data(url), frames[index])
    np.testing.assert_array_equal(scan.rotation_angle, angles)
    assert scan.sample_x_pixel_size == pytest.approx(20e-6)  # (the detector's 20 µm)
    with h5py.File(done.path, "r") as f:
        data = f[f"{done.entry}/instrument/detector/data"]
        assert data.dtype == frames.dtype and not data.is_virtual
        np.testing.assert_array_equal(f[f"{done.entry}/data/data"][()], frames)
        mask = f[f"{done.entry}/instrument/detector/pixel_mask"][()]
    np.testing.assert_array_equal(mask, stored(run, "mask", "det_pixel_mask")[0])


def test_a_fly_scans_angles_are_the_latched_ones(runs: Runs, tmp_path: Path) -> None:
    """The projections of a fly scan are taken while the stage turns: their angles are
    the captured positions (mid-exposure), not the start document's nominal ones."""
    from nxtomo.application.nxtomo import NXtomo

    run = runs.catalog.run(runs.fly)
    done = export_nxtomo(run, tmp_path / "fly.nx")
    nx = NXtomo().load(str(done.path), done.entry)
    angles = nx.sample.rotation_angle.magnitude[-N_PROJ:]
    measured = stored(run, "primary", "rotation")
    np.testing.assert_array_equal(angles, measured)
    nominal = np.linspace(0.0, 180.0, N_PROJ, endpoint=False)
    assert not np.allclose(angles, nominal)
    assert nx.start_time is not None and nx.end_time is not None
    assert nx.start_time < nx.end_time


def test_the_file_follows_nxtomo(runs: Runs, tmp_path: Path) -> None:
    """NeXus's validator finds nothing against NXtomo, and no error against the base
    classes."""
    from nexusformat.nexus import validate

    done = export_nxtomo(runs.catalog.run(runs.step), tmp_path / "scan.nx")
    logging.getLogger("nexusformat").setLevel(logging.ERROR)
    assert validate.validate_application(str(done.path)) == (0, 0)
    assert validate.validate_file(str(done.path))[1] == 0


def test_linked_frames_stay_in_the_runs_files(runs: Runs, tmp_path: Path) -> None:
    """``link=True``: a virtual dataset over the run's files by relative path — the same
    frames, and when the export and the data folder move together, the moved files'."""
    run = runs.catalog.run(runs.step)
    frames, _, _ = expected(run)
    data_dir = Path(runs.catalog.root)
    done = export_nxtomo(run, data_dir / "exports" / "scan.nx", link=True)
    try:
        copied = export_nxtomo(run, tmp_path / "copied.nx")
        assert done.linked and done.path.stat().st_size < copied.path.stat().st_size / 2
        moved = tmp_path / "moved"
        shutil.copytree(data_dir / "raw", moved / "raw")
        shutil.copytree(data_dir / "exports", moved / "exports")
    finally:
        shutil.rmtree(data_dir / "exports")
    with h5py.File(moved / "exports" / "scan.nx", "r") as f:
        sources = [s.file_name for s in f["entry0000/instrument/detector/data"].virtual_sources()]
    (projections,) = [name for name in sources if name.endswith("_primary.h5")]
    with h5py.File(moved / "exports" / projections, "r+") as f:
        f["entry/data/data"][0] = 7  # (the moved copy's first projection only)
    with h5py.File(moved / "exports" / "scan.nx", "r") as f:
        data = f["entry0000/instrument/detector/data"]
        assert data.is_virtual and data.dtype == frames.dtype
        assert all(not os.path.isabs(s.file_name) for s in data.virtual_sources())
        read = data[()]
    first = N_DARKS + N_FLATS
    assert (read[first] == 7).all()
    np.testing.assert_array_equal(np.delete(read, first, axis=0),
                                  np.delete(frames, first, axis=0))


def test_a_run_without_tomography_is_refused(runs: Runs, tmp_path: Path) -> None:
    """A ``bp.count`` run has no darks, flats or angles: one error naming the run, and
    nothing written."""
    with pytest.raises(ReductionError, match=f"run {runs.count}: not a tomography run"):
        export_nxtomo(runs.catalog.run(runs.count), tmp_path / "count.nx")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_kept(runs: Runs, tmp_path: Path) -> None:
    out = tmp_path / "scan.nx"
    out.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="exists"):
        export_nxtomo(runs.catalog.run(runs.step), out)
    assert out.read_bytes() == b"precious"
    export_nxtomo(runs.catalog.run(runs.step), out, overwrite=True)
    assert h5py.is_hdf5(out)
    assert [p.name for p in tmp_path.iterdir()] == ["scan.nx"]  # (no scratch file left)
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_command_line(runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                          ) -> None:
    """``smeflow export nxtomo``: scan numbers like uids, one line and exit 1 on a refusal,
    never a traceback."""
    data = str(runs.catalog.root)
    scan_id = runs.catalog.run(runs.step).metadata["start"]["scan_id"]
    out = tmp_path / "scan.nx"
    assert export_main(["nxtomo", str(scan_id), str(out), "--data", data]) == 0
    said = capsys.readouterr()
    assert said.out.strip() == (f"{out}  entry0000: {N_DARKS} dark, {N_FLATS} flat, "
                                f"{N_PROJ} projection frames (copied)")
    for argv, message in (
            ([str(scan_id), str(out)], "exists"),
            ([runs.count[:8], str(tmp_path / "c.nx")], "not a tomography run"),
            (["999", str(tmp_path / "n.nx")], "no run with scan number 999"),
    ):
        assert export_main(["nxtomo", *argv, "--data", data]) == 1
        err = capsys.readouterr().err
        assert err.startswith("smeflow export: error: ") and message in err, err
        assert "Traceback" not in err
    result = subprocess.run([sys.executable, "-m", "sme", "export", "nxtomo", "1",
                             str(tmp_path / "x.nx"), "--data", str(tmp_path / "none")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "no catalog in" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
