"""The NeXus tree around a frame file's dataset (``dataflow.hdf5.FrameWriter`` writes it).

NeXus: a file whose dataset sits at ``/ENTRY/DATA/NAME`` (the default
``/entry/data/data``) is a NeXus file as well: ``ENTRY`` is an ``NXentry`` whose
``default`` plot is the ``NXdata`` group ``DATA`` (``signal`` = the frames, ``axes`` =
``[".", ".", "."]``: frame, row, column by index, ``interpretation="image"``);
``/ENTRY/instrument/detector`` (not in a file of derived frames, a reconstruction's:
``detector=False``) is an ``NXdetector`` holding the same frames as ``data`` (a
hard link, NeXus's ``target`` attribute naming the original), the counters and the
detector fields the writer is given (``count_time`` in s,
``x_pixel_size``/``y_pixel_size`` in m, ``description``, the ``pixel_mask`` bits of
``dataflow.pixel_mask``, gzip-compressed …), so NeXus readers (``nexusformat``, silx view,
DAWN) open it and find the image stack. ``/ENTRY/start_time`` is the first frame's exposure
start (ISO 8601, UTC, ``Z``) when the writer is told it; a writer told it will learn it
later (a fly acquisition's file, opened before its first trigger) makes it empty with the
file (``END_TIME_DTYPE``) and writes it when told (``write_start_time``; at the close, the
end time, if no frame's start was told: NXmx requires the field); ``/ENTRY/end_time`` and
``end_time_estimated`` are when the last frame reached the file (when the file closed, if
no frame did). A file is in SWMR mode from its creation on, where HDF5 adds no dataset, so
both are made when the file is (fixed-length strings, ``END_TIME_DTYPE``): ``end_time``
empty and ``end_time_estimated`` the start time (the file's creation when not told), and
written when the writer closes the file (``write_end_time``): a file its writer never
closed keeps an empty ``end_time`` (NXmx would omit it; SWMR cannot). ``/ENTRY/instrument/
time_zone`` is this machine's offset from UTC at the start (``+01:00``; NXmx recommends it).
The names NXmx asks for (``EntryNames``: the instrument's at ``/ENTRY/instrument/name``,
the source's at ``/ENTRY/source/name`` — in a file that is no NXmx file at
``/ENTRY/instrument/source/name``, where NeXus's base classes have it —, the sample's at
``/ENTRY/sample/name``) are written when the writer is given them. A run that knows its geometry
(pyFAI's PONI parameters, :class:`geometry.PoniGeometry`) has it written as NXmx
(``dataflow.hdf5_nxmx``: definition, beam wavelength, detector distance, beam centre and
the chain of transformations placing it, the sample), and the sample's stages frame by
frame as its chain of axes (``dataflow.hdf5_angles.AngleFrameWriter``).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from .hdf5_nxmx import write_nxmx

if TYPE_CHECKING:
    from geometry import PoniGeometry

    from .hdf5_nxmx import IncidentBeamSize


END_TIME_DTYPE = np.dtype("S32")
"""The end times' type: fixed-length (an ISO 8601 time in UTC is 27 bytes), which a file in
SWMR mode can overwrite (a variable-length string lives in a heap SWMR does not allow)."""


@dataclass(frozen=True)
class EntryNames:
    """The names a frame file records (NXmx requires all three); None: not written."""

    instrument: str | None = None
    """The beamline's (``/ENTRY/instrument/name``)."""
    source: str | None = None
    """The X-ray source's: the storage ring or facility (``/ENTRY/source/name``)."""
    sample: str | None = None
    """The sample's (``/ENTRY/sample/name``)."""


def write_nexus_tree(f: h5py.File, dataset: str, detector_fields: Mapping[str, Any], *,
                     start_time: float | None = None, start_pending: bool = False,
                     geometry: PoniGeometry | None = None,
                     names: EntryNames | None = None, detector: bool = True,
                     beam_size: IncidentBeamSize | None = None) -> bool:
    """Make ``f`` a NeXus file around its frame ``dataset`` (see the module docstring),
    with ``start_time`` (s since the epoch) — or, ``start_pending``, an empty one that
    ``write_start_time`` fills —, the NXmx ``geometry`` (with the beam's ``beam_size``
    at the sample, written only with it) and the ``names`` when given;
    False (nothing written) when the dataset is not at ``/ENTRY/DATA/NAME``.
    ``detector=False``: the frames are derived data (a reconstruction's slices), no
    detector's: no ``/ENTRY/instrument`` (``ValueError`` with ``detector_fields`` or a
    ``geometry``, which are a detector's)."""
    if not detector and (detector_fields or geometry is not None):
        raise ValueError(f"{f.filename}: detector fields and a geometry are a detector's; "
                         "derived frames have neither")
    parts = dataset.strip("/").split("/")
    if len(parts) != 3:
        return False
    entry_name, data_name, name = parts
    entry, data, frames = f[entry_name], f[f"{entry_name}/{data_name}"], f[dataset]
    f.attrs["default"] = entry_name
    f.attrs["creator"] = "smeflow"
    entry.attrs["NX_class"] = "NXentry"
    entry.attrs["default"] = data_name
    data.attrs["NX_class"] = "NXdata"
    data.attrs["signal"] = name
    data.attrs["axes"] = [".", ".", "."]
    frames.attrs["interpretation"] = "image"
    frames.attrs["target"] = "/" + "/".join(parts)
    if detector:
        _write_detector(entry, frames, detector_fields, start_time)
    if start_time is not None:
        entry["start_time"] = iso_time(start_time)
    elif start_pending:
        entry.create_dataset("start_time", data=np.bytes_(b""), dtype=END_TIME_DTYPE)
    entry.create_dataset("end_time", data=np.bytes_(b""), dtype=END_TIME_DTYPE)
    estimate = iso_time(start_time if start_time is not None else
                        datetime.datetime.now(datetime.UTC).timestamp())
    entry.create_dataset("end_time_estimated", data=np.bytes_(estimate.encode()),
                         dtype=END_TIME_DTYPE)
    _write_names(entry, names or EntryNames(), nxmx=geometry is not None)
    if geometry is not None:
        write_nxmx(f, entry_name, geometry, beam_size)
    return True


def _write_detector(entry: h5py.Group, frames: h5py.Dataset,
                    detector_fields: Mapping[str, Any], start_time: float | None) -> None:
    """``/ENTRY/instrument`` (its ``time_zone``) and its NXdetector, whose ``data`` is
    ``frames``, with ``detector_fields``."""
    instrument = entry.require_group("instrument")
    instrument.attrs["NX_class"] = "NXinstrument"
    instrument["time_zone"] = time_zone(start_time)
    detector = instrument.require_group("detector")
    detector.attrs["NX_class"] = "NXdetector"
    if "data" not in detector:
        detector["data"] = frames  # a hard link: one dataset, two NeXus paths
    for field, value in detector_fields.items():
        units = None
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
            value, units = value
        node = detector.create_dataset(field, data=value, **_array_options(value))
        if units is not None:
            node.attrs["units"] = units


def _write_names(entry: h5py.Group, names: EntryNames, *, nxmx: bool) -> None:
    """The names; the source's group where NXmx has it (in the entry) in an NXmx file, else
    where NeXus's base classes have it (in the instrument: ``NXentry`` has no ``NXsource``,
    nexusformat's validator calls one there an error)."""
    source = "source" if nxmx else "instrument/source"
    for group, nx_class, name in (("instrument", "NXinstrument", names.instrument),
                                  (source, "NXsource", names.source),
                                  ("sample", "NXsample", names.sample)):
        if name is not None:
            node = entry.require_group(group)
            node.attrs["NX_class"] = nx_class
            node["name"] = name


def write_end_time(f: h5py.File, dataset: str, t: float) -> None:
    """Set the end times ``write_nexus_tree`` made in ``f`` (around ``dataset``) to ``t``
    (s since the epoch)."""
    entry = f[dataset.strip("/").split("/")[0]]
    when = np.bytes_(iso_time(t).encode())
    entry["end_time"][()] = when
    entry["end_time_estimated"][()] = when


def write_start_time(f: h5py.File, dataset: str, t: float) -> None:
    """Set the empty ``start_time`` ``write_nexus_tree(start_pending=True)`` made in ``f``
    (around ``dataset``) to ``t`` (s since the epoch)."""
    node = f[dataset.strip("/").split("/")[0]]["start_time"]
    node[()] = np.bytes_(iso_time(t).encode())
    node.flush()  # (SWMR readers, and a file whose writer dies, see it from now on)


def time_zone(t: float | None = None) -> str:
    """This machine's offset from UTC at ``t`` (s since the epoch; now when None), as ISO
    8601 writes it (``+01:00``): NXmx's ``/ENTRY/instrument/time_zone``, the time zone the
    file's UTC times were taken in."""
    when = datetime.datetime.fromtimestamp(time.time() if t is None else t).astimezone()
    return when.isoformat(timespec="seconds")[-6:]


def iso_time(t: float) -> str:
    """ISO 8601 in UTC with the ``Z`` suffix, microseconds (NeXus's ``NX_DATE_TIME``)."""
    when = datetime.datetime.fromtimestamp(t, tz=datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _array_options(value: Any) -> dict[str, Any]:
    """Compression of a field that is an image (a ``pixel_mask``: mostly zeros)."""
    if isinstance(value, np.ndarray) and value.ndim >= 2 and value.size > 1024:
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True,
                "chunks": True}
    return {}
