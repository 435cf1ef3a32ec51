"""The sample's caches are filled before an acquisition's clock starts (``Scene.prepare``):
at staging and at a fly acquisition's start, on the calling thread, not by the workers
drawing its first frames. The powder's rings took 0.6 s at 1 Mpix, computed by both fly
workers at once in the first frames, which put the end-to-end benchmark's frames 0.4-0.6 s
behind their triggers from the start (``benchmarks/endtoend.py``, lag max at 1 s)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from devices.beamline import Beamline
from devices.fly import FlyParameters
from devices.samples import Pose
from fpga.designs.params import ChainParams

from . import fly_steps


class _Recording:
    """A sample recording which thread prepared it and which drew images, in order."""

    def __init__(self, with_prepare: bool) -> None:
        self.calls: list[tuple[str, str]] = []
        if with_prepare:
            self.prepare = self._prepare

    def _prepare(self, shape: tuple[int, int], pixel_size: Any) -> None:
        self.calls.append(("prepare", threading.current_thread().name))

    def flux(self, pose: Pose, shape: tuple[int, int], pixel_size: Any) -> np.ndarray:
        self.calls.append(("flux", threading.current_thread().name))
        return np.full(shape, 100.0)


def _beamline(tmp_path: Path) -> Beamline:
    bl = Beamline.create(tmp_path, params=ChainParams(64, 64, 16), backend="compiled",
                         time_scale=0.001)
    bl.shutter.set("open").wait(5)
    return bl


def test_staging_fills_the_powder_rings_of_the_detector_shape(tmp_path: Path) -> None:
    bl = _beamline(tmp_path)
    try:
        bl.use_powder()
        powder = bl.scene.sample
        assert not powder._cache  # (made lazily until now)
        bl.det.stage()
        try:
            assert [key[0] for key in powder._cache] == [bl.det.layout.shape]
            _, background = powder._cache[next(iter(powder._cache))]
            assert background.shape == (64, 64) and background.min() > 0
        finally:
            bl.det.unstage()
    finally:
        bl.close()


def test_a_fly_acquisition_prepares_a_sample_swapped_in_after_staging(tmp_path: Path) -> None:
    bl = _beamline(tmp_path)
    try:
        det = bl.det
        det.stage()
        sample = _Recording(with_prepare=True)
        bl.scene.sample = sample
        det.prepare(FlyParameters(frames=3, exposure=0.005, period=0.005)).wait(5)
        det.kickoff().wait(5)
        det.complete().wait(30)
        det.unstage()
        first, *rest = sample.calls
        assert first == ("prepare", threading.current_thread().name)
        assert len(rest) == 3 and {kind for kind, _ in rest} == {"flux"}
        assert all(thread != first[1] for _, thread in rest)  # (drawn by the workers)
    finally:
        bl.close()


def test_a_sample_without_prepare_is_not_drawn_before_its_frames(tmp_path: Path) -> None:
    """Staging and a fly's start drew such a sample's image at the present pose and threw
    it away (nothing kept it): only the frames draw it now."""
    bl = _beamline(tmp_path)
    try:
        sample = _Recording(with_prepare=False)
        bl.scene.sample = sample
        fly_steps.fly(bl.det, FlyParameters(frames=2, exposure=0.005, period=0.005))
        bl.det.unstage()
        me = threading.current_thread().name
        assert len(sample.calls) == 2 and all(t != me for _, t in sample.calls)  # the workers'
    finally:
        bl.close()


def test_staging_with_the_shutter_closed_prepares_and_darks_stay_dark(
        tmp_path: Path) -> None:
    """A plan may stage with the shutter closed and open it after (``diffraction_scan``
    does): staging prepares the sample whatever the shutter, so the powder's rings (0.6 s
    at 1 Mpix) are not made inside the first open frame (review of 3653d68, which made
    nothing with the shutter closed); dark frames stay dark."""
    bl = _beamline(tmp_path)
    try:
        bl.use_powder()
        powder = bl.scene.sample
        bl.shutter.set("closed").wait(5)
        bl.det.stage()
        try:
            assert len(powder._cache) == 1
            bl.det.trigger().wait(30)
            assert bl.det.roi_sum.get() == 0  # (a dark frame)
            bl.shutter.set("open").wait(5)
            bl.det.trigger().wait(30)
            assert bl.det.roi_sum.get() > 0 and len(powder._cache) == 1
        finally:
            bl.det.unstage()
    finally:
        bl.close()


def test_staging_makes_the_empty_beams_image(tmp_path: Path) -> None:
    from devices.samples import EmptyBeam, _incident_image

    bl = _beamline(tmp_path)
    try:
        bl.scene.sample = EmptyBeam()
        _incident_image.cache_clear()
        bl.det.stage()
        bl.det.unstage()
        assert _incident_image.cache_info().currsize == 1
    finally:
        bl.close()
