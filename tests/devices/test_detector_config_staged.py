"""The detector's configuration changed inside a staged plan: refused with the signal's
name, or (``bps.configure`` of ``roi``/``threshold``) loaded into the firmware before the
next exposure — the recorded configuration, the firmware and the files never disagree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
import pytest
from bluesky import RunEngine

from dataflow.catalog import Catalog
from dataflow.hdf5_read import read_counters
from devices.beamline import Beamline
from devices.detector import DetectorConfigError
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


def test_the_same_value_and_the_exposure_before_any_file_pass(setup: Any) -> None:
    """Putting a staged detector's current value changes nothing and is accepted; the
    exposure may change until a step-scan file of the staging is open (it records one
    count_time), then it is refused naming the file."""
    det = setup[2].det
    det.stage()
    try:
        det.roi.put(list(det.roi.get()))
        det.binning.put(False)
        det.exposure.put(0.2)
        det.trigger().wait(10)
        list(det.collect_asset_docs())
        with pytest.raises(DetectorConfigError,
                           match=r"^det\.exposure: cannot change while det is staged: its "
                                 r"open frame file det_\S+_primary\.h5 records one count_time"):
            det.exposure.put(0.3)
        assert det.exposure.get() == 0.2
    finally:
        det.unstage()


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
