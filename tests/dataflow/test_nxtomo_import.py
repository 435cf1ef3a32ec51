"""``smeflow import nxtomo`` (``dataflow.nxtomo_import``): NXtomo scans written by ESRF's
own tools — tomoscan's ``MockNXtomo`` (the scans tomoscan, nabu and tomwer test with)
and the ``nxtomo`` library — stored as tomography runs that ``smeflow reduce``
reconstructs as it does a ``tomo_scan``; damaged and hostile files refused with one
error and nothing stored."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pint
import pytest

from analysis.nxtomo import export_nxtomo
from analysis.nxtomo_cli import import_main
from dataflow.catalog import Catalog
from dataflow.hdf5 import FrameWriter
from dataflow.hdf5_files import file_sha256
from dataflow.nxtomo_import import NXtomoImportError, import_nxtomo

UREG = pint.get_application_registry()


@pytest.fixture(scope="module")
def mock_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tomoscan's mock acquisition: a dark, flats before and after, 8 projections over
    180°, floating-point frames of 16×16, with energy, distance and sample name."""
    from tomoscan.esrf.scan.mock import MockNXtomo

    folder = tmp_path_factory.mktemp("mock") / "scan"
    mock = MockNXtomo(str(folder), n_proj=8, n_ini_proj=8, scan_range=180, dim=16,
                      create_ini_dark=True, create_ini_flat=True, create_final_flat=True,
                      n_flats=2, energy=19.0, distance=0.5, sample_name="grain")
    return Path(mock.scan_master_file)


def by_key(path: Path, entry: str = "entry") -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The file's frames (in their dtype) and angles for each ``image_key_control``, read
    with h5py."""
    with h5py.File(path, "r") as f:
        keys = f[f"{entry}/instrument/detector/image_key_control"][()]
        frames = f[f"{entry}/instrument/detector/data"][()]
        angles = f[f"{entry}/sample/rotation_angle"][()]
    return {int(k): (frames[keys == k], angles[keys == k]) for k in np.unique(keys)}


def test_a_tomoscan_mock_scan_becomes_a_tomography_run(mock_scan: Path, tmp_path: Path
                                                        ) -> None:
    with Catalog(tmp_path / "data") as catalog:
        done = import_nxtomo(catalog, mock_scan)
        run = catalog.run(done.uid)
        start = run.metadata["start"]
        expected = by_key(mock_scan)
        assert done.frames == {"dark": 1, "flat": 4, "primary": 8} and done.left_out == 0
        for stream, key in (("dark", 2), ("flat", 1), ("primary", 0)):
            frames, angles = expected[key]
            stored = run[stream]["det_image"][:]
            assert stored.dtype == frames.dtype
            np.testing.assert_array_equal(stored, frames)
            np.testing.assert_array_equal(run[stream]["rotation"].read(), angles)
        assert start["angles"] == expected[0][1].tolist()
        assert (start["plan_name"], start["rotation_axis"], start["scan_id"]) == (
            "nxtomo_import", "rotation", 1)
        assert (start["sample"], start["energy_keV"], start["distance_m"]) == ("grain", 19.0,
                                                                               0.5)
        assert start["imported_from"] == {"file": str(mock_scan.resolve()), "entry": "entry",
                                          "sha256": file_sha256(mock_scan)}
        assert run.metadata["stop"]["exit_status"] == "success"


def nxtomo_file(path: Path, frames: np.ndarray, control: np.ndarray,
                angles: np.ndarray) -> Path:
    """An NXtomo file written by ESRF's ``nxtomo`` library."""
    from nxtomo.application.nxtomo import NXtomo

    nx = NXtomo()
    nx.instrument.detector.data = frames
    nx.instrument.detector.image_key_control = control
    nx.sample.rotation_angle = angles * UREG.degree
    nx.save(str(path), data_path="entry0000")
    return path


def test_reduce_reconstructs_it_as_a_tomo_scan(tmp_path: Path) -> None:
    """The imported run's reconstruction is the one of the same frames and angles written
    as a ``tomo_scan`` (``dataflow.synthetic_run.write_tomo_run``), bit for bit: a disc
    of absorber seen over 180°, 16-bit counts as a detector gives them."""
    from analysis.reduce import reduce_run
    from dataflow.synthetic_run import write_tomo_run

    angles = np.linspace(0.0, 180.0, 12, endpoint=False)
    x = np.arange(16) - 7.5
    flat = np.full((16, 16), 1000.0)
    projections = [flat * np.exp(-0.05 * np.sqrt(np.clip(36 - (x - 2 * np.cos(np.radians(a)))
                                                        ** 2, 0, None)))[None, :].repeat(16, 0)
                   for a in angles]
    frames = np.stack([np.full((16, 16), 10.0), flat, flat, *projections]).astype(np.uint16)
    control = np.array([2, 1, 1] + [0] * len(angles))
    path = nxtomo_file(tmp_path / "disc.nx", frames, control,
                       np.concatenate([[0.0, 0.0, 0.0], angles]))
    volumes = []
    with Catalog(tmp_path / "data") as catalog:
        imported = import_nxtomo(catalog, path).uid
        written = write_tomo_run(catalog, frames[:1], frames[1:3], frames[3:], angles,
                                 source="test")
        for uid in (imported, written):
            summary = reduce_run(catalog, uid)
            assert summary.exit_status == "success"
            volumes.append(np.asarray(catalog.run(summary.uid)["primary"]["reconstruction"][:]))
    assert volumes[0].shape == (16, 16, 16) and np.isfinite(volumes[0]).all()
    assert volumes[0].std() > 0
    np.testing.assert_array_equal(volumes[0], volumes[1])


def test_alignment_and_invalid_frames_are_left_out(tmp_path: Path) -> None:
    """A scan as Bliss records it: projections, then alignment projections taken on the
    way back (``image_key_control`` -1, ``image_key`` 0) and a frame marked invalid (3),
    written with ESRF's ``nxtomo`` library."""
    rng = np.random.default_rng(3)
    control = np.array([2, 1, 0, 0, 0, 0, 3, -1, -1, 1])
    angles = np.array([0, 0, 0, 45, 90, 135, 150, 180, 90, 180], dtype=float)
    frames = rng.integers(0, 1000, size=(len(control), 8, 8)).astype(np.uint16)
    path = nxtomo_file(tmp_path / "bliss.nx", frames, control, angles)
    with Catalog(tmp_path / "data") as catalog:
        done = import_nxtomo(catalog, path)
        run = catalog.run(done.uid)
        assert done.frames == {"dark": 1, "flat": 2, "primary": 4} and done.left_out == 3
        np.testing.assert_array_equal(run["primary"]["det_image"][:], frames[2:6])
        np.testing.assert_array_equal(run["flat"]["det_image"][:], frames[[1, 9]])
        assert run.metadata["start"]["angles"] == [0.0, 45.0, 90.0, 135.0]


def test_an_export_imports_back_as_the_same_scan(mock_scan: Path, tmp_path: Path) -> None:
    """import → ``export_nxtomo`` (copied and linked) → import: the same frames, keys,
    angles, energy and distance each time."""
    expected = by_key(mock_scan)
    with Catalog(tmp_path / "data") as catalog:
        first = import_nxtomo(catalog, mock_scan).uid
        for link in (False, True):
            out = export_nxtomo(catalog.run(first), tmp_path / "data" / f"x{link}.nx",
                                link=link)
            again = catalog.run(import_nxtomo(catalog, out.path).uid)
            start = again.metadata["start"]
            assert (start["energy_keV"], start["distance_m"]) == (19.0, 0.5)
            for stream, key in (("dark", 2), ("flat", 1), ("primary", 0)):
                np.testing.assert_array_equal(again[stream]["det_image"][:], expected[key][0])
                np.testing.assert_array_equal(again[stream]["rotation"].read(),
                                              expected[key][1])


def damaged(kind: str, mock_scan: Path, folder: Path) -> tuple[Path, str]:
    """A file damaged or hostile in one way, and what its error must say."""
    path = folder / f"{kind}.nx"
    if kind == "text":
        path.write_text("not a scan\n")
        return path, "not an HDF5 file"
    if kind == "missing":
        return path, "no such file"
    if kind == "not_nxtomo":
        with h5py.File(path, "w") as f:
            f["entry/data"] = np.zeros((2, 4, 4))
        return path, "0 NXtomo entries (none); is it an NXtomo file?"
    if kind in ("cut_swmr", "cut_frames"):  # HDF5 files as SWMR writers write them, cut
        if kind == "cut_frames":  # (a smeflow frame file: this one hung the import)
            with FrameWriter(folder, path.name, (16, 32)) as w:
                w.append_many(np.zeros((3, 16, 32), np.uint16))
        else:
            with h5py.File(path, "w", libver="latest") as f:
                f.create_dataset("entry/data/data", data=np.zeros((3, 16, 32), np.uint16),
                                 chunks=(1, 16, 32), maxshape=(None, 16, 32))
                f.swmr_mode = True
        path.write_bytes(path.read_bytes()[:5000])
        return path, "cannot be read (Unable to synchronously open file (truncated file"
    shutil.copy(mock_scan, path)
    if kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
        return path, "cannot be read"
    with h5py.File(path, "r+") as f:
        det = f["entry/instrument/detector"]
        if kind == "short_angles":
            angles = f["entry/sample/rotation_angle"][()]
            del f["entry/sample/rotation_angle"]
            f["entry/sample/rotation_angle"] = angles[:-1]
            f["entry/sample/rotation_angle"].attrs["units"] = "degree"
            return path, "13 frames, 13 image keys and 12 rotation angles"
        if kind == "no_darks":
            keys = det["image_key_control"][()]
            keys[keys == 2] = 3
            det["image_key_control"][...] = keys
            det["image_key"][...] = keys
            return path, "no dark frames"
        if kind == "odd_key":
            keys = det["image_key_control"][()]
            keys[0] = 7
            det["image_key_control"][...] = keys
            return path, "not readable as NXtomo (ValueError: np.int64(7) is not a valid ImageKey)"
        if kind == "lost_source":
            layout = h5py.VirtualLayout(shape=det["data"].shape, dtype=det["data"].dtype)
            layout[:] = h5py.VirtualSource("gone.h5", "data", shape=det["data"].shape)
            del det["data"]
            det.create_virtual_dataset("data", layout)
            return path, "gone.h5, which is not there"
        if kind == "two_entries":
            f.copy(f["entry"], "entry_bis")
            return path, "2 NXtomo entries (entry, entry_bis); name one"
    raise AssertionError(kind)


KINDS = ["text", "missing", "truncated", "cut_swmr", "cut_frames", "not_nxtomo",
         "short_angles", "no_darks", "odd_key", "lost_source", "two_entries"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_file_is_refused_and_nothing_is_stored(mock_scan: Path, tmp_path: Path,
                                                         kind: str) -> None:
    """Refused at once: an HDF5 file cut short (``cut_frames``) hung nxtomo's reader, which
    retries it in SWMR mode (and read ``cut_swmr`` so as "0 NXtomo entries"), until the
    import opened it without SWMR first."""
    path, message = damaged(kind, mock_scan, tmp_path)
    with Catalog(tmp_path / "data") as catalog:
        with pytest.raises(NXtomoImportError, match=re.escape(message)):
            import_nxtomo(catalog, path)
        assert list(catalog.client) == []
        assert list(catalog.raw_dir.glob("nxtomo_*")) == []


def test_the_command_line(mock_scan: Path, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    assert import_main(["nxtomo", str(mock_scan), "--data", data]) == 0
    uid, summary = capsys.readouterr().out.splitlines()
    assert summary == f"scan 1 in {data}: 1 dark, 4 flat, 8 primary frames"
    path, _ = damaged("truncated", mock_scan, tmp_path)
    result = subprocess.run([sys.executable, "-m", "sme", "import", "nxtomo", str(path),
                             "--data", data], capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"smeflow import: error: {path}: cannot be read")
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    with Catalog(data) as catalog:
        assert [run.metadata["start"]["uid"] for run in catalog.client.values()] == [uid]


def test_a_bad_file_creates_no_catalog(mock_scan: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """``smeflow import nxtomo BAD --data NEW`` made the catalog NEW before it looked at
    the file, and left it behind empty; the file is checked first now."""
    for kind in ("text", "cut_frames", "short_angles"):
        path, message = damaged(kind, mock_scan, tmp_path)
        data = tmp_path / f"data_{kind}"
        assert import_main(["nxtomo", str(path), "--data", str(data)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"smeflow import: error: {path}") and message in err, err
        assert not data.exists(), sorted(p.name for p in data.iterdir())
