"""The NXmx geometry of a frame file: where the detector sat and the beam's wavelength.

A run that knows its geometry — a diffraction run, whose reduction integrates its frames
with pyFAI's PONI parameters (:class:`geometry.PoniGeometry`: ``dist``, ``poni1``/``poni2``,
``rot1``–``rot3``, the pixel sizes, the wavelength) — has that same geometry written into
each of its frame files in the NeXus application definition NXmx, the one DIALS/dxtbx,
XDS's NeXus plugins and Dectris's own files follow (``write_nxmx``;
``dataflow.hdf5_nexus`` writes the rest of the tree):

* ``/entry/definition`` = ``"NXmx"``;
* ``/entry/instrument/beam`` (``NXbeam``): ``incident_wavelength`` (m) and, when the
  beam's size at the sample is known (:class:`IncidentBeamSize`: the powder model's),
  ``incident_beam_size`` ([x, y], m) and its ``profile``;
* ``/entry/instrument/detector``: ``distance`` from the sample to where the direct beam
  meets the detector (m), ``beam_center_x``/``beam_center_y`` there in pixels of the data
  array (x along its columns, the fast axis; y along its rows, the slow axis; from the
  first pixel's outer corner, so the first pixel's centre is at 0.5), ``depends_on`` and
  the chain that places the detector: ``transformations/translation`` (``dist`` along the
  beam, then pyFAI's rotations ``rot1``, ``rot2``, ``rot3`` when not zero), and one
  ``NXdetector_module`` ``module`` spanning the frame (``data_origin``, ``data_size``,
  ``module_offset`` to the first pixel's corner, ``fast_pixel_direction`` and
  ``slow_pixel_direction`` one pixel long each);
* ``/entry/sample`` (``NXsample``): ``depends_on = "."`` — the sample at the origin, where
  the reduction's geometry has it — or, in a file that records the sample's stages frame
  by frame (``dataflow.hdf5_angles.AngleFrameWriter``: the detector's, step scan or fly),
  the chain of its axes ``transformations/<stage>`` (``SampleAxis``,
  ``write_sample_axes``): one value per frame each, the first axis nearest the sample (the
  detector's: the rotation stage, on ``sample_x``, on ``sample_y``).

Coordinates: NeXus's McStas frame (z along the beam, y up, x horizontal, right-handed);
pyFAI's lab axes (1 up, 2 horizontal, 3 along the beam, also right-handed) are x = −axis 2,
y = axis 1, z = axis 3 (``PONI_TO_MCSTAS``). pyFAI's ``rot1`` and ``rot2`` turn the
detector left-handed about axes 1 and 2 (right-handed about −y and +x in McStas),
``rot3`` right-handed about the beam; the chain applies ``rot1`` first, as pyFAI's
``R3·R2·R1``. Pixel ``(row, col)`` of the data array has its outer corner at ``module
origin + row × slow + col × fast``; a detector orientation that flips an axis (pyFAI's
orientations 1, 2, 4) reverses that axis's direction and moves the origin to its far end.

``read_nxmx_geometry`` goes back: the ``PoniGeometry`` of a file's NXmx chain (tests write
geometries of every rotation and orientation and read them back, compare the chain's pixel
positions with ``PoniGeometry.lab_positions`` through the NXmx reader of DIALS, ``nxmx``,
and the beam centre and distance with pyFAI's own Fit2D conversion).

The rest of what NXmx requires is the writer's, given or not: the sensor's material and
thickness (``NXdetector`` fields, ``devices.frame_nexus``), the instrument's, source's and
sample's names and the end times (``dataflow.hdf5_nexus``). With them nexusformat's
``validate_application`` finds nothing missing (tests check it, and that without them it
names exactly those).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import h5py
import numpy as np
import numpy.typing as npt

from geometry import PoniGeometry

__all__ = ["BEAM_PROFILES", "PONI_TO_MCSTAS", "IncidentBeamSize", "NxmxGeometry",
           "SampleAxis", "nxmx_geometry", "read_nxmx_geometry", "write_nxmx",
           "write_sample_axes"]

FloatArray = npt.NDArray[np.float64]

PONI_TO_MCSTAS: FloatArray = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
"""Column k is pyFAI's lab axis k + 1 in NeXus's McStas frame: x = −axis 2, y = axis 1,
z = axis 3 (the beam)."""

BEAM_PROFILES = ("Gaussian", "Airy", "top-hat", "rectangular")
"""NXmx's enumeration of ``/entry/instrument/beam/profile``."""


@dataclass(frozen=True)
class IncidentBeamSize:
    """The incident beam at the sample as NXmx records it: ``incident_beam_size`` is
    [x, y] (NeXus's x horizontal, y up), the FWHM of a Gaussian or Airy profile, the
    diameter of a top hat or the widths of a rectangle, in metres; ``profile`` one of
    :data:`BEAM_PROFILES`."""

    x: float
    y: float
    profile: Literal["Gaussian", "Airy", "top-hat", "rectangular"]

    def __post_init__(self) -> None:
        for axis in ("x", "y"):
            value = getattr(self, axis)
            if isinstance(value, bool | np.bool_ | np.timedelta64) \
                    or not isinstance(value, int | float | np.integer | np.floating) \
                    or not (math.isfinite(value) and value > 0):
                raise ValueError(f"IncidentBeamSize.{axis} must be a length > 0 m, got "
                                 f"{value!r}")
        if self.profile not in BEAM_PROFILES:
            raise ValueError(f"IncidentBeamSize.profile {self.profile!r}: NXmx allows "
                             f"{', '.join(BEAM_PROFILES)}")


FLIPPED = {1: (0, 1), 2: (0,), 3: (), 4: (1,)}
"""The data array's axes (0: rows, 1: columns) that pyFAI's detector orientation runs
backwards (``geometry.poni``)."""

ROTATION_AXES = {"rot1": -PONI_TO_MCSTAS[:, 0], "rot2": -PONI_TO_MCSTAS[:, 1],
                 "rot3": PONI_TO_MCSTAS[:, 2]}
"""The NXmx vector about which each pyFAI rotation turns the detector right-handed by its
angle: rot1 and rot2 are left-handed about pyFAI's axes 1 and 2, rot3 right-handed about 3."""



@dataclass(frozen=True)
class SampleAxis:
    """A stage of the sample recorded frame by frame (its position at the frame's
    trigger): one axis of the sample's NXmx chain, a rotation unless told."""

    name: str
    """The axis's name: the stage's (its data key in the run's events)."""
    vector: tuple[float, float, float] = (0.0, 1.0, 0.0)
    """The NeXus (McStas) axis the stage turns the sample about (right-handed) or moves it
    along: the simulated rotation stage turns it counter-clockwise seen from above
    (``devices.phantom``), +y."""
    kind: str = "rotation"
    """NeXus's ``transformation_type``: ``"rotation"`` or ``"translation"``."""
    units: str = "deg"
    """The positions' units (``"deg"``, ``"mm"``…)."""


@dataclass(frozen=True)
class NxmxGeometry:
    """The NXmx fields of a :class:`~geometry.PoniGeometry` (see the module docstring)."""

    dist: float
    """The translation along the (rotated) beam axis, m: pyFAI's ``dist``."""
    rotations: tuple[tuple[str, float], ...]
    """pyFAI's non-zero rotations in the order the chain applies them, rad."""
    module_offset: FloatArray
    """The first pixel's outer corner from the point of normal incidence, m (McStas)."""
    fast: FloatArray
    """The data array's column direction, unit vector (McStas, before the rotations)."""
    slow: FloatArray
    """The data array's row direction, unit vector."""
    pixel_fast: float
    pixel_slow: float
    shape: tuple[int, int]
    beam_center: tuple[float, float] | None
    """(x, y): where the direct beam meets the detector plane, pixels of the data array
    (x along the columns, y along the rows), or None when it never does."""
    distance: float | None
    """From the sample to the beam centre, m (None with ``beam_center``)."""
    wavelength: float | None


def nxmx_geometry(g: PoniGeometry) -> NxmxGeometry:
    """The NXmx fields of ``g`` (pyFAI's PONI parameters)."""
    rows, cols = g.shape
    flipped = FLIPPED[g.detector.orientation]
    # the first pixel's outer corner and the pixel directions, pyFAI's detector axes
    corner = [n * p - poni if axis in flipped else -poni
              for axis, (n, p, poni) in enumerate(((rows, g.pixel1, g.poni1),
                                                   (cols, g.pixel2, g.poni2)))]
    sign = [-1.0 if axis in flipped else 1.0 for axis in (0, 1)]
    offset = PONI_TO_MCSTAS @ np.array([corner[0], corner[1], 0.0])
    slow = PONI_TO_MCSTAS @ np.array([sign[0], 0.0, 0.0])
    fast = PONI_TO_MCSTAS @ np.array([0.0, sign[1], 0.0])
    # the direct beam (lab axis 3) meets the plane at M @ (p1, p2, dist) ∥ axis 3
    along = g.rotation_matrix().T @ np.array([0.0, 0.0, 1.0])
    beam_center: tuple[float, float] | None = None
    distance: float | None = None
    if along[2] > 1e-12:
        scale = g.dist / along[2]
        index = []
        for axis, (n, p, poni) in enumerate(((rows, g.pixel1, g.poni1),
                                             (cols, g.pixel2, g.poni2))):
            i = (scale * along[axis] + poni) / p
            index.append(n - i if axis in flipped else i)
        beam_center = (float(index[1]), float(index[0]))
        distance = float(scale)
    rotations = tuple((name, float(value)) for name, value in
                      (("rot1", g.rot1), ("rot2", g.rot2), ("rot3", g.rot3)) if value != 0.0)
    return NxmxGeometry(g.dist, rotations, offset, fast, slow, g.pixel2, g.pixel1,
                        (rows, cols), beam_center, distance, g.wavelength)


def write_nxmx(f: h5py.File, entry_name: str, g: PoniGeometry,
               beam_size: IncidentBeamSize | None = None) -> None:
    """Write ``g`` into ``f``'s NeXus tree at ``/ENTRY`` (whose instrument/detector group
    ``dataflow.hdf5_nexus`` made) as NXmx, with the beam's size at the sample when known;
    ``ValueError`` when ``g``'s shape is not the frames'."""
    entry = f[entry_name]
    frames = entry["instrument/detector/data"]
    if tuple(frames.shape[1:]) != tuple(g.shape):
        raise ValueError(f"{f.filename}: the geometry is of {g.shape[0]}×{g.shape[1]} "
                         f"pixels, the frames {frames.shape[1]}×{frames.shape[2]}")
    nx = nxmx_geometry(g)
    detector_path = f"/{entry_name}/instrument/detector"
    entry["definition"] = "NXmx"
    if g.wavelength is not None or beam_size is not None:
        beam = entry.require_group("instrument/beam")
        beam.attrs["NX_class"] = "NXbeam"
    if g.wavelength is not None:
        _field(beam, "incident_wavelength", g.wavelength, "m")
    if beam_size is not None:
        beam.create_dataset("incident_beam_size", data=np.array(
            [beam_size.x, beam_size.y], dtype=np.float64)).attrs["units"] = "m"
        beam["profile"] = beam_size.profile
    detector = entry["instrument/detector"]
    if nx.beam_center is not None and nx.distance is not None:
        _field(detector, "distance", nx.distance, "m")
        # computed from the chain below (the same PONI geometry), not measured apart
        detector["distance_derived"] = np.True_
        _field(detector, "beam_center_x", nx.beam_center[0], "pixel")
        _field(detector, "beam_center_y", nx.beam_center[1], "pixel")
    axes = detector.create_group("transformations")
    axes.attrs["NX_class"] = "NXtransformations"
    below = "."  # the chain, from the lab's origin towards the detector
    for name, angle in reversed(nx.rotations):
        _axis(axes, name, angle, "rad", "rotation", ROTATION_AXES[name], below)
        below = f"{detector_path}/transformations/{name}"
    _axis(axes, "translation", nx.dist, "m", "translation", np.array([0.0, 0.0, 1.0]), below)
    on_detector = f"{detector_path}/transformations/translation"
    detector["depends_on"] = on_detector
    module = detector.create_group("module")
    module.attrs["NX_class"] = "NXdetector_module"
    module["data_origin"] = np.array([0, 0], dtype=np.int64)
    module["data_size"] = np.array(nx.shape, dtype=np.int64)
    length = float(np.linalg.norm(nx.module_offset))
    _axis(module, "module_offset", length, "m", "translation",
          nx.module_offset / length if length > 0 else np.array([1.0, 0.0, 0.0]), on_detector)
    offset_path = f"{detector_path}/module/module_offset"
    _axis(module, "fast_pixel_direction", nx.pixel_fast, "m", "translation", nx.fast,
          offset_path)
    _axis(module, "slow_pixel_direction", nx.pixel_slow, "m", "translation", nx.slow,
          offset_path)
    sample = entry.require_group("sample")
    sample.attrs["NX_class"] = "NXsample"
    if "depends_on" not in sample:  # (a goniometer axis written before stays)
        sample["depends_on"] = "."


def write_sample_axes(f: h5py.File, entry_name: str, axes: Sequence[SampleAxis],
                      chunk: int) -> list[h5py.Dataset]:
    """``/ENTRY/sample`` depending on the chain ``axes`` (the first nearest the sample,
    each depending on the next, the last on the origin): one empty dataset each, which
    the writer extends with each frame's position (chunks of ``chunk`` values)."""
    if not axes or len({axis.name for axis in axes}) != len(axes):
        raise ValueError(f"{f.filename}: sample axes {[a.name for a in axes]}: one or more, "
                         "each its own name")
    sample = f[entry_name].require_group("sample")
    sample.attrs["NX_class"] = "NXsample"
    group = sample.require_group("transformations")
    group.attrs["NX_class"] = "NXtransformations"
    nodes = []
    for i, axis in enumerate(axes):
        node = group.create_dataset(axis.name, shape=(0,), maxshape=(None,), dtype="<f8",
                                    chunks=(chunk,))
        below = f"{group.name}/{axes[i + 1].name}" if i + 1 < len(axes) else "."
        _axis_attrs(node, axis.units, axis.kind, np.asarray(axis.vector, np.float64), below)
        nodes.append(node)
    if "depends_on" in sample:
        del sample["depends_on"]
    sample["depends_on"] = nodes[0].name
    return nodes


def _field(group: h5py.Group, name: str, value: float, units: str) -> None:
    group.create_dataset(name, data=float(value)).attrs["units"] = units


def _axis(group: h5py.Group, name: str, value: float, units: str, kind: str,
          vector: FloatArray, depends_on: str) -> None:
    """An NXtransformations axis: ``value`` along or about ``vector``."""
    _axis_attrs(group.create_dataset(name, data=float(value)), units, kind, vector,
                depends_on)


def _axis_attrs(node: h5py.Dataset, units: str, kind: str, vector: FloatArray,
                depends_on: str) -> None:
    """The attributes that make ``node`` an NXtransformations axis (no offset)."""
    node.attrs["units"] = units
    node.attrs["transformation_type"] = kind
    node.attrs["vector"] = np.asarray(vector, dtype=np.float64) + 0.0  # (no -0.0)
    node.attrs["offset"] = np.zeros(3)
    node.attrs["depends_on"] = depends_on


# -- reading back ---------------------------------------------------------------------

_LENGTH = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6, "nm": 1e-9, "angstrom": 1e-10,
           "Angstrom": 1e-10, "A": 1e-10, "Å": 1e-10}
_ANGLE = {"rad": 1.0, "deg": math.pi / 180.0, "degree": math.pi / 180.0,
          "degrees": math.pi / 180.0}


def _text(node: h5py.HLObject, name: str, default: str) -> str:
    """Attribute ``name`` of ``node`` as text (h5py gives bytes for some writers')."""
    value = node.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def _value(node: h5py.Dataset, units: dict[str, float]) -> float:
    unit = _text(node, "units", "")
    if unit not in units:
        raise ValueError(f"{node.name}: units {unit!r}: expected one of {', '.join(units)}")
    return float(np.asarray(node[()]).reshape(-1)[0]) * units[unit]


def _chain(f: h5py.File, path: str) -> Iterator[h5py.Dataset]:
    """The axes of the chain starting at ``path``, nearest the object first."""
    seen: set[str] = set()
    while path not in ("", "."):
        if path in seen:
            raise ValueError(f"{f.filename}: depends_on loops at {path}")
        seen.add(path)
        node = f[path]
        yield node
        below = _text(node, "depends_on", ".")
        path = below if below.startswith("/") or below == "." else \
            f"{node.parent.name.rstrip('/')}/{below}"


def _matrix(node: h5py.Dataset) -> FloatArray:
    """The 4×4 affine matrix of one axis (NeXus's active transformation)."""
    vector = np.asarray(node.attrs["vector"], dtype=np.float64)
    vector = vector / np.linalg.norm(vector)
    a = np.identity(4)
    kind = _text(node, "transformation_type", "")
    if kind == "rotation":
        angle = _value(node, _ANGLE)
        k = np.array([[0.0, -vector[2], vector[1]], [vector[2], 0.0, -vector[0]],
                      [-vector[1], vector[0], 0.0]])
        a[:3, :3] = np.identity(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)
    elif kind == "translation":
        a[:3, 3] = _value(node, _LENGTH) * vector
    else:
        raise ValueError(f"{node.name}: transformation_type {kind!r}")
    if "offset" in node.attrs:
        a[:3, 3] += np.asarray(node.attrs["offset"], dtype=np.float64)
    return a


def read_nxmx_geometry(f: h5py.File, entry_name: str = "entry", orientation: int = 3
                       ) -> PoniGeometry:
    """The :class:`~geometry.PoniGeometry` of ``f``'s NXmx detector (its first module's
    chain, pixel directions and size, the beam's wavelength), in pyFAI's detector
    ``orientation`` (3, pyFAI's own, unless told: an orientation and a turn of the
    detector by 180° can describe the same pixels). ``ValueError`` when the file's
    detector is not a flat grid whose rows and columns are perpendicular, or its chain
    is not one pyFAI's three rotations can express."""
    detector = f[f"{entry_name}/instrument/detector"]
    module = next(item for item in detector.values()
                  if isinstance(item, h5py.Group)
                  and _text(item, "NX_class", "") == "NXdetector_module")
    fast_node, slow_node = module["fast_pixel_direction"], module["slow_pixel_direction"]
    chain = list(_chain(f, fast_node.name))[1:]  # (the pixel direction's own axis left out)
    placed = np.identity(4)
    for node in reversed(chain):
        placed = placed @ _matrix(node)
    rotation, origin = placed[:3, :3], placed[:3, 3]
    unit = [np.asarray(n.attrs["vector"], np.float64) / np.linalg.norm(n.attrs["vector"])
            for n in (slow_node, fast_node)]
    if abs(float(unit[0] @ unit[1])) > 1e-9:
        raise ValueError(f"{module.name}: the fast and slow pixel directions are not "
                         "perpendicular")
    flipped = FLIPPED[orientation]
    # pyFAI's detector axes 1 and 2 in the lab (pyFAI's frame), then its rotation matrix
    to_poni = PONI_TO_MCSTAS.T
    axis1 = to_poni @ rotation @ unit[0] * (-1.0 if 0 in flipped else 1.0)
    axis2 = to_poni @ rotation @ unit[1] * (-1.0 if 1 in flipped else 1.0)
    m = np.column_stack([axis1, axis2, np.cross(axis1, axis2)])
    rot2 = math.asin(max(-1.0, min(1.0, float(m[2, 0]))))
    rot1 = math.atan2(-float(m[2, 1]), float(m[2, 2]))
    rot3 = math.atan2(float(m[1, 0]), float(m[0, 0]))
    rows, cols = (int(n) for n in module["data_size"][()])
    pixel1, pixel2 = _value(slow_node, _LENGTH), _value(fast_node, _LENGTH)
    corner = m.T @ (to_poni @ origin)  # (the first pixel's corner, detector axes; dist)
    if corner[2] <= 0:
        raise ValueError(f"{detector.name}: the detector does not face the sample")
    poni1 = rows * pixel1 - corner[0] if 0 in flipped else -corner[0]
    poni2 = cols * pixel2 - corner[1] if 1 in flipped else -corner[1]
    wavelength = None
    beam = f.get(f"{entry_name}/instrument/beam/incident_wavelength")
    if beam is not None:
        wavelength = _value(beam, _LENGTH)
    return PoniGeometry(float(corner[2]), float(poni1), float(poni2), rot1, rot2, rot3,
                        pixel1=pixel1, pixel2=pixel2, shape=(rows, cols),
                        wavelength=wavelength, orientation=orientation)
