"""The detector's pixel mask as a bluesky stream (see :mod:`dataflow.pixel_mask`).

:class:`PixelMaskReader` is the detector's child device ``det.pixel_mask``: read with
``bps.trigger_and_read([det.pixel_mask], name="mask")`` (what :func:`plans.mask.publish_mask`
does) it writes the mask the detector uses now — module gaps, and the dead and hot pixels of
its bad-pixel map, which its firmware's mask table also zeroes, binned like the frames — to
a small HDF5 file in the detector's folder and announces it as the external data key
``<det>_pixel_mask``. It is a component of kind ``omitted``: it never appears in the
detector's own ``read()``/``describe()``, so the frame streams do not carry it.

:func:`pixel_mask_bits` builds the NeXus bit field from the sensor's defect map and the
firmware's mask table.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
from ophyd import Device
from ophyd.status import DeviceStatus

from dataflow.hdf5 import FrameWriter
from dataflow.pixel_mask import (
    DEAD,
    GAP,
    OTHER,
    OVER_RESPONDING,
    PIXEL_MASK_DATASET,
    mask_key,
)

__all__ = ["PixelMaskReader", "pixel_mask_bits"]


def pixel_mask_bits(*, dead: npt.ArrayLike, hot: npt.ArrayLike, table: npt.ArrayLike,
                    gaps: npt.ArrayLike | None = None) -> npt.NDArray[np.uint32]:
    """NeXus ``pixel_mask`` bits of the sensor's pixels: ``gaps`` (no sensor), ``dead`` and
    ``hot`` pixels of the defect map, and pixels the firmware's mask ``table`` zeroes for
    another reason (bit 8)."""
    d, h, t = (np.asarray(a, dtype=bool) for a in (dead, hot, table))
    if not d.shape == h.shape == t.shape:
        raise ValueError(f"pixel_mask_bits: dead {d.shape}, hot {h.shape} and table "
                         f"{t.shape} must have one shape")
    bits = np.zeros(d.shape, np.uint32)
    if gaps is not None:
        g = np.asarray(gaps, dtype=bool)
        if g.shape != d.shape:
            raise ValueError(f"pixel_mask_bits: gaps {g.shape} must have the shape {d.shape}")
        bits[g] |= GAP
    bits[d] |= DEAD
    bits[h] |= OVER_RESPONDING
    bits[t & (bits == 0)] |= OTHER
    return bits


class PixelMaskReader(Device):  # type: ignore[misc]
    """Publishes the parent detector's pixel mask (module docstring).

    The parent provides ``pixel_mask_array()`` (``uint32``, output-frame shape),
    ``folder`` and ``name``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._docs: list[tuple[str, dict[str, Any]]] = []
        self._shape: tuple[int, int] = (0, 0)

    @property
    def data_key(self) -> str:
        """``<det>_pixel_mask``."""
        return mask_key(self.parent.name)

    def _mask(self) -> npt.NDArray[np.uint32]:
        mask: npt.NDArray[np.uint32] = self.parent.pixel_mask_array()
        return mask

    def describe(self) -> dict[str, Any]:
        """The external mask key (shape of the frames the detector sends now)."""
        shape = list(self.parent.out_shape())
        return {self.data_key: {"source": f"smeflow:pixel_mask:{self.parent.name}",
                                "shape": shape, "dtype": "array",
                                "dtype_numpy": np.dtype(np.uint32).str,
                                "external": "STREAM:"}}

    def read(self) -> dict[str, Any]:
        """Nothing in the event itself: the mask is external data."""
        return {}

    def read_configuration(self) -> dict[str, Any]:
        """No configuration of its own."""
        return {}

    def describe_configuration(self) -> dict[str, Any]:
        """No configuration of its own."""
        return {}

    def trigger(self) -> DeviceStatus:
        """Write the current mask to a new file; ``collect_asset_docs`` announces it."""
        mask = self._mask()
        name = (f"{self.parent.name}_pixel_mask_{time.strftime('%Y%m%d-%H%M%S')}_"
                f"{uuid.uuid4().hex[:8]}.h5")
        writer = FrameWriter(self.parent.folder, name, mask.shape, dtype=np.uint32,
                             data_key=self.data_key, dataset=PIXEL_MASK_DATASET,
                             layout="per_frame", compression="gzip",
                             attrs={"description": "NeXus pixel_mask bits: 0 gap, 1 dead, "
                                                   "3 hot (over-responding), 8 masked"})
        writer.append(mask)
        writer.close()  # complete on disk before anyone is told about it
        self._docs = list(writer.asset_docs())
        status = DeviceStatus(self)
        status.set_finished()
        return status

    def collect_asset_docs(self, index: int | None = None
                           ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The mask file's ``stream_resource`` and ``stream_datum`` (once per trigger)."""
        docs, self._docs = self._docs, []
        yield from docs
