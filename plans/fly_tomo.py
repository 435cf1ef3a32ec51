"""Fly tomography: darks and flats as steps, projections during one continuous rotation.

:func:`fly_tomo_scan` records the same run layout as :func:`plans.tomo.tomo_scan` (streams
``dark``, ``flat``, ``primary``; the same start metadata, ``plan_name="fly_tomo_scan"``),
so every reader of step-scan tomography reads it too. What differs is how the projections
are taken: the rotation stage turns once across ``[start, stop]`` at the constant velocity
that gives one frame per ``exposure`` (``num_projections`` equal angular bins), and its
controller triggers the detector at the centre of every bin (position compare,
:class:`devices.fly.PositionTrigger`). The detector streams frames into its HDF5 file while
the stage moves; the plan collects them every ``flush_period`` seconds into ``primary``,
whose events carry, per frame, the angle latched at the trigger (data key: the rotation
stage's name), the trigger time and the firmware's reductions.

Start metadata added to the tomography keys: ``fly=True``, ``rotation_velocity``
(deg/s), ``frame_time`` (s) and ``angles`` — the nominal bin centres; the measured angles
are the events' rotation readings, which a reconstruction should prefer.

A suspender that trips during the rotation cannot re-take part of a continuous rotation,
and the triggers go on without beam: the detector stops its acquisition and the run fails
at once, its stop document saying why and how many projections were triggered before the
loss; those are all in the run (the plan collects once more before it fails), frames
triggered after it are dropped (``devices.suspension``), and frames already announced
after it stay (the reason names them). One that trips after
the last trigger leaves the run going: its frames all had beam. Darks and flats are
steps with checkpoints as in ``tomo_scan``. An operator's pause during the rotation does
not stop it either (the RunEngine stops what it moved with ``set``, and the rotation was
kicked off): abort, stop and halt end the run with the frames taken so far and stop the
rotation where it is, as a failure of the plan does (the rotation watches the run it was
kicked off in, ``RotationStage.kickoff``); resume goes on
collecting where the plan was, without replaying the fly (the detector's ``pause`` raises
``NoReplayAllowed``), so every projection is recorded once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bluesky import plan_stubs as bps
from bluesky.protocols import Movable
from bluesky.utils import FailedStatus, Msg, MsgGenerator

from devices.fly import FlyParameters, PositionTrigger
from devices.rotation import ContinuousRotation, RotationStage, RunUpOutError
from devices.suspension import SuspendedMidFly
from plans.runs import staged
from plans.tomo import TOMO_STREAMS, TomoSetup, tomo_run, validate_tomo
from plans.validate import PlanArgumentError, PlanDetector, PlanMotor, require_number

__all__ = ["fly_tomo_scan"]

PLAN = "fly_tomo_scan"
FLY_METHODS = ("prepare", "kickoff", "complete", "describe_collect", "collect_pages")


def fly_tomo_scan(
    det: PlanDetector,
    rotation: PlanMotor,
    sample_x: PlanMotor,
    shutter: Movable[Any],
    *,
    out_position: float,
    exposure: float,
    start: float = 0.0,
    stop: float = 180.0,
    num_projections: int = 180,
    n_darks: int = 5,
    n_flats: int = 5,
    in_position: float | None = None,
    flush_period: float = 0.1,
    md: Mapping[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Darks, flats, then projections on the fly during one continuous rotation.

    Arguments are checked when the function is called (``PlanArgumentError``, no run
    opened), including that the rotation speed this needs is within the stage's
    ``max_velocity`` (else ``exposure`` is at fault) and its run-up and run-out angles
    within its limits (else ``start`` or ``stop``, with the angle that is outside).

    Parameters
    ----------
    det
        A fly-capable area detector (``prepare``/``kickoff``/``complete``/
        ``describe_collect``/``collect_pages``, and an image data key in ``describe()``),
        e.g. :class:`devices.detector.FirmwareDetector`.
    rotation
        A :class:`devices.rotation.RotationStage`.
    sample_x, shutter, out_position, in_position, n_darks, n_flats
        As for :func:`plans.tomo.tomo_scan`.
    exposure
        Seconds per frame (> 0): also the frame period, so the stage turns
        ``|stop − start| / (num_projections · exposure)`` deg/s.
    start, stop
        Angular range in degrees; projection ``i`` is centred on
        ``start + (i + ½)(stop − start)/num_projections``.
    num_projections
        Number of frames during the rotation (>= 1).
    flush_period
        Seconds between collections of the frames taken so far (> 0). Each frame waits
        up to this long for its event, so it bounds how far a live reduction can keep up
        (the 0.1 s default leaves most of the promised second to the reduction); a
        longer one means fewer, larger event pages.
    md
        Extra start-document metadata.

    Returns
    -------
    MsgGenerator[str]
        The plan; it returns the run's uid.
    """
    for method in FLY_METHODS:
        if not callable(getattr(det, method, None)):
            raise PlanArgumentError(PLAN, "det", det, "a fly-capable detector with "
                                    + ", ".join(f"{m}()" for m in FLY_METHODS))
    if not isinstance(rotation, RotationStage):
        raise PlanArgumentError(PLAN, "rotation", rotation,
                                "a RotationStage (continuous rotation with prepare/kickoff)")
    seconds = require_number(PLAN, "exposure", exposure, positive=True)
    period = require_number(PLAN, "flush_period", flush_period, positive=True)

    def bin_centres(first: float, last: float, n: int) -> list[float]:
        return PositionTrigger(rotation, first, last).angles(n)

    setup = validate_tomo(
        PLAN, det, rotation, sample_x, shutter, out_position=out_position, start=start,
        stop=stop, num_projections=num_projections, n_darks=n_darks, n_flats=n_flats,
        exposure=seconds, in_position=in_position, md=md, angles=bin_centres,
        extra_args={"flush_period": period})
    first, last = setup.plan_args["start"], setup.plan_args["stop"]
    if first == last:
        raise PlanArgumentError(PLAN, "stop", stop, f"different from start ({first:g})")
    velocity = abs(last - first) / (len(setup.angles) * seconds)
    _require_rotation_fits(rotation, first, last, velocity, exposure, len(setup.angles))
    setup = TomoSetup(**{**setup.__dict__, "extra_md": {
        "fly": True, "rotation_velocity": velocity, "frame_time": seconds}})
    return _fly_tomo_scan(setup, ContinuousRotation(first, last, velocity), period)


def _require_rotation_fits(rotation: RotationStage, start: float, stop: float,
                           velocity: float, exposure: Any, frames: int) -> None:
    """Check that ``rotation`` can turn ``start → stop`` at ``velocity`` (raises
    ``PlanArgumentError`` naming the argument at fault).

    A velocity above the stage's maximum is the exposure's fault (too short for the
    frames over that range); a run-up or run-out angle beyond the limits is ``start``'s
    or ``stop``'s (too close to the limit to accelerate or stop there).
    """
    try:
        rotation.run_up_out(start, stop, velocity)
    except RunUpOutError as err:
        argument, angle = ("start", start) if err.end == "run-up" else ("stop", stop)
        low, high = (float(v) for v in rotation.limits)
        bound = f"<= {high - err.ramp:g}" if err.angle > angle else f">= {low + err.ramp:g}"
        raise PlanArgumentError(
            PLAN, argument, angle,
            f"{bound} deg: at {velocity:g} deg/s the stage needs {err.ramp:g} deg to "
            f"{'stop' if err.end == 'run-out' else 'reach speed'}, and the {err.end} angle "
            f"{err.angle:g} deg would be outside the limits [{low:g}, {high:g}] deg "
            f"of {rotation.name!r}") from None
    except ValueError as err:
        raise PlanArgumentError(
            PLAN, "exposure", exposure,
            f"long enough for the stage: {frames} frames over {abs(stop - start):g} deg at "
            f"{exposure:g} s each need {velocity:g} deg/s ({err})"
        ) from None


def collect_until_complete(flyers: list[Any], det: Any, flush_period: float,
                           stream: str) -> MsgGenerator[None]:
    """``complete`` every flyer, then collect ``det`` into ``stream`` every
    ``flush_period`` seconds until all are complete, and once more as soon as they are.

    ``bluesky.plan_stubs.collect_while_completing`` waits on a status group, which the
    RunEngine forgets when a pause interrupts the wait: resumed without a replay (the
    detector's ``pause`` says ``NoReplayAllowed`` while it flies) it stops collecting and
    the plan would end the fly early. This loop asks the statuses themselves, so any
    number of pauses leave it collecting every ``flush_period``. A flyer whose status
    fails raises ``FailedStatus`` as a wait would.

    A suspension mid-fly (:class:`~devices.suspension.SuspendedMidFly`, raised into the
    plan here) has stopped the acquisition and kept the frames triggered before the beam
    was lost, some of them not collected yet: they are collected once more before the
    error goes on to fail the run, as the RunEngine's own clean-up collects a flyer a
    failed plan never collected (which it does not do for one collected before)."""
    statuses = []
    for flyer in flyers:
        status = yield from bps.complete(flyer, wait=False)
        statuses.append(status)
    try:
        while True:
            done = all(status.done for status in statuses)
            for status in statuses:
                if status.done and not status.success:
                    raise FailedStatus(status)
            yield from _collect(det, stream)
            if done:
                return
            yield Msg("wait_for", None,  # type: ignore[no-untyped-call]
                      [_all_done_within(statuses, flush_period)])
    except SuspendedMidFly:
        yield from _collect(det, stream)  # (the frames with beam, whole: devices.suspension)
        raise


def _collect(det: Any, stream: str) -> MsgGenerator[Any]:
    """Collect ``det`` into ``stream``: the message ``bps.collect`` yields, yielded here
    (its Plan object formats the stack when made, several times a second in a fly)."""
    return (yield Msg("collect", det, stream=False, return_payload=True,  # type: ignore[no-untyped-call]
                      name=stream))


POLL_S = 0.01
"""How often :func:`collect_until_complete` asks the statuses while it waits."""


def _all_done_within(statuses: list[Any], timeout: float) -> Callable[[], Awaitable[None]]:
    """A coroutine function (for ``bps.wait_for``) that returns when every status is done
    or ``timeout`` s have passed, whichever is first: the last frames are collected when
    the flyers complete, not up to a flush period later, and a pause that cancels it
    loses nothing (the loop asks the statuses again)."""
    async def done_or_timeout() -> None:
        deadline = time.monotonic() + timeout
        while not all(status.done for status in statuses):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(POLL_S, left))

    return done_or_timeout


def _fly_tomo_scan(setup: TomoSetup, motion: ContinuousRotation,
                   flush_period: float) -> MsgGenerator[str]:
    """The validated fly tomography plan (see :func:`fly_tomo_scan`)."""
    det, rotation = setup.det, setup.rotation
    stream = TOMO_STREAMS["projection"]
    assert isinstance(rotation, RotationStage)

    def fly() -> MsgGenerator[None]:
        trigger = PositionTrigger(rotation, motion.start, motion.stop)
        yield from bps.prepare(rotation, motion, wait=True)
        yield from bps.prepare(det, FlyParameters(frames=len(setup.angles),
                                                  exposure=setup.exposure, trigger=trigger,
                                                  polled=True),
                               wait=True)
        yield from bps.declare_stream(det, name=stream, collect=True)
        yield from bps.kickoff(rotation, wait=True)
        yield from bps.kickoff(det, wait=True)
        yield from collect_until_complete([rotation, det], det, flush_period, stream)
        yield from bps.checkpoint()  # (a pause from here rewinds to after the fly)

    uid: str = yield from tomo_run(
        setup, lambda: staged(fly(), [det]))
    return uid
