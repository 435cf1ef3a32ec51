"""Closing a beamline (``devices.beamline.Beamline.close``) while the detector flies: the
acquisition stops without an error, the detector is unstaged and its fly file closed."""

from __future__ import annotations

import time
from pathlib import Path

import h5py

from devices.beamline import Beamline
from devices.fly import FlyParameters
from fpga.designs.params import ChainParams

from . import fly_steps


def test_closing_the_beamline_mid_fly_stops_it_cleanly(tmp_path: Path) -> None:
    """The review's D8: close() used to close the firmware under the running fly, whose
    next batch re-configured the board from reset and failed with 'a frame went missing
    on the way', the detector left staged with its file open."""
    bl = Beamline.create(tmp_path, params=ChainParams(64, 64, 16), backend="compiled",
                         time_scale=0.001)
    bl.shutter.set("open").wait(5)
    det = bl.det
    det.time_scale = 1.0
    fly_steps.arm(det, FlyParameters(frames=400, exposure=0.005, period=0.005))
    time.sleep(0.3)
    bl.close()
    fly = det.fly
    assert fly is not None
    fly.done.wait(10)  # (raises the acquisition's error, if it had one)
    assert fly.stopped_early and not fly.workers_alive
    assert not det.files.staged
    (path,) = [p for p in det.digests if "_fly" in p]
    with h5py.File(path, "r") as f:  # closed: a plain (non-SWMR) open works
        assert f["entry/data/data"].shape[1:] == (64, 64)
