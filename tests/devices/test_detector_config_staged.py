"""The detector's configuration changed inside a staged plan: refused with the signal's
name, or (``bps.configure`` of ``roi``/``threshold``) loaded into the firmware before the
next exposure — the recorded configuration, the firmware and the files never disagree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import h5py
import numpy as np
import pytest
from bluesky import RunEngine

from dataflow.catalog import Catalog
from dataflow.hdf5_read import read_counters
from devices.beamline import Beamline
from devices.detector import DetectorConfigError
from devices.frame_files import ExposureMismatch
from fpga.designs.params import ChainParams
from fpga.designs.reference import ChainConfig, reference_frame

P = ChainParams(64, 64, 16)


def values(det: Any) -> dict[str, Any]:
    """The detector's configuration values (without timestamps)."""
    return {k: v["value"] for k, v in det.read_configuration().items()}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[RunEngine, Catalog, Beamline]]:
    catalog = Catalog(tmp_path / "data")
    RE = RunEngine({})
    catalog.subscribe(RE)
    beamline = Beamline.create(catalog.raw_dir, params=P, backend="compiled",
                               time_scale=0.001)
    RE(bps.mv(beamline.shutter, "open"))
    beamline.use_phantom()
    yield RE, catalog, beamline
    beamline.close()
    catalog.close()


@pytest.mark.parametrize(("signal", "value", "why"), [
    ("roi", (0, 0, 8, 8), "use bps.configure(det, {'roi': ...})"),
    ("threshold", 5, "use bps.configure(det, {'threshold': ...})"),
    ("binning", True, "the staging's frame files hold frames of one shape"),
    ("energy_threshold", 9.0, "frame files record one threshold_energy"),
    ("backend", "interp", "it replaces the firmware board"),
])
def test_a_put_inside_a_staged_plan_is_refused_naming_the_signal(
        setup: Any, signal: str, value: Any, why: str) -> None:
    """The review's scenario (D17, D18): ``mv(det.roi, ...)`` then ``trigger_and_read``
    inside a staged plan used to record the new ROI while the firmware summed the old
    one (binning: 32x32 declared, 64x64 written). Now the put fails, nothing changes."""
    RE, catalog, beamline = setup
    det = beamline.det
    before = values(det)

    @bpp.run_decorator()
    def plan() -> Any:
        yield from bps.trigger_and_read([det])
        yield from bps.mv(getattr(det, signal), value)
        yield from bps.trigger_and_read([det])

    with pytest.raises(DetectorConfigError,
                       match=rf"^det\.{signal}: cannot change while det is staged: ") as err:
        RE(bpp.stage_wrapper(plan(), [det]))  # type: ignore[no-untyped-call]
    assert why in str(err.value)
    assert values(det) == before
    (summary,) = catalog.runs()
    assert summary.exit_status == "fail"
    run = catalog.run(summary.uid)
    # the one event taken is readable, with the staging's frame shape
    assert np.asarray(run["primary"]["det_image"]).shape == (1, 64, 64)
    # unstaged, the same put is accepted
    RE(bps.mv(getattr(det, signal), value))
    assert values(det) != before


def test_the_same_value_passes_and_a_stream_keeps_one_exposure(setup: Any) -> None:
    """Putting a staged detector's current value changes nothing and is accepted; the
    exposure may change while staged, but a stream's file records one count_time: a frame
    of another exposure read into it is refused naming both exposures and the file, and
    nothing of it is written."""
    det = setup[2].det
    det.stage()
    try:
        det.roi.put(list(det.roi.get()))
        det.binning.put(False)
        det.exposure.put(0.2)
        det.trigger().wait(10)
        list(det.collect_asset_docs())
        det.exposure.put(0.3)
        det.trigger().wait(10)
        with pytest.raises(ExposureMismatch,
                           match=r"^det: a frame exposed 0\.3 s cannot go into the 'primary' "
                                 r"stream's file det_\S+_primary\.h5, which records "
                                 r"count_time 0\.2 s"):
            list(det.collect_asset_docs())
        (writer,) = det.files.open_files()
        assert writer.n_frames == 1
    finally:
        det.unstage()


def file_exposures(path: str) -> list[float]:
    """The ``exposure`` attributes in the HDF5 file at ``path``."""
    found: list[float] = []
    with h5py.File(path) as f:
        f.visititems(lambda _, obj: found.extend(
            [float(obj.attrs["exposure"])] if "exposure" in obj.attrs else []))
    return found


def test_each_event_stream_has_its_own_exposure(setup: Any) -> None:
    """A dark stream at a longer exposure after the primary frames, in one staging: each
    stream's file and descriptor record its own exposure (review E4)."""
    RE, catalog, beamline = setup
    det = beamline.det
    det.exposure.put(0.01)

    @bpp.run_decorator()
    def plan() -> Any:
        yield from bps.trigger_and_read([det])
        yield from bps.mv(det.exposure, 0.05)
        yield from bps.trigger_and_read([det], name="dark")

    (uid,) = RE(bpp.stage_wrapper(plan(), [det]))  # type: ignore[no-untyped-call]
    run = catalog.run(uid)
    for stream, exposure in (("primary", 0.01), ("dark", 0.05)):
        config = run[stream].metadata["configuration"]["det"]["data"]
        assert float(config["det_exposure"]) == exposure
        (path,) = [p for p in det.digests if p.endswith(f"_{stream}.h5")]
        assert file_exposures(path) == [exposure]


@pytest.mark.parametrize("sig, value", [("threshold", 3), ("roi", (0, 0, 8, 8)),
                                        ("energy_threshold", 8.0), ("binning", True),
                                        ("exposure", 0.05)])
def test_stage_sigs_are_loaded_at_stage_and_restored(setup: Any, sig: str, value: Any) -> None:
    """ophyd's ``stage_sigs`` (review E1): bp.count runs with the value, recorded in the
    descriptor and obeyed by the firmware; after the run the signal has its old value."""
    RE, catalog, beamline = setup
    det = beamline.det
    before = getattr(det, sig).get()
    det.stage_sigs[sig] = value
    (uid,) = RE(bp.count([det], 1))
    run = catalog.run(uid)
    config = run["primary"].metadata["configuration"]["det"]["data"]
    assert np.array_equal(np.asarray(config[f"det_{sig}"]), np.asarray(value))
    image = np.asarray(run["primary"]["det_image"][0]).astype(np.int64)
    if sig == "roi":
        roi_sum = int(np.asarray(run["primary"].read()["det_roi_sum"])[0])
        assert roi_sum == int(image[0:8, 0:8].sum()) != int(image.sum())
    assert image.shape == ((32, 32) if sig == "binning" else (64, 64))
    assert np.array_equal(np.asarray(getattr(det, sig).get()), np.asarray(before))


def test_a_stage_that_fails_restores_the_stage_sigs(setup: Any) -> None:
    """A configuration the firmware refuses at stage() leaves the detector unstaged, its
    stage_sigs restored (as ophyd's own stage does when one fails)."""
    det = setup[2].det
    det.stage_sigs["exposure"] = 0.05
    det.stage_sigs["backend"] = "no-such-backend"
    with pytest.raises(Exception, match="no-such-backend"):
        det.stage()
    assert not det.files.staged
    assert det.exposure.get() != 0.05


def test_configure_loads_roi_and_threshold_before_the_next_exposure(setup: Any) -> None:
    """``bps.configure(det, {"roi": ..., "threshold": ...})`` inside a staged plan: the
    next frame is the firmware reference model's for the new registers, its event's
    descriptor records them, and the file's readout counters count every frame of the
    staging (the board reset of the register load does not lose them)."""
    RE, catalog, beamline = setup
    det = beamline.det
    docs: list[tuple[str, dict[str, Any]]] = []
    counts: list[np.ndarray] = []

    def keep(name: str, doc: dict[str, Any]) -> None:
        docs.append((name, doc))
        if name == "event":
            assert det.last_counts is not None
            counts.append(det.last_counts.copy())

    RE.subscribe(keep)  # type: ignore[no-untyped-call]

    @bpp.run_decorator()
    def plan() -> Any:
        yield from bps.trigger_and_read([det])
        yield from bps.configure(det, {"roi": [0, 0, 8, 8], "threshold": 5})
        yield from bps.trigger_and_read([det])

    (uid,) = RE(bpp.stage_wrapper(plan(), [det]))  # type: ignore[no-untyped-call]
    descriptors = {d["uid"]: d for n, d in docs if n == "descriptor"}
    events = [d for n, d in docs if n == "event"]
    assert len(events) == 2 and len(descriptors) == 2
    configs = [descriptors[e["descriptor"]]["configuration"]["det"]["data"] for e in events]
    assert [(c["det_roi"], c["det_threshold"]) for c in configs] == [
        ([0, 0, 0xFFFF, 0xFFFF], 0), ([0, 0, 8, 8], 5)]
    for event, config, raw in zip(events, configs, counts, strict=True):
        want = reference_frame(raw, P, ChainConfig(threshold=config["det_threshold"],
                                                   roi=tuple(config["det_roi"])), det.tables)
        assert event["data"]["det_roi_sum"] == want.roi_sum
    assert events[1]["data"]["det_roi_sum"] != events[0]["data"]["det_roi_sum"]
    run = catalog.run(uid)  # readable, each frame under its own configuration
    images = np.asarray(run["primary"]["det_image"])
    assert images.shape == (2, 64, 64)
    assert images[1][0:8, 0:8].astype(np.int64).sum() == events[1]["data"]["det_roi_sum"]
    assert np.all((images[1] == 0) | (images[1] >= 5))
    (path,) = det.digests
    assert read_counters(path)["good"] == 2
    # (a refused key in the same configure applies nothing)
    det.stage()
    try:
        with pytest.raises(DetectorConfigError, match=r"^det\.binning: cannot change"):
            det.configure({"roi": [0, 0, 4, 4], "binning": True})
        assert det.roi.get() == [0, 0, 8, 8] and det.firmware.config.roi == (0, 0, 8, 8)
    finally:
        det.unstage()
