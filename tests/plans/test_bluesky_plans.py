"""Every plan of ``bluesky.plans`` that takes a detector, run unchanged against the
simulated beamline's firmware detector and read back through databroker (v1 and v2).

Each run is read back with databroker v1 (``db[uid].table(fill=True)``): every event's
frame is in its stream's array, in order, and its firmware ROI sum (the whole frame: the
default ROI) is the sum of that frame. In the plans of ``WITH_BASELINE`` the detector is
in the baseline too (``SupplementalData``), so the same detector's frames land in two
streams and each must read back its own (v1 and v2); the same holds for a monitored
detector's ``det_monitor`` stream. ``bp.fly`` runs with
:class:`devices.flyer.DetectorFlyer`. Frames are 16×32 so the whole module stays quick.
"""

from __future__ import annotations

import inspect
import io
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky.preprocessors import SupplementalData
from bluesky.preprocessors import run_wrapper as bpp_run
from cycler import cycler

from dataflow.broker import open_broker
from dataflow.catalog import Catalog
from devices.beamline import Beamline
from devices.fly import FlyParameters
from devices.flyer import DetectorFlyer
from fpga.designs.params import ChainParams

P = ChainParams(16, 32, 16)
FRAME = P.out_shape(False)

Plan = Callable[[Beamline], Any]

#: A call of every plan of bluesky.plans with a ``detectors``/``detector`` parameter.
PLANS: dict[str, Plan] = {
    "count": lambda b: bp.count([b.det], 2),
    "scan": lambda b: bp.scan([b.det], b.sample_x, -1, 1, 2),
    "rel_scan": lambda b: bp.rel_scan([b.det], b.sample_x, -1, 1, 2),
    "relative_scan": lambda b: bp.relative_scan([b.det], b.sample_x, -1, 1, 2),
    "list_scan": lambda b: bp.list_scan([b.det], b.sample_x, [0.0, 0.5]),  # type: ignore[arg-type]
    "rel_list_scan": lambda b: bp.rel_list_scan([b.det], b.sample_x, [0.0, 0.5]),
    "relative_list_scan": lambda b: bp.relative_list_scan([b.det], b.sample_x, [0.0, 0.5]),
    "log_scan": lambda b: bp.log_scan([b.det], b.sample_x, 0, 1, 2),
    "rel_log_scan": lambda b: bp.rel_log_scan([b.det], b.sample_x, 0, 1, 2),
    "relative_log_scan": lambda b: bp.relative_log_scan([b.det], b.sample_x, 0, 1, 2),
    "grid_scan": lambda b: bp.grid_scan([b.det], b.sample_x, -1, 1, 2, b.sample_y, -1, 1, 2),
    "rel_grid_scan": lambda b: bp.rel_grid_scan([b.det], b.sample_x, -1, 1, 2,
                                                b.sample_y, -1, 1, 2),
    "outer_product_scan": lambda b: bp.outer_product_scan([b.det], b.sample_x, -1, 1, 2,
                                                          b.sample_y, -1, 1, 2, False),
    "relative_outer_product_scan": lambda b: bp.relative_outer_product_scan(
        [b.det], b.sample_x, -1, 1, 2, b.sample_y, -1, 1, 2, False),
    "list_grid_scan": lambda b: bp.list_grid_scan([b.det], b.sample_x, [0, 1],
                                                  b.sample_y, [0, 1]),
    "rel_list_grid_scan": lambda b: bp.rel_list_grid_scan([b.det], b.sample_x, [0, 1],
                                                          b.sample_y, [0, 1]),
    "inner_product_scan": lambda b: bp.inner_product_scan([b.det], 2, b.sample_x, -1, 1,
                                                          b.sample_y, -1, 1),
    "relative_inner_product_scan": lambda b: bp.relative_inner_product_scan(
        [b.det], 2, b.sample_x, -1, 1, b.sample_y, -1, 1),
    "scan_nd": lambda b: bp.scan_nd([b.det], cycler(b.sample_x, [0.0, 1.0])),
    "spiral": lambda b: bp.spiral([b.det], b.sample_x, b.sample_y, 0, 0, 1, 1, 0.5, 3),
    "rel_spiral": lambda b: bp.rel_spiral([b.det], b.sample_x, b.sample_y, 1, 1, 0.5, 3),
    "relative_spiral": lambda b: bp.relative_spiral([b.det], b.sample_x, b.sample_y, 1, 1,
                                                    0.5, 3),
    "spiral_fermat": lambda b: bp.spiral_fermat([b.det], b.sample_x, b.sample_y, 0, 0, 1, 1,
                                                0.5, 1.0),
    "rel_spiral_fermat": lambda b: bp.rel_spiral_fermat([b.det], b.sample_x, b.sample_y,
                                                        1, 1, 0.5, 1.0),
    "relative_spiral_fermat": lambda b: bp.relative_spiral_fermat(
        [b.det], b.sample_x, b.sample_y, 1, 1, 0.5, 1.0),
    "spiral_square": lambda b: bp.spiral_square([b.det], b.sample_x, b.sample_y, 0, 0, 1, 1,
                                                2, 2),
    "rel_spiral_square": lambda b: bp.rel_spiral_square([b.det], b.sample_x, b.sample_y,
                                                        1, 1, 2, 2),
    "x2x_scan": lambda b: bp.x2x_scan([b.det], b.sample_x, b.sample_y, 0, 1, 2),
    "adaptive_scan": lambda b: bp.adaptive_scan([b.det], "det_roi_sum", b.sample_x, 0, 1,
                                                0.5, 1, 1e12, False),
    "rel_adaptive_scan": lambda b: bp.rel_adaptive_scan([b.det], "det_roi_sum", b.sample_x,
                                                        0, 1, 0.5, 1, 1e12, False),
    "relative_adaptive_scan": lambda b: bp.relative_adaptive_scan(
        [b.det], "det_roi_sum", b.sample_x, 0, 1, 0.5, 1, 1e12, False),
    "tune_centroid": lambda b: bp.tune_centroid([b.det], "det_roi_sum", b.sample_x, -1, 1,
                                                1.0, num=3),
    "tweak": lambda b: bp.tweak(b.det, "det_roi_sum", b.sample_x, 0.5),
}


#: Plans run with the detector in the baseline as well (the plans a user names first).
WITH_BASELINE = {"count", "scan", "grid_scan", "list_scan", "rel_scan", "adaptive_scan"}


def plans_taking_a_detector() -> set[str]:
    """The public plans of bluesky.plans with a ``detectors`` or ``detector`` parameter."""
    names = set()
    for name, plan in vars(bp).items():
        if name.startswith("_") or not inspect.isfunction(plan) \
                or plan.__module__ != bp.__name__:
            continue
        if {"detectors", "detector"} & set(inspect.signature(plan).parameters):
            names.add(name)
    return names


def test_every_plan_taking_a_detector_is_run_here() -> None:
    assert plans_taking_a_detector() == set(PLANS)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Catalog, Beamline,
                                                                      Any]]:
    catalog = Catalog(tmp_path_factory.mktemp("plans") / "data")
    RE = RunEngine({})
    catalog.subscribe(RE)
    beamline = Beamline.create(catalog.raw_dir, params=P, backend="interp",
                               time_scale=0.0005)
    beamline.det.exposure.put(0.01)
    RE(bps.mv(beamline.shutter, "open"))
    try:
        yield RE, catalog, beamline, open_broker(catalog)
    finally:
        beamline.close()
        catalog.close()


def check_stream(header: Any, stream: str, n: int, v2: bool = True) -> np.ndarray:
    """``stream`` of ``header`` has ``n`` events, each with its own frame (databroker v1,
    and v2 when asked)."""
    table = header.table(stream, fill=True)
    assert len(table) == n, stream
    images = np.stack(list(table["det_image"]))
    assert images.shape == (n, *FRAME), stream
    sums = images.reshape(n, -1).sum(axis=1, dtype=np.int64)
    assert sums.all(), f"{stream}: a frame without photons (shutter closed?)"
    np.testing.assert_array_equal(sums, table["det_roi_sum"], err_msg=stream)
    if v2:
        data = header.v2[stream].read()
        np.testing.assert_array_equal(data["det_image"].values, images, err_msg=stream)
    return images


@pytest.mark.parametrize("name", sorted(PLANS))
def test_plan_reads_back_through_databroker(setup: Any, name: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    RE, _, beamline, db = setup
    monkeypatch.setattr(sys, "stdin", io.StringIO("q\n"))  # tweak asks for a step
    baseline = name in WITH_BASELINE
    sd = SupplementalData(  # type: ignore[no-untyped-call]
        baseline=[beamline.det, beamline.sample_y] if baseline else [])
    RE.preprocessors.append(sd)
    try:
        (uid,) = RE(PLANS[name](beamline), purpose=name)
    finally:
        RE.preprocessors.remove(sd)
    header = db[uid]
    # (outer_product_scan and the relative_* names are aliases: plan_name is the target's)
    assert header.start["purpose"] == name and header.stop["exit_status"] == "success"
    assert db[-1].start["uid"] == uid
    n = header.stop["num_events"]["primary"]
    assert n >= 1
    primary = check_stream(header, "primary", n, v2=baseline)
    if baseline:
        frames = check_stream(header, "baseline", 2)
        assert not any(np.array_equal(f, p) for f in frames for p in primary)


def test_a_detector_only_in_the_baseline_files_its_frames_there(setup: Any) -> None:
    RE, _, beamline, db = setup
    sd = SupplementalData(baseline=beamline.devices())  # type: ignore[no-untyped-call]
    RE.preprocessors.append(sd)
    try:
        (uid,) = RE(bp.scan([beamline.beam], beamline.sample_x, 0, 1, 3))
    finally:
        RE.preprocessors.remove(sd)
    header = db[uid]
    assert "det_image" not in header.table().columns
    assert set(header.stream_names) == {"baseline", "primary"}
    check_stream(header, "baseline", 2)
    assert header.v2.primary.read()["sample_x"].shape == (3,)


def test_a_monitored_detector_files_its_frames_in_the_monitor_stream(setup: Any) -> None:
    """``monitor_during_wrapper``: every frame the detector acquires lands in
    ``det_monitor``, each announced there; the primary stream holds only the frames read
    into it. Each stream reads back its own frames (not the first N of a shared file)."""
    from bluesky.preprocessors import monitor_during_wrapper

    RE, _, beamline, db = setup
    det = beamline.det

    def plan() -> Any:
        yield from bps.trigger(det, wait=True)  # acquired (so monitored), never read
        yield from bps.trigger_and_read([det])
        yield from bps.trigger_and_read([det])

    counted = bp.count([det], 2)
    (first,) = RE(monitor_during_wrapper(counted, [det]))  # type: ignore[no-untyped-call]
    check_stream(db[first], "det_monitor", 2)
    (uid,) = RE(monitor_during_wrapper(bpp_run(plan()), [det]))  # type: ignore[no-untyped-call]
    header = db[uid]
    assert set(header.stream_names) == {"det_monitor", "primary"}
    assert header.stop["num_events"] == {"det_monitor": 3, "primary": 2}
    monitored = check_stream(header, "det_monitor", 3)
    primary = check_stream(header, "primary", 2)
    np.testing.assert_array_equal(primary, monitored[1:])
    assert not np.array_equal(monitored[0], monitored[1])  # photon noise: frames differ
    assert db.v2[uid].det_monitor.read()["det_roi_sum"].shape == (3,)


def test_subscribing_the_detector_outside_a_monitor_is_refused(setup: Any) -> None:
    _, _, beamline, _ = setup
    with pytest.raises(ValueError, match="det: a detector is subscribed without an event "
                                         "type only by a bluesky RunEngine monitor"):
        beamline.det.subscribe(lambda **kw: None)


def test_bp_fly_with_the_detector_flyer(setup: Any) -> None:
    RE, _, beamline, db = setup
    flyer = DetectorFlyer(beamline.det, FlyParameters(frames=5, exposure=0.01))
    (uid,) = RE(bp.fly([flyer]))
    header = db[uid]
    assert header.stop["exit_status"] == "success"
    images = check_stream(header, "primary", 5)
    stamps = np.asarray(header.v2.primary.read()["det_trigger_time"])
    assert np.all(np.diff(stamps) > 0)
    assert images.any()
    assert not beamline.det.files.staged  # the flyer staged it and unstaged it
