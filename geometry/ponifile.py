"""pyFAI ``.poni`` files: read every version pyFAI has written, write version 2.1.

Versions (pyFAI's ``PoniFile``): 1 has ``PixelSize1``/``PixelSize2`` (and optionally
``Detector: <name>``) and no version line; 2 adds ``poni_version`` and a JSON
``Detector_config``; 2.1 puts the ``orientation`` into it; 3 adds ``Parallax``. The
detector config has been written in several spellings, all read here:

* ``{"pixel1": …, "pixel2": …, "max_shape": [rows, cols], "orientation": 3}`` — a generic
  ``Detector``;
* ``{"pixel1": …, "pixel2": …, "orientation": 3}`` with ``Detector: Pilatus1M`` — a named
  detector, whose shape and gaps come from :mod:`geometry.detectors` (current pyFAI);
* ``{}`` with a named detector (older pyFAI).

A Dectris detector whose pixel size is an integer multiple of its own is binned, as
``pyFAI.load`` reads it: ``Detector: Pilatus1M`` with ``"pixel1": 0.000344`` is 521 × 490
pixels of 344 µm (binning 2 × 2). A ``"binning"`` key (which pyFAI's factory also takes)
chooses the binning explicitly; a pixel size saying another binning is refused.

A file without a shape (a generic detector without ``max_shape``, version 1 files) needs
``shape=`` from the caller. A file without ``Wavelength`` gives ``wavelength=None`` (as
pyFAI's does: the key is optional in every version, so a file cut short after its ``Rot3``
line reads the same; q units then name the file, see ``AzimuthalIntegrator.load``). A
version 3 file without ``Parallax``, the line pyFAI writes last, is refused as cut short
(pyFAI logs "claim to be version 3 but contains no information about parallax").
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from geometry.detectors import GENERIC, Detector, DetectorError, detector
from geometry.poni import PoniError, PoniGeometry

__all__ = ["read_poni", "write_poni"]

_NUMERIC_KEYS = ("distance", "poni1", "poni2", "rot1", "rot2", "rot3", "wavelength",
                 "pixelsize1", "pixelsize2")
_REQUIRED_KEYS = ("distance", "poni1", "poni2", "rot1", "rot2", "rot3")
#: Detector_config keys understood (lower case, as pyFAI matches them).
_CONFIG_KEYS = ("pixel1", "pixel2", "max_shape", "orientation", "module_size",
                "binning", "splinefile", "sensor")
_DISPLAY = {"detector_config": "Detector_config", "poni_version": "poni_version",
            "pixelsize1": "PixelSize1", "pixelsize2": "PixelSize2",
            "splinefile": "SplineFile"}


def _display(key: str) -> str:
    return _DISPLAY.get(key, key.capitalize())


class _Lines:
    """The ``Key: value`` lines of one file, keys lower case, the last one winning."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise PoniError(f"{path}: cannot read .poni file ({exc.strerror or exc})"
                            ) from None
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad_line = content.count(b"\n", 0, exc.start) + 1
            raise PoniError(f"{path}:{bad_line}: not UTF-8 text (byte "
                            f"{content[exc.start]:#04x})") from None
        self.values: dict[str, tuple[str, int]] = {}
        self.last = 0  # the number of the last line holding a key
        # universal newlines, as pyFAI reads it: \r\n (Windows) and a lone \r too
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        for lineno, line in enumerate(lines, start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if ":" not in stripped:
                raise PoniError(f"{path}:{lineno}: expected 'Key: value', got {stripped!r}")
            if lineno == len(lines):  # no line break after it: cut inside its value?
                raise PoniError(
                    f"{path}:{lineno}: the last line {stripped!r} does not end with a line "
                    "break: the file may be cut short inside this value (pyFAI ends every "
                    "line with one; add it if the value is whole)")
            key, value = (part.strip() for part in stripped.split(":", 1))
            key = key.lower()
            if key == "dist":  # pyFAI's dictionary spelling
                key = "distance"
            self.values[key] = (value, lineno)
            self.last = lineno

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def where(self, key: str) -> str:
        return f"{self.path}:{self.values[key][1]}"

    def text(self, key: str) -> str:
        return self.values[key][0]

    def number(self, key: str) -> float:
        text = self.text(key)
        try:
            value = float(text)
        except ValueError:
            raise PoniError(f"{self.where(key)}: {_display(key)} is not a number: "
                            f"{text!r}") from None
        if not math.isfinite(value):
            raise PoniError(f"{self.where(key)}: {_display(key)} must be finite, got {text!r}")
        return value


def read_poni(path: str | os.PathLike[str], shape: tuple[int, int] | None = None
              ) -> PoniGeometry:
    """Read a pyFAI ``.poni`` file (versions 1, 2, 2.1 and 3) into a :class:`PoniGeometry`.

    ``shape`` gives the detector shape when the file does not (a generic detector
    without ``max_shape``, version 1 files); it must agree with the file's when both are
    known. Named detectors (``Detector: Eiger2_4M``) take shape, pixel size and module
    gaps from :mod:`geometry.detectors`. Malformed input, a spline (distortion) file or an
    enabled parallax correction raise :class:`PoniError` naming the file and line.
    """
    p = Path(path)
    lines = _Lines(p)
    missing = [k for k in _REQUIRED_KEYS if k not in lines]
    if missing:
        raise PoniError(f"{p}: missing key(s) " + ", ".join(_display(k) for k in missing)
                        + " (a .poni file needs Distance, Poni1, Poni2, Rot1, Rot2, Rot3)")
    version = 1.0
    if "poni_version" in lines:
        version = lines.number("poni_version")
        if not 1 <= version <= 3:
            raise PoniError(f"{lines.where('poni_version')}: poni_version {version:g} is not "
                            "supported (1, 2, 2.1 or 3 expected)")
    if version >= 3 and "parallax" not in lines:  # pyFAI: "claim to be version 3 but ..."
        raise PoniError(f"{p}: missing key(s) Parallax (poni_version {version:g} files have "
                        "it: pyFAI writes it last, after Wavelength; the file may be cut short "
                        f"after line {lines.last})")
    numbers = {k: lines.number(k) for k in _NUMERIC_KEYS if k in lines}
    if "parallax" in lines and lines.text("parallax").strip().lower() not in ("false", "0",
                                                                               "none", ""):
        raise PoniError(f"{lines.where('parallax')}: Parallax: {lines.text('parallax')} — "
                        "the parallax correction is not supported")
    if "detector_config" in lines:
        det = _detector_v2(lines, shape)
    elif version >= 2:
        raise PoniError(f"{p}: missing key(s) Detector_config (poni_version {version:g} "
                        "files describe their detector there)")
    else:
        det = _detector_v1(lines, numbers, shape)
    try:
        return PoniGeometry(
            dist=numbers["distance"], poni1=numbers["poni1"], poni2=numbers["poni2"],
            rot1=numbers["rot1"], rot2=numbers["rot2"], rot3=numbers["rot3"],
            wavelength=numbers.get("wavelength"), detector=det)
    except ValueError as exc:
        raise PoniError(f"{p}: {exc}") from None


def _positive(value: Any) -> bool:
    try:
        return (not isinstance(value, bool) and isinstance(value, (int, float))
                and math.isfinite(value) and value > 0)
    except OverflowError:
        return False


def _pair(value: Any) -> tuple[int, int] | None:
    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and 0 < n < 2**31
                    for n in value)):
        return value[0], value[1]
    return None


def _build(where: str, name: str, pixel1: float | None, pixel2: float | None,
           file_shape: tuple[int, int] | None, given: tuple[int, int] | None,
           orientation: int = 3, module_size: tuple[int, int] | None = None,
           binning: Any = None) -> Detector:
    """The detector, with the caller's ``shape`` where the file has none."""
    generic = name.strip().lower() == GENERIC.lower()
    if given is not None:
        given = _given_shape(given)
    shape = file_shape
    if generic and shape is None:
        if given is None:
            raise PoniError(f"{where}: the detector's shape is not in the file (a generic "
                            "Detector without max_shape): pass shape=(rows, cols)")
        shape = given
    try:
        det = detector(name, pixel1, pixel2, shape, orientation, module_size, binning)
    except DetectorError as exc:
        raise PoniError(f"{where}: {exc}") from None
    if given is not None and det.shape != given:
        raise PoniError(f"{where}: the file's detector {det.name} is {det.shape[0]} x "
                        f"{det.shape[1]}, not the shape={given} asked for")
    return det


def _given_shape(shape: Any) -> tuple[int, int]:
    try:
        pair = _pair(list(shape))
    except TypeError:
        pair = None
    if pair is None:
        raise ValueError(f"read_poni: shape must be two positive ints (rows, cols), "
                         f"got {shape!r}")
    return pair


def _detector_v2(lines: _Lines, shape: tuple[int, int] | None) -> Detector:
    where = lines.where("detector_config")
    if "detector" not in lines:
        raise PoniError(f"{lines.path}: missing key(s) Detector (the detector's name, "
                        "e.g. Detector or Pilatus1M)")
    name = lines.text("detector")
    raw = lines.text("detector_config")
    try:
        config = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise PoniError(f"{where}: Detector_config is not valid JSON ({reason})") from None
    if not isinstance(config, dict):
        raise PoniError(f"{where}: Detector_config must be a JSON object, got {raw!r}")
    config = {str(k).lower(): v for k, v in config.items()}
    unknown = sorted(set(config) - set(_CONFIG_KEYS))
    if unknown:
        raise PoniError(f"{where}: Detector_config key(s) {', '.join(unknown)} not "
                        f"supported (known: {', '.join(_CONFIG_KEYS)})")
    if config.get("splinefile") not in (None, "", "None"):
        raise PoniError(f"{where}: the detector has a spline file "
                        f"({config['splinefile']!r}): distortion correction is not supported")
    pixels: list[float | None] = []
    for key in ("pixel1", "pixel2"):
        value = config.get(key)
        if value is not None and not _positive(value):
            raise PoniError(f"{where}: Detector_config {key} must be a positive number, "
                            f"got {value!r}")
        pixels.append(None if value is None else float(value))
    if name.strip().lower() == GENERIC.lower() and None in pixels:
        raise PoniError(f"{where}: Detector_config lacks pixel1/pixel2 (a generic Detector "
                        "needs pixel1, pixel2 and max_shape)")
    file_shape = _config_pair(config, "max_shape", where)
    module = _config_pair(config, "module_size", where)
    orientation = config.get("orientation", 3)
    if orientation == 0:  # pyFAI's "unspecified": its native orientation
        orientation = 3
    if isinstance(orientation, bool) or orientation not in (1, 2, 3, 4):
        raise PoniError(f"{where}: detector orientation {orientation!r} is not supported "
                        "(1, 2, 3 or 4)")
    return _build(lines.where("detector"), name, pixels[0], pixels[1], file_shape, shape,
                  orientation, module, config.get("binning"))


def _config_pair(config: dict[str, Any], key: str, where: str) -> tuple[int, int] | None:
    """``config[key]`` as (rows, cols), None when absent."""
    if config.get(key) is None:
        return None
    pair = _pair(config[key])
    if pair is None:
        raise PoniError(f"{where}: Detector_config {key} must be [rows, cols], got "
                        f"{config[key]!r}")
    return pair


def _detector_v1(lines: _Lines, numbers: dict[str, float], shape: tuple[int, int] | None
                 ) -> Detector:
    if "splinefile" in lines and lines.text("splinefile").strip() not in ("", "None"):
        raise PoniError(f"{lines.where('splinefile')}: the detector has a spline file: "
                        "distortion correction is not supported")
    name = lines.text("detector") if "detector" in lines else GENERIC
    where = lines.where("detector") if "detector" in lines else str(lines.path)
    pixels = [numbers.get("pixelsize1"), numbers.get("pixelsize2")]
    for key, value in zip(("pixelsize1", "pixelsize2"), pixels, strict=True):
        if value is not None and value <= 0:
            raise PoniError(f"{lines.where(key)}: {_display(key)} must be positive, got "
                            f"{value!r}")
    if name.strip().lower() == GENERIC.lower() and None in pixels:
        raise PoniError(f"{lines.path}: missing key(s) PixelSize1/PixelSize2 (a version 1 "
                        "file without a detector name needs them)")
    return _build(where, name, pixels[0], pixels[1], None, shape)


def write_poni(geometry: PoniGeometry, path: str | os.PathLike[str]) -> None:
    """Write ``geometry`` as a pyFAI ``.poni`` file (version 2.1).

    A named detector is written by name (``Detector: Pilatus1M``) as pyFAI does; numbers
    are written with ``repr`` so reading the file back gives the same floats; pyFAI's
    ``pyFAI.load`` reads the result."""
    g = geometry
    lines = [
        "# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis",
        "# Written by smeflow (geometry.ponifile)",
        "poni_version: 2.1",
        f"Detector: {g.detector.name}",
        f"Detector_config: {json.dumps(g.detector.config())}",
        f"Distance: {g.dist!r}",
        f"Poni1: {g.poni1!r}",
        f"Poni2: {g.poni2!r}",
        f"Rot1: {g.rot1!r}",
        f"Rot2: {g.rot2!r}",
        f"Rot3: {g.rot3!r}",
    ]
    if g.wavelength is not None:
        lines.append(f"Wavelength: {g.wavelength!r}")
    lines.append("")
    Path(path).write_text("\n".join(lines))
