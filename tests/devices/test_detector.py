"""The firmware detector under bluesky: frames through the SME firmware into HDF5 and the
catalog, equal to the numpy reference model of the firmware."""

from __future__ import annotations

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

    RE.subscribe(on_event)
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
        want = reference_frame(raw, P, config)
        assert np.array_equal(np.asarray(images[i]), want.image)
        assert roi_sums[i] == want.roi_sum
    # a region of one frame, read lazily
    assert np.array_equal(np.asarray(images[1, 10:20, 30:40]),
                          reference_frame(counts[1], P, config).image[10:20, 30:40])
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


def test_trigger_before_stage_is_a_clear_error(setup: Any) -> None:
    _, _, beamline = setup
    status = beamline.det.trigger()
    with pytest.raises(Exception, match="trigger\\(\\) before stage\\(\\)"):
        status.wait(5)


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    from devices.detector import FirmwareDetector

    with pytest.raises(ValueError, match="backend 'vhdl'"):
        FirmwareDetector(name="d", scene=None, folder=tmp_path, backend="vhdl")  # type: ignore[arg-type]


@pytest.mark.ghdl
def test_ghdl_backend_runs_the_exported_vhdl(setup: Any) -> None:
    RE, catalog, beamline = setup
    det = beamline.det
    det.backend.put("ghdl")
    counts = collect_counts(RE, beamline)
    (uid,) = RE(bp.count([det], 2))
    images = catalog.run(uid)["primary"]["det_image"]
    for i, raw in enumerate(counts):
        assert np.array_equal(np.asarray(images[i]), reference_frame(raw, P).image)


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
    assert counters["dropped"] >= 1  # the lost packet shows as a frame-number gap

    from plans import diffraction_scan

    for _ in range(3):
        det.firmware.inject_fault("drop")
    with pytest.raises(FailedStatus):
        RE(diffraction_scan(det, beamline.sample_x, beamline.sample_y, [(0.0, 0.0)]))
    (failed,) = [s for s in catalog.runs() if s.exit_status == "fail"]
    reason = catalog.run(failed.uid).metadata["stop"]["reason"]
    assert "3 exposures in a row were lost on the link" in reason
