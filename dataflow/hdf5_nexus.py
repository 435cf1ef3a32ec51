"""The NeXus tree around a frame file's dataset (``dataflow.hdf5.FrameWriter`` writes it).

NeXus: a file whose dataset sits at ``/ENTRY/DATA/NAME`` (the default
``/entry/data/data``) is a NeXus file as well: ``ENTRY`` is an ``NXentry`` whose
``default`` plot is the ``NXdata`` group ``DATA`` (``signal`` = the frames, ``axes`` =
``[".", ".", "."]``: frame, row, column by index, ``interpretation="image"``);
``/ENTRY/instrument/detector`` is an ``NXdetector`` holding the same frames as ``data`` (a
hard link, NeXus's ``target`` attribute naming the original), the counters and the
detector fields the writer is given (``count_time`` in s,
``x_pixel_size``/``y_pixel_size`` in m, ``description``, the ``pixel_mask`` bits of
``dataflow.pixel_mask``, gzip-compressed …), so NeXus readers (``nexusformat``, silx view,
DAWN) open it and find the image stack. ``/ENTRY/start_time`` is the first frame's exposure
start (ISO 8601, UTC, ``Z``) when the writer is told it. A run that knows its geometry
(pyFAI's PONI parameters, :class:`geometry.PoniGeometry`) has it written as NXmx
(``dataflow.hdf5_nxmx``: definition, beam wavelength, detector distance, beam centre and
the chain of transformations placing it, the sample), and a rotating sample's per-frame
angles as its goniometer axis (``dataflow.hdf5_angles.AngleFrameWriter``).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from .hdf5_nxmx import write_nxmx

if TYPE_CHECKING:
    from geometry import PoniGeometry


def write_nexus_tree(f: h5py.File, dataset: str, detector_fields: Mapping[str, Any], *,
                     start_time: float | None = None,
                     geometry: PoniGeometry | None = None) -> bool:
    """Make ``f`` a NeXus file around its frame ``dataset`` (see the module docstring),
    with ``start_time`` (s since the epoch) and the NXmx ``geometry`` when given; False
    (nothing written) when the dataset is not at ``/ENTRY/DATA/NAME``."""
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
    instrument = entry.require_group("instrument")
    instrument.attrs["NX_class"] = "NXinstrument"
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
    if start_time is not None:
        entry["start_time"] = iso_time(start_time)
    if geometry is not None:
        write_nxmx(f, entry_name, geometry)
    return True


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
