"""Named area detectors: shapes, pixel sizes and module gaps, as pyFAI names them.

A pyFAI ``.poni`` file usually names its detector (``Detector: Pilatus1M``) and leaves
the shape out; :func:`detector` turns such a name into a :class:`Detector` with the shape,
pixel size and gap mask from the manufacturers' published specifications:

* Dectris Pilatus (172 µm; modules of 195 × 487 pixels, gaps of 17 rows and 7 columns),
  Pilatus4 (150 µm; 255 × 513, gaps 20 × 7), Eiger (75 µm; 514 × 1030, gaps 37 × 10) and
  Eiger2 (75 µm; 512 × 1028, gaps 38 × 12), with the CdTe variants that also lose the
  columns in the middle of each module (3 for Pilatus, 2 for Eiger2, 1 for Pilatus4);
* Perkin-Elmer flat panels (4096² of 100 µm, binned 2 × 2 by default) and Rayonix CCDs,
  whose pixel size selects the binning and so the shape (the round MAR133 and SX165
  masked outside their disc).

A Dectris detector binned in software is described as pyFAI describes it: a pixel size
``k`` times the native one (or pyFAI's ``binning``) makes ``max_shape // k`` pixels, the gap
mask drawn at full resolution and binned (a binned pixel is masked when any pixel it sums
is); a pixel size that is no such multiple is refused rather than put on the wrong grid.

Names are matched like pyFAI matches them: the class name (``Eiger2_4M``) or an alias
(``"Eiger2 4M"``), case-insensitive, spaces optional. Dectris detectors also carry
pyFAI's default dummy value (−2, ±1.5: pixels flagged by the detector), which the
integrator applies unless the caller passes ``dummy``.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["GENERIC", "Detector", "DetectorError", "detector", "detector_names"]

#: The name of a detector described only by its pixel size and shape.
GENERIC = "Detector"


class DetectorError(ValueError):
    """An unknown detector name or a configuration that does not fit the detector."""


@dataclass(frozen=True)
class Detector:
    """A flat pixel detector.

    Parameters
    ----------
    name
        pyFAI's class name (``"Pilatus1M"``) or ``"Detector"`` for a generic one.
    pixel1, pixel2
        Pixel size along rows (dim 0) and columns (dim 1), m.
    shape
        ``(rows, cols)``.
    module_size, module_gap
        Module layout ``(rows, cols)`` and the gaps between modules; the gaps are masked.
    centre_gap
        Columns lost in the middle of every module (CdTe sensors): ``(first, width)``
        relative to the module's middle column.
    circular
        The sensitive area is the disc inscribed in the frame (round CCDs: MAR133,
        SX165); pixels whose centre lies outside it are masked.
    dummy, delta_dummy
        Value the detector writes into pixels it flags, and the tolerance.
    orientation
        pyFAI's orientation of the pixel grid: 3 (pyFAI's native one), 1 (both axes
        flipped), 2 (rows flipped), 4 (columns flipped).
    binning, max_shape
        ``(rows, cols)`` pixels summed into one and the unbinned shape (pyFAI's
        ``binning`` and ``max_shape``): ``shape`` is ``max_shape // binning`` and the gap
        mask is drawn at ``max_shape`` then binned (a binned pixel is masked when any of
        its pixels is). ``max_shape`` None: ``shape`` (unbinned).
    """

    name: str
    pixel1: float
    pixel2: float
    shape: tuple[int, int]
    module_size: tuple[int, int] | None = None
    module_gap: tuple[int, int] | None = None
    centre_gap: tuple[int, int] | None = None
    circular: bool = False
    dummy: float | None = None
    delta_dummy: float | None = None
    orientation: int = 3
    binning: tuple[int, int] = (1, 1)
    max_shape: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for name in ("pixel1", "pixel2"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float, np.floating))
                    or not _finite(value) or value <= 0):
                raise DetectorError(f"detector {self.name}: {name} must be a positive "
                                    f"number, got {value!r}")
            object.__setattr__(self, name, float(value))
        shape = tuple(self.shape)
        if len(shape) != 2 or not all(isinstance(n, (int, np.integer))
                                      and not isinstance(n, bool) and 0 < n < 2**31
                                      for n in shape):
            raise DetectorError(f"detector {self.name}: shape must be two positive ints "
                                f"(rows, cols), got {self.shape!r}")
        object.__setattr__(self, "shape", (int(shape[0]), int(shape[1])))
        if self.orientation not in (1, 2, 3, 4):
            raise DetectorError(f"detector {self.name}: orientation {self.orientation!r} is "
                                "not supported (1, 2, 3 or 4)")
        binning = _int_pair(self.binning)
        if binning is None:
            raise DetectorError(f"detector {self.name}: binning must be two positive ints "
                                f"(rows, cols), got {self.binning!r}")
        object.__setattr__(self, "binning", binning)
        full = self.shape if self.max_shape is None else _int_pair(self.max_shape)
        if full is None or (full[0] // binning[0], full[1] // binning[1]) != self.shape:
            raise DetectorError(f"detector {self.name}: shape {self.shape} is not max_shape "
                                f"{self.max_shape} // binning {binning}")
        object.__setattr__(self, "max_shape", full)

    @property
    def is_generic(self) -> bool:
        """True for a detector known only by pixel size and shape."""
        return self.name == GENERIC

    @cached_property
    def mask(self) -> npt.NDArray[np.bool_]:
        """True on the pixels that do not exist (module gaps), read-only, ``shape``."""
        assert self.max_shape is not None
        mask: npt.NDArray[np.bool_] = np.zeros(self.max_shape, dtype=bool)
        if self.module_size is not None and self.module_gap is not None:
            for axis in (0, 1):
                size, gap = self.module_size[axis], self.module_gap[axis]
                for start in range(size, mask.shape[axis], size + gap):
                    index = [slice(None), slice(None)]
                    index[axis] = slice(start, start + gap)
                    mask[tuple(index)] = True
            if self.centre_gap is not None:
                first, width = self.centre_gap
                size, gap = self.module_size[1], self.module_gap[1]
                for middle in range(size // 2, mask.shape[1], size + gap):
                    mask[:, max(0, middle + first):middle + first + width] = True
        if self.binning != (1, 1):
            (b0, b1), (n0, n1) = self.binning, self.shape
            mask = np.asarray(mask[:n0 * b0, :n1 * b1].reshape(n0, b0, n1, b1)
                              .any(axis=(1, 3)))
        if self.circular:
            c0, c1 = self.shape[0] // 2, self.shape[1] // 2
            rows = np.arange(self.shape[0])[:, None] + 0.5 - c0
            cols = np.arange(self.shape[1])[None, :] + 0.5 - c1
            mask |= rows * rows + cols * cols > c0 * c0
        mask.flags.writeable = False
        return mask

    @cached_property
    def has_gaps(self) -> bool:
        """Whether :attr:`mask` masks any pixel."""
        return bool(self.mask.any())

    def config(self) -> dict[str, object]:
        """The ``Detector_config`` pyFAI writes for this detector (version 2.1)."""
        config: dict[str, object] = {"pixel1": self.pixel1, "pixel2": self.pixel2,
                                     "orientation": self.orientation}
        full = self.max_shape or self.shape
        if self.is_generic or full != _table_full_shape(self):
            config["max_shape"] = [full[0], full[1]]
        return config


def _int_pair(value: Any) -> tuple[int, int] | None:
    """``value`` as two positive ints, None when it is not such a pair."""
    try:
        items = tuple(value)
    except TypeError:
        return None
    if len(items) != 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                  and 0 < n < 2**31 for n in items):
        return None
    return int(items[0]), int(items[1])


def _finite(value: float | np.floating[Any]) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


# -- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Family:
    """Detectors built from one kind of module (or one binnable sensor)."""

    pixel: float
    module: tuple[int, int] | None = None
    gap: tuple[int, int] | None = None
    centre_gap: tuple[int, int] | None = None
    dummy: tuple[float, float] | None = None
    #: binning → pixel size, for detectors whose pixel size selects the binning
    binned: tuple[tuple[int, float], ...] = ()
    circular: bool = False


_PILATUS = _Family(172e-6, (195, 487), (17, 7), dummy=(-2.0, 1.5))
_PILATUS_CDTE = _Family(172e-6, (195, 487), (17, 7), (-1, 3), (-2.0, 1.5))
_PILATUS4 = _Family(150e-6, (255, 513), (20, 7), dummy=(-2.0, 1.5))
_PILATUS4_CDTE = _Family(150e-6, (255, 513), (20, 7), (0, 1), (-2.0, 1.5))
_EIGER = _Family(75e-6, (514, 1030), (37, 10), dummy=(-2.0, 1.5))
_EIGER2 = _Family(75e-6, (512, 1028), (38, 12), dummy=(-2.0, 1.5))
_EIGER2_CDTE = _Family(75e-6, (512, 1028), (38, 12), (-1, 2), (-2.0, 1.5))


def _binned(*pairs: tuple[int, float]) -> tuple[tuple[int, float], ...]:
    return tuple(pairs)


_MX = _binned((1, 36.621e-6), (2, 73.242e-6), (3, 109.971e-6), (4, 146.484e-6),
              (8, 292.969e-6))
_HS = _binned((1, 39.0625e-6), (2, 78.125e-6), (3, 117.1875e-6), (4, 156.25e-6),
              (5, 195.3125e-6), (6, 234.375e-6), (8, 312.5e-6), (10, 390.625e-6))
_LX = _binned((1, 44.2708e-6), (2, 88.5417e-6), (3, 132.8125e-6), (4, 177.0833e-6),
              (5, 221.3542e-6), (6, 265.625e-6), (8, 354.1667e-6), (10, 442.7083e-6))

#: name → (family, modules (rows, cols) or full unbinned shape, default binning, aliases)
_Entry = tuple[_Family, tuple[int, int], int, tuple[str, ...]]


def _modules(family: _Family, rows: int, cols: int) -> tuple[int, int]:
    assert family.module is not None and family.gap is not None
    return (rows * family.module[0] + (rows - 1) * family.gap[0],
            cols * family.module[1] + (cols - 1) * family.gap[1])


def _dectris(family: _Family, prefix: str, alias: str, models: dict[str, tuple[int, int]],
             cdte: str = "") -> dict[str, _Entry]:
    out: dict[str, _Entry] = {}
    for size, grid in models.items():
        aliases: tuple[str, ...] = (f"{alias} {size}{cdte}",)
        if cdte and prefix == "PilatusCdTe":
            aliases = (f"Pilatus CdTe {size}", f"Pilatus {size} CdTe",
                       f"Pilatus{size} CdTe", f"Pilatus{size}CdTe")
        out[f"{prefix}{size}"] = (family, _modules(family, *grid), 1, aliases)
    return out


_PILATUS_MODELS = {"100k": (1, 1), "200k": (2, 1), "300k": (3, 1), "300kw": (1, 3),
                   "900k": (3, 3), "1M": (5, 2), "2M": (8, 3), "6M": (12, 5)}
_PILATUS4_MODELS = {"260k": (2, 1), "260kw": (1, 2), "1M": (4, 2), "2M": (6, 3),
                    "4M": (8, 4)}
_EIGER_MODELS = {"500k": (1, 1), "1M": (2, 1), "4M": (4, 2), "9M": (6, 3), "16M": (8, 4)}
_EIGER2_MODELS = {"500k": (1, 1), "1M": (2, 1), "1MW": (1, 2), "2MW": (1, 4),
                  "4M": (4, 2), "9M": (6, 3), "16M": (8, 4)}


def _eiger2(family: _Family, prefix: str, alias: str) -> dict[str, _Entry]:
    out: dict[str, _Entry] = {}
    for size, grid in _EIGER2_MODELS.items():
        label = size.replace("MW", "M-W")
        out[f"{prefix}_{size}"] = (family, _modules(family, *grid), 1, (f"{alias} {label}",))
    return out


def _pilatus4(family: _Family, prefix: str, suffix: str) -> dict[str, _Entry]:
    return {f"{prefix}_{size}": (family, _modules(family, *grid), 1,
                                 (f"Pilatus4 {size}{suffix}",))
            for size, grid in _PILATUS4_MODELS.items()}


def _rayonix(binning: tuple[tuple[int, float], ...], shape: tuple[int, int], default: int,
             *aliases: str, circular: bool = False) -> _Entry:
    return (_Family(dict(binning)[1], binned=binning, circular=circular), shape, default,
            aliases)


_TABLE: dict[str, _Entry] = {
    **_dectris(_PILATUS, "Pilatus", "Pilatus", _PILATUS_MODELS),
    **_dectris(_PILATUS_CDTE, "PilatusCdTe", "Pilatus",
               {k: _PILATUS_MODELS[k] for k in ("300k", "300kw", "1M", "2M")}, " CdTe"),
    "PilatusCdTe900kw": (_PILATUS_CDTE, _modules(_PILATUS_CDTE, 1, 9), 1,
                         ("Pilatus CdTe 900kw", "Pilatus 900kw CdTe", "Pilatus900kw CdTe",
                          "Pilatus900kwCdTe")),
    **_pilatus4(_PILATUS4, "Pilatus4", ""),
    **_pilatus4(_PILATUS4_CDTE, "Pilatus4_CdTe", " CdTe"),
    **_dectris(_EIGER, "Eiger", "Eiger", _EIGER_MODELS),
    "Eiger2_250k": (_EIGER2, (512, 512), 1, ("Eiger2 250k",)),
    **_eiger2(_EIGER2, "Eiger2", "Eiger2"),
    **_eiger2(_EIGER2_CDTE, "Eiger2CdTe", "Eiger2 CdTe"),
    "Perkin": (_Family(100e-6, binned=((1, 100e-6), (2, 200e-6))), (4096, 4096), 2,
               ("Perkin detector", "Perkin Elmer")),
    "Rayonix133": _rayonix(_binned((1, 32e-6), (2, 64e-6), (4, 128e-6), (8, 256e-6)),
                           (4096, 4096), 2, "MAR 133", "MAR133", circular=True),
    "RayonixSx165": _rayonix(_binned((1, 39.5e-6), (2, 79e-6), (3, 118.616e-6),
                                     (4, 158e-6), (8, 316e-6)),
                             (4096, 4096), 1, "Rayonix SX165", "MAR 165", "MAR165",
                             circular=True),
    "RayonixSx200": _rayonix(_binned((1, 48e-6), (2, 96e-6), (3, 144e-6), (4, 192e-6),
                                     (8, 384e-6)), (4096, 4096), 1, "Rayonix SX200"),
    "RayonixLx170": _rayonix(_LX, (1920, 3840), 1, "Rayonix LX170", "Rayonix LX170-HS",
                             "Rayonix LX170 HS", "RayonixLX170HS"),
    "RayonixMx170": _rayonix(_LX, (3840, 3840), 1, "Rayonix MX170", "Rayonix MX170-HS",
                             "RayonixMX170HS", "Rayonix MX170 HS"),
    "RayonixLx255": _rayonix(_LX, (1920, 5760), 1, "Rayonix LX255", "Rayonix LX255-HS",
                             "Rayonix LX 255HS", "RayonixLX225HS"),
    "RayonixMx225": _rayonix(_MX, (6144, 6144), 2, "Rayonix MX225", "MAR 225", "MAR225"),
    "RayonixMx225hs": _rayonix(_HS, (5760, 5760), 2, "Rayonix MX225HS",
                               "Rayonix MX225 HS"),
    "RayonixMx300": _rayonix(_MX, (8192, 8192), 2, "Rayonix MX300", "MAR 300", "MAR300"),
    "RayonixMx300hs": _rayonix(_HS, (7680, 7680), 2, "Rayonix MX300HS",
                               "Rayonix MX300 HS"),
    "RayonixMx325": _rayonix(_binned((1, 39.673e-6), (2, 79.346e-6), (3, 119.135e-6),
                                     (4, 158.691e-6), (8, 317.383e-6)),
                             (8192, 8192), 2, "Rayonix MX325"),
    "RayonixMx340hs": _rayonix(_LX, (7680, 7680), 2, "Rayonix MX340HS"),
    "RayonixMx425hs": _rayonix(_LX, (9600, 9600), 1, "Rayonix MX425HS",
                               "Rayonix MX425 HS"),
    "RayonixSx30hs": _rayonix(_binned((1, 15.625e-6), (2, 31.25e-6), (3, 46.875e-6),
                                      (4, 62.5e-6), (5, 78.125e-6), (6, 93.75e-6),
                                      (8, 125e-6), (10, 156.25e-6)),
                              (1920, 1920), 1, "Rayonix SX30HS", "Rayonix SX30 HS"),
    "RayonixSx85hs": _rayonix(_LX, (1920, 1920), 1, "Rayonix SX85HS", "Rayonix SX85 HS"),
}


def _key(name: str) -> str:
    return name.lower().replace(" ", "").replace("_", "")


def _lookup() -> dict[str, str]:
    keys: dict[str, str] = {}
    for name, (*_, aliases) in _TABLE.items():
        for spelling in (name, *aliases):
            keys.setdefault(_key(spelling), name)
    return keys


_KEYS = _lookup()


def detector_names() -> list[str]:
    """The known detector names (pyFAI's class names), sorted."""
    return sorted(_TABLE)


def _table_full_shape(det: Detector) -> tuple[int, int] | None:
    """The unbinned shape of the table's detector called like ``det``."""
    entry = _TABLE.get(det.name)
    return None if entry is None else entry[1]


def _binning_arg(name: str, value: Any) -> tuple[int, int] | None:
    """pyFAI's ``binning`` (an int or ``[rows, cols]``) as a pair, None when absent."""
    if value is None:
        return None
    pair = _int_pair((value, value) if isinstance(value, (int, np.integer))
                     and not isinstance(value, bool) else value)
    if pair is None:
        raise DetectorError(f"detector {name}: binning must be a positive int or two "
                            f"(rows, cols), got {value!r}")
    return pair


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6)


def _axis_binning(name: str, family: _Family, default: int, axis: int,
                  pixel: float | None, binning: int | None) -> tuple[float, int]:
    """Pixel size and binning along one axis, as pyFAI derives them.

    A fixed-pixel (Dectris) detector's pixel size is its native one times the binning; a
    binnable sensor (Perkin-Elmer, Rayonix) has one listed size per binning. An explicit
    ``binning`` decides the size; a pixel size that says another binning is refused."""
    sizes = dict(family.binned) if family.binned else None
    if binning is not None:
        if sizes is None:
            size = family.pixel * binning
        elif binning in sizes:
            size = sizes[binning]
        else:
            raise DetectorError(f"detector {name}: binning {binning} is none of its "
                                f"binnings ({', '.join(map(str, sizes))})")
        unbinned = family.pixel if sizes is None else sizes[1]
        if pixel is not None and not (_close(pixel, size) or _close(pixel, unbinned)):
            raise DetectorError(f"detector {name}: pixel{axis} {pixel!r} m contradicts "
                                f"binning {binning} (pixel size {size:g} m)")
        return size, binning
    if sizes is not None:
        if pixel is None:
            return sizes[default], default
        for b, size in family.binned:
            if _close(size, pixel):
                return pixel, b
        raise DetectorError(f"detector {name}: pixel size {pixel!r} m is none of its binned "
                            f"pixel sizes ({', '.join(f'{v:g}' for v in sizes.values())} m)")
    if pixel is None:
        return family.pixel, 1
    k = round(pixel / family.pixel)
    if k < 1 or not _close(pixel, k * family.pixel):
        raise DetectorError(f"detector {name}: pixel{axis} {pixel!r} m is neither its pixel "
                            f"size {family.pixel:g} m nor an integer multiple of it (a "
                            "binning)")
    return pixel, k


def detector(name: str, pixel1: float | None = None, pixel2: float | None = None,
             shape: tuple[int, int] | None = None, orientation: int = 3,
             module_size: tuple[int, int] | None = None,
             binning: int | tuple[int, int] | None = None) -> Detector:
    """The detector called ``name`` (pyFAI's class name or an alias).

    ``pixel1``/``pixel2`` override the published pixel size: for Dectris detectors an
    integer multiple ``k`` of it is a binning ``k`` (pyFAI's reading of a binned
    detector's ``.poni``), any other size is refused; for Perkin-Elmer and Rayonix
    detectors each listed size is a binning. ``binning`` (an int or ``(rows, cols)``,
    pyFAI's ``Detector_config`` key) chooses the binning explicitly. ``shape`` is
    pyFAI's ``max_shape``, the unbinned shape: required for the generic ``"Detector"``,
    an override for a named one; the detector's shape is ``max_shape // binning``.
    ``module_size`` overrides a Dectris detector's module size (pyFAI's config key).
    Unknown names raise :class:`DetectorError` with the closest known names."""
    if not isinstance(name, str):
        raise DetectorError(f"detector name must be a string, got {name!r}")
    bins = _binning_arg(name, binning)
    if _key(name) == _key(GENERIC):
        if pixel1 is None or pixel2 is None or shape is None:
            raise DetectorError("a generic Detector needs pixel1, pixel2 and the shape "
                                "(max_shape)")
        if bins is not None and bins != (1, 1):  # pyFAI: pixels grow, shape shrinks
            full = _int_pair(shape)
            if full is None:
                raise DetectorError(f"detector {GENERIC}: shape must be two positive ints "
                                    f"(rows, cols), got {shape!r}")
            return Detector(GENERIC, pixel1 * bins[0], pixel2 * bins[1],
                            (full[0] // bins[0], full[1] // bins[1]), orientation=orientation)
        return Detector(GENERIC, pixel1, pixel2, shape, orientation=orientation)
    canonical = _KEYS.get(_key(name))
    if canonical is None:
        close = difflib.get_close_matches(name, detector_names(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else \
            f"; known detectors: {', '.join(detector_names())}"
        raise DetectorError(f"unknown detector {name!r}{hint}")
    family, table_shape, default, _ = _TABLE[canonical]
    p1, b1 = _axis_binning(canonical, family, default, 1, pixel1,
                           None if bins is None else bins[0])
    p2, b2 = _axis_binning(canonical, family, default, 2, pixel2,
                           None if bins is None else bins[1])
    full = table_shape if shape is None else _int_pair(shape)
    if full is None:
        raise DetectorError(f"detector {canonical}: shape must be two positive ints "
                            f"(rows, cols), got {shape!r}")
    dummy = family.dummy or (None, None)
    return Detector(canonical, p1, p2, (full[0] // b1, full[1] // b2),
                    module_size=module_size or family.module, module_gap=family.gap,
                    centre_gap=family.centre_gap, circular=family.circular,
                    dummy=dummy[0], delta_dummy=dummy[1],
                    orientation=orientation, binning=(b1, b2), max_shape=full)
