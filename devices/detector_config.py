"""Configuration signals of the firmware detector, checked when they are put.

Each configuration value is checked against the firmware's own limits
(:class:`fpga.designs.reference.ChainConfig`, the 20-bit counters, the backends) when it
is put or set, so a bad value fails at once with a :class:`DetectorConfigError` naming
the signal (``det.exposure``), what it must be and the value given, never later inside a
run; ``refuse_while_staged`` says which changes a staged detector refuses, and why.
``ReadOnlySignal`` holds values the device derives (``frame_shape``);
``CountsSignal`` declares the histogram's integer dtype, which ophyd cannot infer.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
from ophyd import Signal
from ophyd.status import Status
from ophyd.utils import ReadOnlyError

from fpga.designs.params import PIXEL_MAX

from .checked_signal import CheckedSignal, finite_real
from .checked_signal import label as _label
from .firmware import BACKENDS


class DetectorConfigError(ValueError):
    """A configuration value the detector or its firmware cannot use (refused on put).

    The message names the signal (``det.exposure``), what it must be and the value given.
    """


Check = Callable[["ConfigSignal", Any], Any]
"""A configuration check: the signal and the value put; returns the value to store
(normalised, e.g. ``1`` → ``True``) or raises :class:`DetectorConfigError`."""


class ConfigSignal(CheckedSignal):
    """A configuration signal of the detector, checked when it is put or set (see
    :class:`devices.checked_signal.CheckedSignal`): ``set`` (what ``bps.mv`` calls) puts
    synchronously, so a bad value raises :class:`DetectorConfigError` at the ``set`` call
    instead of failing a status later; ``check_value`` lets plans ask in advance
    (``plans.validate``); the detector's ``guard_config_put`` refuses changes its staging
    cannot take."""


class ReadOnlySignal(Signal):  # type: ignore[misc]
    """A configuration value the device derives itself: users cannot put or set it.

    The device updates it with ``put(value, force=True)``; ``explain`` says in the error
    what the value follows.
    """

    def __init__(self, *, explain: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._explain = explain

    def refusal(self, value: Any) -> ReadOnlyError:
        """The error for a user's attempt to write ``value``."""
        return ReadOnlyError(f"{_label(self)}: read-only ({self._explain}); it is "
                             f"{self.get()!r}, refused to make it {value!r}")

    def check_value(self, value: Any) -> None:
        """Always refuses: the value is not the user's to choose."""
        raise self.refusal(value)

    def put(self, value: Any, *, force: bool = False, **kwargs: Any) -> None:
        """Refused (``ReadOnlyError``) unless ``force=True`` (the device itself)."""
        if not force:
            raise self.refusal(value)
        super().put(value, force=True, **kwargs)

    def set(self, value: Any, **kwargs: Any) -> Status:
        """Refused (``ReadOnlyError``): see :meth:`put`."""
        raise self.refusal(value)


COUNTS_DTYPE = np.dtype(np.int64)
"""dtype of the histogram counts (as :class:`dataflow.packets.ReadoutFrame` holds them)."""


class CountsSignal(Signal):  # type: ignore[misc]
    """A soft signal holding an array of integer counts (the firmware's histogram).

    ``describe()`` declares ``dtype_numpy`` ``<i8`` (the readout's histogram dtype), which
    ophyd cannot infer from a list of ints.
    """

    def describe(self) -> dict[str, Any]:
        """ophyd's description with the integer ``dtype_numpy``."""
        desc: dict[str, Any] = dict(super().describe())
        desc[self.name] = {**desc[self.name], "dtype_numpy": COUNTS_DTYPE.str}
        return desc


def _refuse(signal: ConfigSignal, allowed: str, value: Any) -> DetectorConfigError:
    return DetectorConfigError(f"{_label(signal)}: must be {allowed}, got {value!r}")


def _int(value: Any) -> int | None:
    """``value`` as an int (numpy ints too), or ``None`` for bools, floats and others."""
    if isinstance(value, bool | np.bool_):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_exposure(signal: ConfigSignal, value: Any) -> float:
    """Exposure time: a finite number of seconds > 0."""
    seconds = finite_real(value)
    if seconds is None or seconds <= 0:
        raise _refuse(signal, "a finite number > 0 s", value)
    return seconds


THRESHOLD_RANGES: dict[str, tuple[float, float]] = {"Si": (2.7, 18.0), "CdTe": (8.0, 40.0)}
"""The comparator's range (keV) by sensor material: a PILATUS3 X's adjustable threshold
range with its silicon sensor, 2.7 – 18 keV, and with CdTe, 8 – 40 keV (Dectris's
PILATUS3 X and PILATUS3 X CdTe specifications). The detector refuses a threshold outside
it: set at 0 or 1e9 keV the model counted every photon or none, without an error. A
detector starts at 6 keV, or at its range's nearer end when 6 keV is outside it (8 keV with
CdTe)."""


def check_energy_threshold(signal: ConfigSignal, value: Any) -> float:
    """The sensor's counting threshold: a finite number of keV within the range of the
    detector's sensor material (:data:`THRESHOLD_RANGES`)."""
    layout = getattr(signal.parent, "layout", None)
    material = layout.sensor.material if layout is not None else "Si"
    if material not in THRESHOLD_RANGES:
        raise _refuse(signal, "set in a threshold range known for its sensor: none is for "
                      f"{material!r} (known: {', '.join(sorted(THRESHOLD_RANGES))})", value)
    low, high = THRESHOLD_RANGES[material]
    kev = finite_real(value)
    if kev is None or not low <= kev <= high:
        raise _refuse(signal, f"a finite number in {low:g} … {high:g} keV (the threshold "
                      f"range of a PILATUS3 X with a {material} sensor)", value)
    return kev


def check_threshold(signal: ConfigSignal, value: Any) -> int:
    """Zero-suppression level: an int that fits the firmware's 20-bit register."""
    counts = _int(value)
    if counts is None or not 0 <= counts <= PIXEL_MAX:
        raise _refuse(signal, f"an int in 0 … {PIXEL_MAX} counts (the firmware's 20-bit "
                      "threshold register)", value)
    return counts


def _roi_allowed(shape: tuple[int, int]) -> str:
    return (f"[x0, y0, x1, y1], ints with 0 ≤ x0 < x1 ≤ 65535 and 0 ≤ y0 < y1 ≤ 65535 "
            f"(x1, y1 exclusive, clipped to the frame), starting inside the "
            f"{shape[0]}×{shape[1]} frame: x0 < {shape[1]}, y0 < {shape[0]}")


def roi_fits(roi: list[int], shape: tuple[int, int]) -> bool:
    """Whether ``roi`` (``[x0, y0, x1, y1]``) starts inside a frame of ``shape``."""
    return roi[0] < shape[1] and roi[1] < shape[0]


def check_roi(signal: ConfigSignal, value: Any) -> list[int]:
    """ROI of the firmware's sum, in output pixels of the current frame shape.

    The registers are 16 bits (``ChainConfig``); the firmware sums ``x0 ≤ x < x1``,
    ``y0 ≤ y < y1`` clipped to the frame, so ``x1``/``y1`` may lie past the edge (the
    reset value ``[0, 0, 65535, 65535]`` is the whole frame) but the ROI must start inside
    it and not be empty.
    """
    det = signal.parent
    shape = det.out_shape()
    allowed = _roi_allowed(shape)
    if isinstance(value, str | bytes) or not hasattr(value, "__len__") or len(value) != 4:
        raise _refuse(signal, allowed, value)
    coords = [_int(v) for v in value]
    ints = [c for c in coords if c is not None and 0 <= c <= 0xFFFF]
    if len(ints) != 4:
        raise _refuse(signal, allowed, value)
    x0, y0, x1, y1 = ints
    if not (x0 < x1 and y0 < y1 and roi_fits(ints, shape)):
        raise _refuse(signal, allowed, value)
    return ints


def check_binning(signal: ConfigSignal, value: Any) -> bool:
    """2×2 binning: ``True``/``False`` (or ``1``/``0``); the ROI must start inside the
    frame it gives."""
    if isinstance(value, bool | np.bool_):
        on = bool(value)
    elif _int(value) in (0, 1):
        on = bool(_int(value))
    else:
        raise _refuse(signal, "True or False (or 1 or 0)", value)
    det = signal.parent
    try:
        shape = det.shape_for(on)
    except ValueError as exc:
        raise DetectorConfigError(f"{_label(signal)}: {exc}") from None
    roi = list(det.roi.get())
    if not roi_fits(roi, shape):
        raise DetectorConfigError(
            f"{_label(signal)}: {on!r} would make {shape[0]}×{shape[1]} frames, which "
            f"{_label(det.roi)} {roi!r} starts outside of (x0 must be < {shape[1]}, "
            f"y0 < {shape[0]}); set {_label(det.roi)} first")
    return on


def check_backend(signal: ConfigSignal, value: Any) -> str:
    """Firmware backend: one of :data:`devices.firmware.BACKENDS`."""
    if not isinstance(value, str) or value not in BACKENDS:
        raise _refuse(signal, "one of " + ", ".join(repr(b) for b in BACKENDS), value)
    return value


LIVE_CONFIG = ("roi", "threshold")
"""Firmware registers a staged detector's ``configure()`` may change (loaded between
exposures; nothing in the files depends on them)."""


def refuse_while_staged(det: Any, signal: Signal, value: Any, configuring: bool) -> None:
    """Raise :class:`DetectorConfigError` if putting ``value`` on ``signal`` of the staged
    detector ``det`` would make its recorded configuration, firmware and files disagree.

    The current value always passes; nothing changes while a fly acquisition is armed or
    running; ``exposure`` passes (each event stream's file records the exposure of its
    first frame, and ``FrameFiles.announce`` refuses a frame of another exposure into
    it; a fly's file opens at ``prepare``); ``roi`` and
    ``threshold`` pass inside the detector's ``configure`` (``configuring``), which loads
    them into the firmware; the rest is refused with what to do instead."""
    if value == signal.get():
        return
    name = str(signal.attr_name)
    label = _label(signal)
    if det.fly is not None and not det.fly.done.done:
        raise DetectorConfigError(
            f"{label}: cannot change while a fly acquisition of {det.name} is armed or "
            "running (it was prepared with the configuration of then); complete() it or "
            "unstage first")
    if name == "exposure" or (name in LIVE_CONFIG and configuring):
        return
    later = "set it before staging (or unstage first)"
    why = {
        "energy_threshold": "the sensor's comparator was loaded at stage() and the frame "
                            f"files record one threshold_energy; {later}",
        "binning": "it changes the frames' shape and the staging's frame files hold frames "
                   f"of one shape; {later}",
        "backend": "it replaces the firmware board (its readout counters and frame numbers "
                   f"restart); {later}",
    }.get(name, "the firmware's registers were loaded at stage() and bluesky keeps the "
                "configuration its descriptor read first; use "
                f"bps.configure({det.name}, {{{name!r}: ...}}), which loads them before the "
                "next exposure and records them in a new descriptor, or " + later)
    raise DetectorConfigError(f"{label}: cannot change while {det.name} is staged: {why}")
