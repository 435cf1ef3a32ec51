"""What a detector's frame files say about it in NeXus (``dataflow.hdf5_nexus``).

Every file's ``NXdetector`` records the pixel size, the description, the energy
threshold, the sensor's material and thickness (``sensor_material``, ``sensor_thickness``
in m: the sensor model's ``layer``), the ``pixel_mask`` (and, per file, the
``count_time``), and what the firmware
makes of the counts: ``bit_depth_readout`` = 20, the depth of the sensor's pixel counters
(``fpga.designs.params.PIXEL_BITS``), and ``saturation_value`` = 65534: the firmware
writes a saturated pixel (a full counter, or a corrected or binned value past the 16-bit
output) as 65535, so only values up to 65534 are measurements (docs/firmware.md).

A detector whose ``geometry`` is known (``FirmwareDetector.geometry``; the beamline sets
it with the powder in the beam) writes it as NXmx (``dataflow.hdf5_nxmx``), binned 2 × 2
like the frames when the firmware bins: the geometry a diffraction run records for its
reduction (``devices.beamline.Beamline.detector_geometry``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fpga.designs.layout import SensorLayer
from fpga.designs.params import OUT_MAX, PIXEL_BITS
from geometry import PoniGeometry

__all__ = ["SATURATION_VALUE", "detector_fields", "frames_geometry"]

SATURATION_VALUE = OUT_MAX - 1
"""The largest frame value that is a measurement (65535 marks a saturated pixel)."""


def detector_fields(*, pixel: tuple[float, float], backend: str, energy_threshold: float,
                    mask: np.ndarray, sensor: SensorLayer) -> dict[str, Any]:
    """The ``NXdetector`` fields of the frames now (``pixel``: (rows, columns) in m, binned
    like the frames; ``sensor``: the sensor model's layer)."""
    return {
        "x_pixel_size": (float(pixel[1]), "m"),
        "y_pixel_size": (float(pixel[0]), "m"),
        "description": f"smeflow photon-counting detector, SME firmware ({backend} backend)",
        "threshold_energy": (float(energy_threshold), "keV"),
        "sensor_material": sensor.material,
        "sensor_thickness": (float(sensor.thickness), "m"),
        "bit_depth_readout": PIXEL_BITS,
        "saturation_value": SATURATION_VALUE,
        # (with the frames, for a plan that publishes no mask stream: bp.count)
        "pixel_mask": mask}


def frames_geometry(geometry: PoniGeometry | None, *, binning: bool,
                    shape: tuple[int, int], pixel: tuple[float, float], who: str
                    ) -> PoniGeometry | None:
    """The geometry of the frames the firmware sends now: ``geometry`` (of the sensor),
    binned 2 × 2 with ``binning``; ``ValueError`` naming ``who`` when it is not of frames
    of ``shape`` and ``pixel`` size (rows, columns; m) — a file never records a
    geometry other than its frames'."""
    if geometry is None:
        return None
    g = geometry.binned(2) if binning else geometry
    if g.shape != shape or not all(math.isclose(a, b, rel_tol=1e-9)
                                   for a, b in zip((g.pixel1, g.pixel2), pixel, strict=True)):
        raise ValueError(f"{who}: the geometry is of {g.shape[0]}×{g.shape[1]} pixels of "
                         f"{g.pixel1:g} × {g.pixel2:g} m, the frames {shape[0]}×{shape[1]} "
                         f"of {pixel[0]:g} × {pixel[1]:g} m; set geometry and pixel_size "
                         "together")
    return g
