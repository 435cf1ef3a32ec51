"""Step-scan tomography: darks, flats and projections in one bluesky run.

Layout of the run that :func:`tomo_scan` records (what a reader relies on):

* **Streams.** One event stream per kind of frame, so a reader finds each without
  filtering: ``"dark"`` (shutter closed), ``"flat"`` (sample moved out of the beam to
  ``out_position``, shutter open) and ``"primary"`` (projections, sample back at
  ``in_position``, one event per angle in the order of the start document's ``angles``).
  The start document maps the streams to NeXus NXtomo ``image_key`` values
  (``{"primary": 0, "flat": 1, "dark": 2}``) for writers that want one stack. A fourth
  stream, ``"mask"``, comes first: one event with the detector's pixel mask (gaps, dead
  and hot pixels; :mod:`dataflow.pixel_mask`), which the reconstruction ignores.
* **Event data.** Every event of every stream reads the detector, the rotation stage,
  ``sample_x`` and the shutter, so each frame carries its angle, the sample position and
  the shutter state it was taken with.
* **Start metadata** (for reconstruction): ``plan_name="tomo_scan"``, ``plan_args``,
  ``detectors`` / ``detector``, ``motors``, ``rotation_axis`` (the rotation stage's name,
  which is also the data key of the angle), ``angles`` (degrees, projection order),
  ``angle_units``, ``num_projections`` (at most :data:`MAX_PROJECTIONS`), ``n_darks``,
  ``n_flats``, ``exposure`` (seconds, or ``None`` when the detector's own setting was used —
  the descriptors' configuration then holds it), ``sample_x_in``, ``sample_x_out``,
  ``streams``, ``image_key``, ``num_points`` and ``hints`` (projections are plotted against
  the angle).

Order of operations: set the exposure (if given), close the shutter and take the darks,
move the sample out and open the shutter for the flats, move the sample back in, then one
projection per angle. The detector is staged for each of the three kinds of frames
separately, so each stream's frames are in a file of their own (one external resource per
stream, which is what the catalog's writer expects). The shutter is closed at the end whatever
happens (completion, failure, pause-then-abort) by :func:`plans.runs.with_cleanup`, inside
the run, so a stop document means the shutter is closed. An aborted run's stop document
keeps the operator's reason (see :func:`plans.runs.recorded_run`). A ``checkpoint`` precedes
every frame (and the move to its angle), so a suspender that trips on beam loss makes the
RunEngine re-take exactly the interrupted frame after the beam returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from bluesky import plan_stubs as bps
from bluesky.protocols import Movable, Readable
from bluesky.utils import MsgGenerator

from plans.mask import publish_mask
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
    require_within_limits,
)

__all__ = [
    "IMAGE_KEY", "MAX_PROJECTIONS", "TOMO_STREAMS", "TomoSetup", "tomo_angles", "tomo_run",
    "tomo_scan", "validate_tomo",
]

PLAN = "tomo_scan"

TOMO_STREAMS = {"dark": "dark", "flat": "flat", "projection": "primary"}
"""Event stream that holds each kind of frame."""

IMAGE_KEY = {"primary": 0, "flat": 1, "dark": 2}
"""NeXus NXtomo ``image_key`` of the frames in each stream."""

MAX_PROJECTIONS = 1_000_000
"""The most projections one tomography run takes: its start document lists every angle
(a million of them is about 20 MB of JSON; far beyond any scan's 10⁴–10⁵), and a typo
such as ``10**12`` must fail when the plan is made, not exhaust memory building them."""


def tomo_angles(
    start: float, stop: float, num_projections: int, *, endpoint: bool = True
) -> list[float]:
    """Projection angles in degrees, evenly spaced from ``start`` towards ``stop``.

    With ``endpoint=True`` (the default, as :func:`bluesky.plans.scan`) ``stop`` is the
    last angle; with ``endpoint=False`` it is excluded, which gives round steps for a
    half turn (``0, 2, …, 178`` for 90 projections over 180°).
    """
    values = np.linspace(start, stop, num_projections, endpoint=endpoint)
    return [float(angle) for angle in values]


def tomo_scan(
    det: PlanDetector,
    rotation: PlanMotor,
    sample_x: PlanMotor,
    shutter: Movable[Any],
    *,
    out_position: float,
    start: float = 0.0,
    stop: float = 180.0,
    num_projections: int = 90,
    n_darks: int = 5,
    n_flats: int = 5,
    exposure: float | None = None,
    in_position: float | None = None,
    endpoint: bool = True,
    md: Mapping[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Acquire darks, flats and projections of a sample on a rotation stage, in one run.

    All arguments are checked when the function is called: a bad one raises
    :class:`~plans.validate.PlanArgumentError` before any message exists, so the
    RunEngine never opens a run for it. The stream and metadata layout is described in
    the module docstring.

    Parameters
    ----------
    det
        Any triggerable, readable area detector: its ``describe()`` must have an image
        data key (shape of 2 dimensions, see :func:`plans.validate.image_keys`); needs an
        ``exposure`` signal only when ``exposure`` is given.
    rotation
        The rotation stage (degrees); every angle must lie within its limits.
    sample_x
        The stage that moves the sample across the beam (out of it for the flats).
    shutter
        A device whose ``set`` takes ``"open"`` and ``"closed"``.
    out_position
        ``sample_x`` position with the sample fully out of the beam (flat fields).
    start, stop
        First and last projection angle in degrees (see ``endpoint``).
    num_projections
        Number of projections (>= 1).
    n_darks, n_flats
        Number of dark and flat frames (>= 0 each).
    exposure
        Exposure time in seconds set on ``det.exposure`` before staging; ``None`` keeps
        the detector's setting.
    in_position
        ``sample_x`` position for the projections; ``None`` uses the position the stage
        has when the plan starts running.
    endpoint
        Whether ``stop`` is itself a projection angle.
    md
        Extra start-document metadata (overrides the plan's keys of the same name).

    Returns
    -------
    MsgGenerator[str]
        The plan; it returns the run's uid.
    """
    if not isinstance(endpoint, bool):
        raise PlanArgumentError(PLAN, "endpoint", endpoint, "True or False")
    setup = validate_tomo(
        PLAN, det, rotation, sample_x, shutter, out_position=out_position, start=start,
        stop=stop, num_projections=num_projections, n_darks=n_darks, n_flats=n_flats,
        exposure=exposure, in_position=in_position, md=md,
        angles=lambda a, b, n: tomo_angles(a, b, n, endpoint=endpoint),
        extra_args={"endpoint": endpoint})
    return _tomo_scan(setup)


def validate_tomo(
    plan: str,
    det: Any,
    rotation: Any,
    sample_x: Any,
    shutter: Any,
    *,
    out_position: Any,
    start: Any,
    stop: Any,
    num_projections: Any,
    n_darks: Any,
    n_flats: Any,
    exposure: Any,
    in_position: Any,
    md: Any,
    angles: Callable[[float, float, int], list[float]],
    extra_args: Mapping[str, Any] | None = None,
    extra_md: Mapping[str, Any] | None = None,
) -> TomoSetup:
    """Check the arguments shared by the tomography plans (``PlanArgumentError`` naming
    ``plan`` and the argument) and return them as a :class:`TomoSetup`; ``angles`` maps
    ``(start, stop, num_projections)`` to the projection angles."""
    require_image_detector(plan, "det", det)
    require_motor(plan, "rotation", rotation)
    require_motor(plan, "sample_x", sample_x)
    require_movable(plan, "shutter", shutter)
    start_deg = require_within_limits(plan, "start", require_number(plan, "start", start), rotation)
    stop_deg = require_within_limits(plan, "stop", require_number(plan, "stop", stop), rotation)
    n_proj = require_int(plan, "num_projections", num_projections, minimum=1,
                         maximum=MAX_PROJECTIONS, why=" (the start document lists every angle)")
    if n_proj > 1 and start_deg == stop_deg:
        raise PlanArgumentError(
            plan, "stop", stop, f"different from start ({start_deg:g}) for {n_proj} projections"
        )
    darks = require_int(plan, "n_darks", n_darks, minimum=0)
    flats = require_int(plan, "n_flats", n_flats, minimum=0)
    x_out = require_within_limits(
        plan, "out_position", require_number(plan, "out_position", out_position), sample_x
    )
    x_in: float | None = None
    if in_position is not None:
        x_in = require_within_limits(
            plan, "in_position", require_number(plan, "in_position", in_position), sample_x
        )
    exposure_signal = require_exposure(plan, det, exposure)
    seconds = None if exposure is None else float(exposure)
    user_md = require_md(plan, md)
    plan_args = {
        "det": repr(det),
        "rotation": repr(rotation),
        "sample_x": repr(sample_x),
        "shutter": repr(shutter),
        "start": start_deg,
        "stop": stop_deg,
        "num_projections": n_proj,
        "n_darks": darks,
        "n_flats": flats,
        "exposure": seconds,
        "out_position": x_out,
        "in_position": x_in,
        **(extra_args or {}),
    }
    return TomoSetup(
        plan=plan,
        det=det,
        rotation=rotation,
        sample_x=sample_x,
        shutter=shutter,
        angles=angles(start_deg, stop_deg, n_proj),
        n_darks=darks,
        n_flats=flats,
        exposure=seconds,
        exposure_signal=exposure_signal,
        x_in=x_in,
        x_out=x_out,
        plan_args=plan_args,
        user_md=user_md,
        extra_md=dict(extra_md or {}),
    )


@dataclass(frozen=True)
class TomoSetup:
    """The validated arguments of one tomography plan call (see :func:`validate_tomo`)."""

    plan: str
    det: PlanDetector
    rotation: PlanMotor
    sample_x: PlanMotor
    shutter: Movable[Any]
    angles: list[float]
    n_darks: int
    n_flats: int
    exposure: float | None
    exposure_signal: Movable[Any] | None
    x_in: float | None
    x_out: float
    plan_args: dict[str, Any]
    user_md: dict[str, Any]
    extra_md: dict[str, Any]

    @property
    def readables(self) -> list[Readable[Any]]:
        """What every event reads: detector, angle, sample position, shutter state."""
        devices: list[Any] = [self.det, self.rotation, self.sample_x]
        if isinstance(self.shutter, Readable):
            devices.append(self.shutter)
        return devices

    def start_md(self, x_in: float) -> dict[str, Any]:
        """The start document's metadata (user ``md`` applied last)."""
        num_points = self.n_darks + self.n_flats + len(self.angles)
        md: dict[str, Any] = {
            "plan_name": self.plan,
            "plan_args": {**self.plan_args, "in_position": x_in},
            "detectors": [self.det.name],
            "detector": self.det.name,
            "motors": [self.rotation.name, self.sample_x.name],
            "rotation_axis": self.rotation.name,
            "angles": list(self.angles),
            "angle_units": "deg",
            "num_projections": len(self.angles),
            "n_darks": self.n_darks,
            "n_flats": self.n_flats,
            "exposure": self.exposure,
            "sample_x_in": x_in,
            "sample_x_out": self.x_out,
            "streams": dict(TOMO_STREAMS),
            "image_key": dict(IMAGE_KEY),
            "num_points": num_points,
            "num_intervals": max(num_points - 1, 0),
            "hints": {"dimensions": [([self.rotation.name], TOMO_STREAMS["projection"])]},
            **self.extra_md,
        }
        md.update(self.user_md)
        return md


def tomo_run(setup: TomoSetup,
             projections: Callable[[], MsgGenerator[None]]) -> MsgGenerator[str]:
    """The run of a tomography plan: configure, darks, flats, sample back in, then
    ``projections()``; the shutter is closed at the end whatever happens."""
    x_in = setup.x_in
    if x_in is None:
        x_in = float((yield from bps.rd(setup.sample_x)))

    def close_shutter() -> MsgGenerator[None]:
        yield from bps.mv(setup.shutter, "closed")

    def frames(n: int, stream: str) -> MsgGenerator[None]:
        for _ in range(n):
            yield from bps.checkpoint()
            yield from bps.trigger_and_read(setup.readables, name=TOMO_STREAMS[stream])

    def body() -> MsgGenerator[None]:
        # The detector is staged once per kind of frame: a file (and so one external
        # resource) per stream, as NXtomo writers keep darks, flats and projections apart.
        if setup.exposure_signal is not None:
            yield from bps.mv(setup.exposure_signal, setup.exposure)
        yield from publish_mask(setup.det)
        yield from bps.mv(setup.shutter, "closed")
        if setup.n_darks:
            yield from staged(frames(setup.n_darks, "dark"), [setup.det])
        if setup.n_flats:
            yield from bps.mv(setup.sample_x, setup.x_out)
            yield from bps.mv(setup.shutter, "open")
            yield from staged(frames(setup.n_flats, "flat"), [setup.det])
        yield from bps.mv(setup.sample_x, x_in)
        yield from bps.mv(setup.shutter, "open")
        yield from projections()

    uid: str = yield from recorded_run(with_cleanup(body(), close_shutter), setup.start_md(x_in))
    return uid


def _tomo_scan(setup: TomoSetup) -> MsgGenerator[str]:
    """The validated step-scan tomography plan (see :func:`tomo_scan`)."""

    def projections() -> MsgGenerator[None]:
        for angle in setup.angles:
            yield from bps.checkpoint()
            yield from bps.mv(setup.rotation, angle)
            yield from bps.trigger_and_read(setup.readables, name=TOMO_STREAMS["projection"])

    uid: str = yield from tomo_run(setup, lambda: staged(projections(), [setup.det]))
    return uid
