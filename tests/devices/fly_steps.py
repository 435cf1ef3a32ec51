"""A fly scan's steps as the device tests drive them by hand (what bluesky's ``fly`` plan
does through a flyer): stage, prepare, kickoff, complete and collect, with or without a
continuous rotation whose angles trigger the frames. Each step waits for its status, so a
failure is raised where it happens."""

from __future__ import annotations

from typing import Any

from devices.detector import FirmwareDetector
from devices.fly import FlyParameters, PositionTrigger
from devices.rotation import ContinuousRotation, RotationStage


def arm(det: FirmwareDetector, params: FlyParameters) -> None:
    """Stage ``det``, prepare it with ``params`` and kick it off."""
    det.stage()
    det.prepare(params).wait(5)
    det.kickoff().wait(5)


def fly(det: FirmwareDetector, params: FlyParameters, timeout: float = 60.0) -> None:
    """:func:`arm`, then wait up to ``timeout`` s for the acquisition to complete."""
    arm(det, params)
    det.complete().wait(timeout)


def collect(det: FirmwareDetector) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    """The asset documents announcing the frames acquired so far, and their one event
    page (collected in that order, as a flyer collects)."""
    docs = list(det.collect_asset_docs())
    (page,) = det.collect_pages()
    return docs, page


def _prepare_on_rotation(det: FirmwareDetector, rot: RotationStage,
                         rotation: ContinuousRotation, start: float, stop: float,
                         frames: int, exposure: float) -> PositionTrigger:
    """Prepare ``rot`` for ``rotation``, then stage ``det`` and prepare it with ``frames``
    position-compare triggers over ``start``-``stop`` deg of it; the trigger."""
    rot.prepare(rotation).wait(10)
    trigger = PositionTrigger(rot, start, stop)
    det.stage()
    det.prepare(FlyParameters(frames=frames, exposure=exposure, trigger=trigger)).wait(5)
    return trigger


def arm_before_rotation(det: FirmwareDetector, rot: RotationStage,
                        rotation: ContinuousRotation, start: float, stop: float,
                        frames: int, exposure: float = 0.01) -> PositionTrigger:
    """``det`` kicked off with position-compare triggers over ``start``-``stop`` deg of
    ``rotation``, which is prepared on ``rot`` and not started: the detector waits for
    it. The trigger."""
    trigger = _prepare_on_rotation(det, rot, rotation, start, stop, frames, exposure)
    det.kickoff().wait(5)
    return trigger


def fly_on_rotation(det: FirmwareDetector, rot: RotationStage,
                    rotation: ContinuousRotation, start: float, stop: float,
                    frames: int, exposure: float = 0.01) -> PositionTrigger:
    """A fly scan whose frames the angles ``start``-``stop`` deg of ``rotation`` trigger:
    both prepared, the rotation kicked off, then the detector, and both completed. The
    trigger."""
    trigger = _prepare_on_rotation(det, rot, rotation, start, stop, frames, exposure)
    rot.kickoff().wait(5)
    det.kickoff().wait(5)
    det.complete().wait(30)
    rot.complete().wait(10)
    return trigger
