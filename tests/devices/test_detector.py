"""The firmware detector under bluesky: frames through the SME firmware into HDF5 and the
catalog, equal to the numpy reference model of the firmware."""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import FailedStatus

from dataflow.catalog import Catalog
from devices.beamline import Beamline
from fpga.designs.params import ChainParams
from fpga.designs.reference import reference_frame

from . import fly_steps

P = ChainParams(64, 64, 16)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[RunEngine, Catalog, Beamline]]:
    catalog = Catalog(tmp_path / "data")
    RE = RunEngine({})
    catalog.subscribe(RE)
    beamline = Beamline.create(catalog.raw_dir, params=P, backend="interp", time_scale=0.001)
    RE(bps.mv(beamline.shutter, "open"))
    yield RE, catalog, beamline
    beamline.close()
    catalog.close()


def collect_counts(RE: RunEngine, beamline: Beamline) -> list[np.ndarray]:
    """The sensor counts behind each event, captured as the events are emitted."""
    counts: list[np.ndarray] = []

    def on_event(name: str, doc: dict[str, Any]) -> None:
        if name == "event" and beamline.det.last_counts is not None:
            counts.append(beamline.det.last_counts.copy())

    RE.subscribe(on_event)  # type: ignore[no-untyped-call]
    return counts


def test_frames_in_the_catalog_are_the_firmware_output(setup: Any) -> None:
    RE, catalog, beamline = setup
    det = beamline.det
    det.threshold.put(5)
    det.roi.put([8, 4, 40, 50])
    counts = collect_counts(RE, beamline)
    (uid,) = RE(bp.scan([det], beamline.rotation, 0, 90, 3))
    run = catalog.run(uid)
    images = run["primary"]["det_image"]
    assert images.shape == (3, 64, 64)
    roi_sums = np.asarray(run["primary"]["det_roi_sum"].read())
    config = det.chain_config()
    for i, raw in enumerate(counts):
        want = reference_frame(raw, P, config, det.tables)
        assert np.array_equal(np.asarray(images[i]), want.image)
        assert roi_sums[i] == want.roi_sum
    # a region of one frame, read lazily
    assert np.array_equal(np.asarray(images[1, 10:20, 30:40]),
                          reference_frame(counts[1], P, config, det.tables).image[10:20, 30:40])
    assert det.last_digest is not None and len(det.digests) == 1


def test_describe_announces_external_frames_not_in_read(setup: Any) -> None:
    _, _, beamline = setup
    det = beamline.det
    desc = det.describe()
    assert desc["det_image"]["external"] == "STREAM:"
    assert desc["det_image"]["shape"] == [64, 64]
    assert "det_image" not in det.read()
    det.binning.put(True)
    assert det.describe()["det_image"]["shape"] == [32, 32]
    assert {"det_exposure", "det_backend", "det_roi"} <= set(det.read_configuration())


def test_binned_acquisition(setup: Any) -> None:
    RE, catalog, beamline = setup
    beamline.det.binning.put(True)
    (uid,) = RE(bp.count([beamline.det], 2))
    assert catalog.run(uid)["primary"]["det_image"].shape == (2, 32, 32)


def test_frames_are_written_when_read_into_the_stream_that_reads_them(setup: Any) -> None:
    """A staged detector writes a file per stream it is read into; outside a staging
    (a baseline reads devices nobody staged) each frame gets a file of its own; a frame
    no read announced never reaches a file."""
    from dataflow.hdf5 import open_frames

    _, _, beamline = setup
    det = beamline.det
    det.trigger().wait(10)  # not staged: the configuration is loaded, the frame kept
    assert det.digests == {}
    (resource, datum) = list(det.collect_asset_docs())
    (path,) = det.digests  # closed as soon as announced
    assert resource[1]["uri"].endswith(path) and path.endswith("_primary.h5")
    assert datum[1]["indices"] == {"start": 0, "stop": 1}
    with open_frames(path) as reader:
        assert len(reader) == 1
    det.stage()
    det.trigger().wait(10)
    det.trigger().wait(10)  # the first frame of this staging was never announced
    assert [n for n, _ in det.collect_asset_docs()] == ["stream_resource", "stream_datum"]
    assert list(det.collect_asset_docs()) == []  # nothing new
    det.trigger().wait(10)  # taken, never read: dropped at unstage
    det.unstage()
    staged = list(det.digests)[1:]
    assert len(staged) == 1
    with open_frames(staged[0]) as reader:
        assert len(reader) == 1


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    from devices.detector import FirmwareDetector

    with pytest.raises(ValueError, match="backend 'vhdl'"):
        FirmwareDetector(name="d", scene=None, folder=tmp_path, backend="vhdl")  # type: ignore[arg-type]


@pytest.mark.ghdl
def test_ghdl_backend_runs_the_exported_vhdl(setup: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames of the exported VHDL under GHDL are the reference model's; switching the
    backend back closes the GHDL board (its build folder goes)."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    RE, catalog, beamline = setup
    det = beamline.det
    det.backend.put("ghdl")
    counts = collect_counts(RE, beamline)
    (uid,) = RE(bp.count([det], 2))
    images = catalog.run(uid)["primary"]["det_image"]
    for i, raw in enumerate(counts):
        assert np.array_equal(np.asarray(images[i]), reference_frame(raw, P, tables=det.tables).image)
    assert list(scratch.glob("smeflow-firmware-*"))
    det.backend.put("compiled")
    RE(bp.count([det], 1))
    assert det.firmware.backend == "compiled"
    assert not list(scratch.glob("smeflow-firmware-*"))


def test_the_beamline_fixture_is_ready(smeflow_beamline: Any) -> None:
    bl = smeflow_beamline
    (uid,) = bl.RE(bp.count([bl.det], 2))
    assert bl.catalog.run(uid)["primary"]["det_image"].shape == (2, 64, 64)
    assert bl.rotation is bl.beamline.rotation


def test_link_errors_are_caught_counted_retaken_and_recorded(setup: Any) -> None:
    """A flipped bit and a lost packet during a scan: the readout catches both, the
    detector re-takes the frames, the file has every point and its counters say what
    the link lost; three losses in a row fail the run with the reason."""
    from dataflow.hdf5 import read_counters

    RE, catalog, beamline = setup
    det = beamline.det
    det.stage()  # the firmware exists from here on; faults stay queued across stage()
    det.unstage()
    det.firmware.inject_fault("flip")
    det.firmware.inject_fault("drop")
    (uid,) = RE(bp.count([det], 3))
    run = catalog.run(uid)
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run["primary"]["det_image"].shape == (3, 64, 64)
    counters = read_counters(list(det.digests)[-1])  # the file of the scan
    assert counters["good"] == 3 and counters["corrupt"] == 1
    assert counters["dropped"] == 1  # the lost packet, counted when the board settled
    # each event says how many frames were lost before its own (the two re-takes)
    assert list(run["primary"]["det_link_lost"]) == [2, 0, 0]

    from plans import diffraction_scan

    for _ in range(3):
        det.firmware.inject_fault("drop")
    with pytest.raises(FailedStatus):
        RE(diffraction_scan(det, beamline.sample_x, beamline.sample_y, [(0.0, 0.0)]))
    (failed,) = [s for s in catalog.runs() if s.exit_status == "fail"]
    reason = catalog.run(failed.uid).metadata["stop"]["reason"]
    assert "3 exposures in a row were lost on the link" in reason
    # every lost packet is counted, the last one too (no later frame reveals that gap)
    assert "'dropped': 3" in reason
    # no frame was announced in that staging, so it left no frame file behind
    assert len(det.digests) == 1 and not list(det.folder.glob("det_*_primary.h5"))[1:]


# -- configuration checked when it is put ---------------------------------------------------

ROI_RULE = ("must be [x0, y0, x1, y1], ints with 0 ≤ x0 < x1 ≤ 65535 and 0 ≤ y0 < y1 ≤ 65535 "
            "(x1, y1 exclusive, clipped to the frame), starting inside the 64×64 frame: "
            "x0 < 64, y0 < 64")
#: A PILATUS3 X's adjustable threshold range with its silicon sensor (Dectris's
#: specifications: 2.7 – 18 keV); outside it the detector counted nothing, without an error.
SI_RANGE = ("must be a finite number in 2.7 … 18 keV (the threshold range of a PILATUS3 X "
            "with a Si sensor)")


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Beamline]:
    """One beamline for every refusal case below (a beamline per case was most of their
    time): a refused put changes nothing, which each case checks against the value it
    found, so a put wrongly taken fails its own case."""
    beamline = Beamline.create(tmp_path_factory.mktemp("refusals"), params=P,
                               backend="interp", time_scale=0.001)
    yield beamline
    beamline.close()


@pytest.mark.parametrize(("signal", "value", "message"), [
    ("exposure", -1, "det.exposure: must be a finite number > 0 s, got -1"),
    ("exposure", 0, "det.exposure: must be a finite number > 0 s, got 0"),
    ("exposure", float("nan"), "det.exposure: must be a finite number > 0 s, got nan"),
    ("exposure", "0.1", "det.exposure: must be a finite number > 0 s, got '0.1'"),
    ("energy_threshold", -2.0, f"det.energy_threshold: {SI_RANGE}, got -2.0"),
    ("energy_threshold", 0, f"det.energy_threshold: {SI_RANGE}, got 0"),
    ("energy_threshold", 1e9, f"det.energy_threshold: {SI_RANGE}, got 1000000000.0"),
    ("energy_threshold", 2.69, f"det.energy_threshold: {SI_RANGE}, got 2.69"),
    ("energy_threshold", 18.01, f"det.energy_threshold: {SI_RANGE}, got 18.01"),
    ("energy_threshold", float("nan"), f"det.energy_threshold: {SI_RANGE}, got nan"),
    ("energy_threshold", "6", f"det.energy_threshold: {SI_RANGE}, got '6'"),
    ("threshold", -5, "det.threshold: must be an int in 0 … 1048575 counts (the firmware's "
                      "20-bit threshold register), got -5"),
    ("threshold", 1 << 20, "det.threshold: must be an int in 0 … 1048575 counts (the "
                           "firmware's 20-bit threshold register), got 1048576"),
    ("threshold", 2.5, "det.threshold: must be an int in 0 … 1048575 counts (the firmware's "
                       "20-bit threshold register), got 2.5"),
    ("roi", [0, 0], f"det.roi: {ROI_RULE}, got [0, 0]"),
    ("roi", [10, 10, 5, 5], f"det.roi: {ROI_RULE}, got [10, 10, 5, 5]"),
    ("roi", [10, 10, 10, 20], f"det.roi: {ROI_RULE}, got [10, 10, 10, 20]"),
    ("roi", [64, 0, 70, 8], f"det.roi: {ROI_RULE}, got [64, 0, 70, 8]"),
    ("roi", [-1, 0, 8, 8], f"det.roi: {ROI_RULE}, got [-1, 0, 8, 8]"),
    ("roi", [0, 0, 0x10000, 8], f"det.roi: {ROI_RULE}, got [0, 0, 65536, 8]"),
    ("roi", [0, 0, 8.5, 8], f"det.roi: {ROI_RULE}, got [0, 0, 8.5, 8]"),
    ("roi", "0,0,8,8", f"det.roi: {ROI_RULE}, got '0,0,8,8'"),
    ("binning", "no", "det.binning: must be True or False (or 1 or 0), got 'no'"),
    ("binning", 2, "det.binning: must be True or False (or 1 or 0), got 2"),
    ("backend", "vhdl", "det.backend: must be one of 'interp', 'compiled', 'ghdl', got 'vhdl'"),
])
def test_bad_configuration_is_refused_when_put(refusing: Beamline, signal: str, value: Any,
                                               message: str) -> None:
    from devices.detector import DetectorConfigError

    det = refusing.det
    before = getattr(det, signal).get()
    with pytest.raises(DetectorConfigError, match="^" + re.escape(message) + "$"):
        getattr(det, signal).put(value)
    with pytest.raises(DetectorConfigError, match="^" + re.escape(message) + "$"):
        getattr(det, signal).check_value(value)  # what plans.validate asks in advance
    assert getattr(det, signal).get() == before


def test_good_configuration_is_stored_normalised(setup: Any) -> None:
    det = setup[2].det
    det.exposure.put(np.float32(0.5))
    det.threshold.put(np.int64(1 << 20) - 1)
    det.roi.put(np.array([0, 0, 0xFFFF, 0xFFFF]))
    det.roi.put((8, 4, 40, 50))
    det.binning.put(1)
    det.energy_threshold.put(18)
    assert det.energy_threshold.get() == 18.0
    det.energy_threshold.put(np.float32(2.75))
    assert (det.exposure.get(), det.threshold.get(), det.roi.get(), det.binning.get(),
            det.energy_threshold.get()) == (0.5, (1 << 20) - 1, [8, 4, 40, 50], True, 2.75)
    assert det.binning.get() is True and type(det.threshold.get()) is int
    assert det.chain_config().roi == (8, 4, 40, 50)


def test_a_bad_value_set_in_a_plan_fails_at_the_set_with_the_reason(setup: Any) -> None:
    from devices.detector import DetectorConfigError

    RE, catalog, beamline = setup
    det = beamline.det
    RE(bps.mv(det.exposure, 0.2, det.roi, (0, 0, 16, 16)))  # set() returns, no hanging
    assert (det.exposure.get(), det.roi.get()) == (0.2, [0, 0, 16, 16])
    with pytest.raises(DetectorConfigError, match=r"^det\.exposure: must be a finite number > 0 s"):
        RE(bps.mv(det.exposure, -1))
    assert det.exposure.get() == 0.2 and list(catalog.runs()) == []


def test_binning_must_leave_the_roi_inside_the_frame(setup: Any) -> None:
    from devices.detector import DetectorConfigError

    det = setup[2].det
    det.roi.put([40, 8, 60, 20])
    with pytest.raises(DetectorConfigError, match=re.escape(
            "det.binning: True would make 32×32 frames, which det.roi [40, 8, 60, 20] starts "
            "outside of (x0 must be < 32, y0 < 32); set det.roi first")):
        det.binning.put(True)
    assert det.binning.get() is False
    det.roi.put([4, 8, 60, 20])
    det.binning.put(True)
    with pytest.raises(DetectorConfigError, match="starting inside the 32×32 frame"):
        det.roi.put([40, 8, 60, 20])


def test_frame_shape_is_read_only_and_follows_binning(setup: Any) -> None:
    from ophyd.utils import ReadOnlyError

    RE, _, beamline = setup
    det = beamline.det
    assert det.frame_shape.get() == [64, 64]
    message = ("det.frame_shape: read-only (the [rows, cols] of the frames the firmware "
               "sends; it follows binning); it is [64, 64], refused to make it [32, 32]")
    for write in (det.frame_shape.put, det.frame_shape.set, det.frame_shape.check_value):
        with pytest.raises(ReadOnlyError, match="^" + re.escape(message) + "$"):
            write([32, 32])
    with pytest.raises(ReadOnlyError, match="read-only"):
        RE(bps.mv(det.frame_shape, [32, 32]))
    det.binning.put(True)
    assert det.frame_shape.get() == [32, 32] == det.describe()["det_image"]["shape"]
    assert det.read_configuration()["det_frame_shape"]["value"] == [32, 32]
    det.binning.put(False)
    assert det.frame_shape.get() == [64, 64] == det.describe()["det_image"]["shape"]


def test_histogram_is_described_and_recorded_as_integer_counts(setup: Any) -> None:
    RE, catalog, beamline = setup
    det = beamline.det
    assert det.describe()["det_histogram"]["dtype_numpy"] == "<i8"
    assert det.describe_collect()["det_histogram"]["dtype_numpy"] == "<i8"
    docs: list[tuple[str, dict[str, Any]]] = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    (uid,) = RE(bp.count([det], 2))
    (descriptor,) = [doc for name, doc in docs if name == "descriptor"]
    assert descriptor["data_keys"]["det_histogram"]["dtype_numpy"] == "<i8"
    events = [doc for name, doc in docs if name == "event"]
    for event in events:
        values = event["data"]["det_histogram"]
        assert all(type(v) is int for v in values) and sum(values) == 64 * 64
    stored = np.asarray(catalog.run(uid)["primary"]["det_histogram"].read())
    assert stored.dtype.kind == "i" and stored.shape == (2, 64)


def test_the_package_exports_beamline_as_the_readme_says() -> None:
    import devices
    import devices.beamline

    assert devices.Beamline is devices.beamline.Beamline is Beamline
    assert "Beamline" in devices.__all__
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert "`devices.Beamline.create(folder)`" in readme


_PLUGIN_IMPORTS = ("import sys\nimport devices.pytest_plugin\nimport devices\n"
                   "heavy = [m for m in ('devices.beamline', 'devices.detector', 'ophyd', "
                   "'numba', 'dataflow.hdf5') if m in sys.modules]\n"
                   "print(heavy, devices.SimMotor.__module__, devices.phantom.__name__, "
                   "sorted(set(devices.__all__) - set(dir(devices))))")


def test_the_package_imports_its_modules_only_when_they_are_asked_for() -> None:
    """``import devices`` (what smeflow's pytest plugin entry point does in every pytest
    process, cocotb's inside GHDL on each co-simulation among them) imports no device
    module: each name of ``devices.__all__`` and each submodule is imported on first use.
    It imported the whole beamline (ophyd, numba, the HDF5 writer): 4-8 s of CPU each."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PLUGIN_IMPORTS], capture_output=True,
                         text=True, timeout=300, check=True).stdout
    assert out.splitlines()[-1] == "[] devices.motion devices.phantom []", out[-2000:]


def test_the_detector_writes_nexus_files(setup: Any) -> None:
    """nexusformat opens a detector file and finds the frames as the default plot and the
    detector's exposure, pixel size and threshold in its NXdetector."""
    from nexusformat.nexus import nxload

    _, _, beamline = setup
    det = beamline.det
    det.exposure.put(0.05)
    det.binning.put(True)
    det.trigger().wait(10)
    list(det.collect_asset_docs())
    (path,) = det.digests
    root = nxload(path)
    plot = root.plottable_data
    assert plot is not None and plot.nxsignal.shape == (1, 32, 32)
    nxdet = root["entry/instrument/detector"]
    assert nxdet.nxclass == "NXdetector"
    assert float(nxdet["count_time"]) == 0.05 and nxdet["count_time"].attrs["units"] == "s"
    assert float(nxdet["x_pixel_size"]) == pytest.approx(2 * beamline.det.pixel_size)
    assert nxdet["x_pixel_size"].attrs["units"] == "m"
    assert float(nxdet["threshold_energy"]) == float(det.energy_threshold.get())
    np.testing.assert_array_equal(np.asarray(nxdet["data"].nxdata), plot.nxsignal.nxdata)


def test_an_exposure_runs_from_the_trigger(tmp_path: Path) -> None:
    """The exposure clock starts when ``trigger()`` is called (not when its worker thread
    first runs): the status finishes no earlier than one exposure after the call, and the
    scene is sampled in the middle of that exposure."""
    beamline = Beamline.create(tmp_path, params=P, backend="interp", exposure_time_scale=1.0)
    try:
        det = beamline.det
        det.exposure.put(0.3)
        sampled: list[float] = []
        expose = det.expose

        def spy(t: float | None, exposure: float) -> Any:
            assert t is not None
            sampled.append(t)
            return expose(t, exposure)

        det.expose = spy  # type: ignore[method-assign]
        for _ in range(2):  # the second trigger follows a finished exposure
            before = time.time()
            status = det.trigger()
            after = time.time()
            status.wait(10)
            assert time.time() - before >= 0.3
            assert before + 0.15 <= sampled[-1] <= after + 0.15
    finally:
        beamline.close()


def test_a_fly_file_records_the_fly_exposure_not_the_stagings(setup: Any) -> None:
    """``bp.fly`` with ``FlyParameters(exposure=0.02)`` on a detector at 0.1 s: the flyer
    stages, then prepares (which sets 0.02). The file's NeXus ``count_time`` and the
    frames' ``exposure`` attribute are the frames' 0.02 s, not the staging's 0.1 s."""
    import h5py

    from devices.fly import FlyParameters
    from devices.flyer import DetectorFlyer

    RE, catalog, beamline = setup
    det = beamline.det
    det.exposure.put(0.1)
    (uid,) = RE(bp.fly([DetectorFlyer(det, FlyParameters(frames=3, exposure=0.02))]))
    assert catalog.run(uid).metadata["stop"]["exit_status"] == "success"
    (path,) = [p for p in det.digests if "_fly" in p]
    with h5py.File(path, "r") as f:
        assert f["entry/instrument/detector/count_time"][()] == pytest.approx(0.02)
        assert f["entry/data/data"].attrs["exposure"] == pytest.approx(0.02)


def test_a_second_stage_is_refused_and_leaves_a_running_fly_alone(setup: Any) -> None:
    """``stage()`` of a staged detector (a failed plan's fly still running when the next
    plan stages it) raises ``RedundantStaging`` before it touches the board or the files:
    the running fly ends with all its frames, numbered without a gap."""
    from ophyd.utils.errors import RedundantStaging

    from devices.fly import FlyParameters

    _, _, beamline = setup
    det = beamline.det
    det.time_scale = 1.0
    try:
        fly_steps.arm(det, FlyParameters(frames=40, exposure=0.01, period=0.01))
        time.sleep(0.2)
        with pytest.raises(RedundantStaging, match="Device det is already staged; unstage "
                                                   "it first"):
            det.stage()
        det.complete().wait(60)
        numbers = [f.frame_number for f in det.fly.frames]
        assert len(numbers) == 40 and np.all(np.diff(numbers) == 1)
    finally:
        det.unstage()
    det.stage()  # (unstaged, it stages again)
    det.unstage()


class _BoardAsked(Exception):
    """Raised instead of building the firmware (the test wants the params alone)."""


def test_the_detector_defaults_to_the_64_lane_datapath(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18: ``FirmwareDetector`` and ``Beamline.create`` (hence the demo and its
    ``--prepare``) build ``detector_params(256, 256)``, the 64-lane datapath with the binning
    stage, when given no params; ``ChainParams`` itself keeps 16 lanes."""
    from devices.detector import FirmwareDetector

    built: list[ChainParams] = []

    def board(self: Any, backend: str) -> Any:
        built.append(self.params)
        raise _BoardAsked

    monkeypatch.setattr(FirmwareDetector, "_board", board)
    with pytest.raises(_BoardAsked):
        FirmwareDetector(name="d", scene=None, folder=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(_BoardAsked):
        Beamline.create(tmp_path)
    assert built == [ChainParams(256, 256, 64)] * 2
    assert ChainParams(256, 256).lanes == 16
