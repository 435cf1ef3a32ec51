"""Diffraction plans: frames at a list of sample positions, and a validated count series.

:func:`diffraction_scan` visits explicit ``(x, y)`` sample positions (use
:func:`grid_positions` for an outer product of two axes) and counts ``num`` frames at each,
all in the ``"primary"`` stream; each event reads the detector and both stages (and the
shutter when one is given). :func:`diffraction_count` is :func:`bluesky.plans.count`
with smeflow's argument checks, an optional exposure and shutter, and its own
``plan_name``. Both publish the detector's pixel mask first (the ``"mask"`` stream,
:mod:`plans.mask`), which the 1D integration ignores. Like every smeflow plan, both
check their arguments when called and raise :class:`~plans.validate.PlanArgumentError`
before any message exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky.protocols import Movable, Readable
from bluesky.utils import MsgGenerator

from plans.mask import publish_mask, with_mask
from plans.runs import recorded_run, staged, with_cleanup
from plans.validate import (
    PlanArgumentError,
    PlanDetector,
    PlanMotor,
    require_exposure,
    require_image_detector,
    require_int,
    require_md,
    require_motor,
    require_movable,
    require_number,
    require_xy_positions,
)

__all__ = ["diffraction_count", "diffraction_scan", "grid_positions"]


def grid_positions(
    xs: Sequence[float], ys: Sequence[float], *, snake: bool = False
) -> list[tuple[float, float]]:
    """All ``(x, y)`` combinations, ``y`` the slow axis (row by row), optionally snaking.

    With ``snake=True`` every other row runs ``x`` backwards, which saves the return
    move of the fast stage.
    """
    x_values = [float(x) for x in xs]
    positions: list[tuple[float, float]] = []
    for row, y in enumerate(ys):
        row_xs = x_values[::-1] if snake and row % 2 else x_values
        positions.extend((x, float(y)) for x in row_xs)
    return positions


def _open_shutter(shutter: Movable[Any] | None) -> MsgGenerator[None]:
    if shutter is not None:
        yield from bps.mv(shutter, "open")


def _close_shutter(shutter: Movable[Any] | None) -> MsgGenerator[None]:
    if shutter is not None:
        yield from bps.mv(shutter, "closed")


def _set_exposure(signal: Movable[Any] | None, exposure: float | None) -> MsgGenerator[None]:
    if signal is not None:
        yield from bps.mv(signal, exposure)


def diffraction_scan(
    det: PlanDetector,
    sample_x: PlanMotor,
    sample_y: PlanMotor,
    positions: Sequence[tuple[float, float]],
    *,
    exposure: float | None = None,
    num: int = 1,
    shutter: Movable[Any] | None = None,
    md: Mapping[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Count ``num`` frames at each ``(x, y)`` sample position, in one run.

    The stages move together to each position; a ``checkpoint`` precedes every frame,
    so a suspension re-takes only the interrupted frame (after moving again when it was
    the first at its position). With a ``shutter`` it is opened before the first frame
    and closed at the end, also on failure or abort.

    Parameters
    ----------
    det
        Any triggerable, readable area detector (``describe()`` with an image data key,
        see :func:`plans.validate.image_keys`; an ``exposure`` signal only when
        ``exposure`` is given).
    sample_x, sample_y
        The sample stages; every position must lie within their limits.
    positions
        Explicit ``(x, y)`` pairs, visited in order (see :func:`grid_positions`).
    exposure
        Seconds, set on ``det.exposure`` before staging; ``None`` keeps the setting.
    num
        Frames per position (>= 1).
    shutter
        Optional shutter taking ``"open"``/``"closed"``.
    md
        Extra start-document metadata.

    Returns
    -------
    MsgGenerator[str]
        The plan; it returns the run's uid.

    Start metadata: ``plan_name="diffraction_scan"``, ``plan_args``, ``detectors``,
    ``motors``, ``positions`` (list of ``[x, y]``), ``num`` (frames per position),
    ``exposure``, ``num_points`` and ``hints``.
    """
    plan = "diffraction_scan"
    require_image_detector(plan, "det", det)
    require_motor(plan, "sample_x", sample_x)
    require_motor(plan, "sample_y", sample_y)
    points = require_xy_positions(plan, "positions", positions, sample_x, sample_y)
    frames = require_int(plan, "num", num, minimum=1)
    if shutter is not None:
        require_movable(plan, "shutter", shutter)
    exposure_signal = require_exposure(plan, det, exposure)
    seconds = None if exposure is None else float(exposure)
    user_md = require_md(plan, md)

    readables: list[Readable[Any]] = [det, sample_x, sample_y]
    if isinstance(shutter, Readable):
        readables.append(shutter)
    start_md: dict[str, Any] = {
        "plan_name": plan,
        "plan_args": {
            "det": repr(det),
            "sample_x": repr(sample_x),
            "sample_y": repr(sample_y),
            "positions": [list(p) for p in points],
            "exposure": seconds,
            "num": frames,
            "shutter": None if shutter is None else repr(shutter),
        },
        "detectors": [det.name],
        "motors": [sample_x.name, sample_y.name],
        "positions": [list(p) for p in points],
        "num": frames,
        "exposure": seconds,
        "num_points": len(points) * frames,
        "num_intervals": len(points) * frames - 1,
        "hints": {"dimensions": [([sample_x.name, sample_y.name], "primary")]},
    }
    start_md.update(user_md)

    def acquire() -> MsgGenerator[None]:
        yield from _open_shutter(shutter)
        for x, y in points:
            for frame in range(frames):
                yield from bps.checkpoint()
                if frame == 0:
                    yield from bps.mv(sample_x, x, sample_y, y)
                yield from bps.trigger_and_read(readables)

    def body() -> MsgGenerator[None]:
        yield from _set_exposure(exposure_signal, seconds)
        yield from publish_mask(det)
        yield from staged(acquire(), [det])

    return recorded_run(with_cleanup(body(), lambda: _close_shutter(shutter)), start_md)


def diffraction_count(
    det: PlanDetector,
    num: int,
    *,
    exposure: float | None = None,
    delay: float = 0.0,
    shutter: Movable[Any] | None = None,
    md: Mapping[str, Any] | None = None,
) -> MsgGenerator[str]:
    """A series of ``num`` frames at the current sample position (:func:`bluesky.plans.count`).

    Adds to ``count``: argument checks at call time, setting the exposure first, opening
    the shutter for the series and closing it afterwards (also on failure or abort), and
    ``plan_name="diffraction_count"`` so the series can be found in the catalog. The run
    itself is ``count``'s, so an abort's reason is not kept in the stop document (bluesky's
    ``run_wrapper``; :func:`diffraction_scan` keeps it).

    Parameters
    ----------
    det
        Any triggerable, readable area detector (``describe()`` with an image data key,
        see :func:`plans.validate.image_keys`).
    num
        Number of frames (>= 1).
    exposure
        Seconds, set on ``det.exposure`` before the run; ``None`` keeps the setting.
    delay
        Seconds between frames (>= 0), as in ``count``.
    shutter
        Optional shutter taking ``"open"``/``"closed"``.
    md
        Extra start-document metadata.

    Returns
    -------
    MsgGenerator[str]
        The plan; it returns the run's uid.
    """
    plan = "diffraction_count"
    require_image_detector(plan, "det", det)
    frames = require_int(plan, "num", num, minimum=1)
    pause = require_number(plan, "delay", delay)
    if pause < 0:
        raise PlanArgumentError(plan, "delay", delay, "a finite number >= 0")
    if shutter is not None:
        require_movable(plan, "shutter", shutter)
    exposure_signal = require_exposure(plan, det, exposure)
    seconds = None if exposure is None else float(exposure)
    count_md: dict[str, Any] = {"plan_name": plan, "exposure": seconds}
    count_md.update(require_md(plan, md))

    def body() -> MsgGenerator[str]:
        yield from _set_exposure(exposure_signal, seconds)
        yield from _open_shutter(shutter)
        uid: str = yield from with_mask(bp.count([det], frames, delay=pause, md=count_md),
                                        det)
        return uid

    return with_cleanup(body(), lambda: _close_shutter(shutter))
