"""A fly frame lost on the link (``devices.fly``): recorded — in the acquisition, the next
frame's ``link_lost``, the file's list of lost frames — and the acquisition goes on; frames
are matched to their triggers by the firmware's frame counter, never shifted onto the
wrong trigger."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import bluesky.plans as bp
import h5py
import numpy as np
import pytest

from dataflow.hdf5 import read_counters, read_lost
from devices.beamline import Beamline
from devices.fly import FlyParameters
from devices.flyer import DetectorFlyer
from fpga.designs.params import ChainParams


@pytest.fixture
def smeflow_chain_params() -> ChainParams:
    """32×32 frames for ``smeflow_beamline``: a quarter of the interpreter firmware's ticks
    per frame (most of a fly's time here); its frames still take far longer than a
    trigger period, and what is tested does not depend on the frame size."""
    return ChainParams(32, 32, 16)


def _fly(bl: Any, frames: int, fault_after: int | None, *faults: str) -> Any:
    """Fly ``frames`` frames at 50 Hz in real time, the link faults injected before the
    kickoff (``fault_after`` None) or once that many frames are in; the finished fly."""
    det = bl.det
    det.time_scale = 1.0
    det.stage()
    det.prepare(FlyParameters(frames=frames, exposure=0.02, period=0.02)).wait(5)
    if fault_after is None:
        for kind in faults:
            det.firmware.inject_fault(kind)
    det.kickoff().wait(5)
    if fault_after is not None:
        deadline = time.monotonic() + 30
        while len(det.fly.frames) < fault_after and time.monotonic() < deadline:
            time.sleep(0.005)
        for kind in faults:
            det.firmware.inject_fault(kind)
    det.complete().wait(60)
    return det.fly


def _file_agrees(bl: Any, fly: Any, n: int) -> None:
    """The fly file holds the frames that arrived, in trigger order, and lists the lost
    ones; each frame's record names its trigger."""
    det = bl.det
    writer = det.files.fly
    assert writer is not None
    path = writer.path
    list(det.collect_asset_docs())
    (page,) = det.collect_pages()  # (announced: kept at unstage)
    assert page["data"]["det_link_lost"] == [f.lost_before for f in fly.frames]
    det.unstage()
    assert sorted([f.index for f in fly.frames] + fly.lost) == list(range(n))
    assert read_lost(path) == fly.lost
    with h5py.File(path, "r") as f:
        images = f["/entry/data/data"][()].astype(np.int64)
    assert len(images) == n - len(fly.lost)
    # frame i of the file is the i-th frame that arrived (its own reductions)
    np.testing.assert_array_equal(images.reshape(len(images), -1).sum(axis=1),
                                  [f.roi_sum for f in fly.frames])
    assert read_counters(path)["corrupt"] + read_counters(path)["dropped"] == len(fly.lost)


def test_a_corrupt_first_packet_is_recorded_and_the_fly_goes_on(smeflow_beamline: Any) -> None:
    """The review's case: one flipped bit on the link during a 20-frame fly."""
    fly = _fly(smeflow_beamline, 20, None, "flip")
    assert fly.lost == [0]
    assert [f.index for f in fly.frames] == list(range(1, 20))
    assert [f.lost_before for f in fly.frames] == [1] + [0] * 18
    # the firmware numbered the lost frame: the next one's counter is one further on
    assert fly.frames[1].frame_number - fly.frames[0].frame_number == 1
    _file_agrees(smeflow_beamline, fly, 20)


@pytest.mark.parametrize("kind", ["flip", "drop"])
def test_a_frame_lost_mid_fly_leaves_the_others_on_their_triggers(
        smeflow_beamline: Any, kind: str) -> None:
    """A packet corrupt or gone in the middle: the frames after it keep their own
    triggers (time stamps, angles), the next one counts the loss."""
    fly = _fly(smeflow_beamline, 30, 5, kind)
    (lost,) = fly.lost
    assert 0 < lost < 29
    indices = [f.index for f in fly.frames]
    assert indices == [i for i in range(30) if i != lost]
    after = indices.index(lost + 1)
    assert [f.lost_before for f in fly.frames] == [int(i == after) for i in range(29)]
    # each frame is stamped with its own trigger: 20 ms apart, 40 ms across the gap
    gaps = np.diff([f.time for f in fly.frames])
    np.testing.assert_allclose(np.delete(gaps, after - 1), 0.02, atol=1e-6)
    assert gaps[after - 1] == pytest.approx(0.04, abs=1e-6)
    _file_agrees(smeflow_beamline, fly, 30)


def test_a_fly_losing_every_frame_fails(smeflow_beamline: Any) -> None:
    with pytest.raises(Exception, match="every one of the 3 frames of the fly acquisition "
                                        "was lost on the link"):
        _fly(smeflow_beamline, 3, None, "flip", "drop", "flip")


def test_bp_fly_with_a_lost_frame_succeeds_and_states_the_loss(
        smeflow_beamline: Any) -> None:
    """The user's path: ``bp.fly`` records 11 of 12 frames, each event's frame number and
    ``det_link_lost`` say which trigger was lost, and the run's file lists it."""
    bl = smeflow_beamline
    bl.det.firmware.inject_fault("flip")
    (uid,) = bl.RE(bp.fly([DetectorFlyer(bl.det, FlyParameters(frames=12,
                                                               exposure=0.01))]))
    run = bl.catalog.run(uid)
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run.metadata["stop"]["num_events"]["primary"] == 11
    readings = run["primary"].read()
    assert list(np.asarray(readings["det_link_lost"])) == [1] + [0] * 10
    assert bl.det.fly.lost == [0]
    (path,) = [p for p in bl.det.digests if "_fly" in p]
    assert read_lost(path) == [0]


def test_a_multi_module_detector_loses_the_frame_one_module_lost(tmp_path: Path) -> None:
    """Two modules: module 0's corrupt packet loses that detector frame; the frame
    counters (the boards' in step) still match the others to their triggers."""
    from fpga.designs.layout import DetectorLayout

    layout = DetectorLayout(ChainParams(32, 32, 16, binning=False), grid=(1, 2), gap=(0, 4))
    bl = Beamline.create(tmp_path, layout=layout, backend="compiled", time_scale=0.001)
    try:
        bl.shutter.set("open").wait(5)
        bl.use_phantom()
        fly = _fly(bl, 12, 4, "flip")
        (lost,) = fly.lost
        assert [f.index for f in fly.frames] == [i for i in range(12) if i != lost]
        _file_agrees(bl, fly, 12)
    finally:
        bl.det.unstage()
        bl.close()
