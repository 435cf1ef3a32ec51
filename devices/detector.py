"""The area detector whose firmware is the SME chain, as an ophyd (v1) device.

On ``trigger()`` the detector asks its :class:`~devices.samples.Scene` for the photon
flux, the sensor model counts photons for ``exposure`` seconds, the counts go over the
link into the firmware (``devices.firmware``: interpreter, compiled or GHDL), the readout
backend checks and reassembles the frame, and the frame is appended to the acquisition's
HDF5 file. The event carries the firmware's own reductions (ROI sum, saturated count,
histogram, frame number); the image is external data (``<name>_image``, announced with
``stream_resource``/``stream_datum`` from ``collect_asset_docs``).

Configuration signals (``read_configuration``): ``exposure`` (s), ``energy_threshold``
(keV, the sensor's comparator), ``threshold`` (counts, the firmware's zero suppression),
``roi`` (``[x0, y0, x1, y1]`` in output pixels), ``binning`` (2×2), ``backend`` and
``frame_shape``. Changes apply at the next ``stage()``, as on a real detector, where the
configuration is loaded into the firmware between acquisitions.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import DeviceStatus

from dataflow.hdf5 import FrameWriter
from fpga.designs.params import HIST_BINS, ChainParams
from fpga.designs.reference import ChainConfig, ChainTables

from .firmware import BACKENDS, Firmware
from .samples import PixelSize, Scene
from .sensor import SensorModel


class FirmwareDetector(Device):  # type: ignore[misc]
    """A photon-counting area detector with the SME firmware in the loop.

    Parameters
    ----------
    scene
        Where the photons come from (sample, motors, shutter, beam).
    folder
        The data folder the HDF5 files go to (a catalog's ``raw_dir``).
    params
        Sensor shape and pixels per tick of the firmware (256×256, 16 by default).
    pixel_size
        Pixel pitch in metres, passed to the scene.
    backend
        Firmware backend: ``"compiled"`` (default), ``"interp"`` or ``"ghdl"``.
    sensor
        The sensor model (default: one with a few dead and hot pixels).
    tables
        Calibration tables loaded into the firmware (default: reset values).
    time_scale
        Wall seconds per second of exposure (the detector waits ``exposure ×
        time_scale`` at least; 0 acquires as fast as the simulation runs).
    """

    exposure = Cpt(Signal, value=0.1, kind="config")
    energy_threshold = Cpt(Signal, value=6.0, kind="config")
    threshold = Cpt(Signal, value=0, kind="config")
    roi = Cpt(Signal, value=[0, 0, 0xFFFF, 0xFFFF], kind="config")
    binning = Cpt(Signal, value=False, kind="config")
    backend = Cpt(Signal, value="compiled", kind="config")
    frame_shape = Cpt(Signal, value=[0, 0], kind="config")

    roi_sum = Cpt(Signal, value=0, kind="hinted")
    saturated = Cpt(Signal, value=0, kind="normal")
    histogram = Cpt(Signal, value=[0] * HIST_BINS, kind="normal")
    frame_number = Cpt(Signal, value=-1, kind="normal")

    def __init__(self, *, name: str, scene: Scene, folder: str | Path,
                 params: ChainParams | None = None, pixel_size: PixelSize = 20e-6,
                 backend: str = "compiled", sensor: SensorModel | None = None,
                 tables: ChainTables | None = None, time_scale: float = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        if backend not in BACKENDS:
            raise ValueError(f"{name}: backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        if time_scale < 0:
            raise ValueError(f"{name}: time_scale must be >= 0, got {time_scale}")
        self.scene = scene
        self.folder = Path(folder)
        self.params = params or ChainParams(256, 256, 16)
        self.pixel_size = pixel_size
        self.sensor = sensor or SensorModel(self.params, dead_pixels=4, hot_pixels=2, seed=7)
        self.tables = tables or ChainTables.reset(self.params)
        self.time_scale = time_scale
        self.backend.put(backend)
        self.frame_shape.put([self.params.height, self.params.width])
        self.firmware: Firmware | None = None
        self.writer: FrameWriter | None = None
        self.last_digest: str | None = None
        self.digests: dict[str, str] = {}
        """SHA-256 of every file this detector closed, by path."""
        self.last_counts: np.ndarray | None = None
        """The sensor counts of the last exposure (what went over the link)."""
        self._lock = threading.Lock()

    # -- keys -------------------------------------------------------------------------
    @property
    def image_key(self) -> str:
        """The data key of the frames (external data, not in ``read()``)."""
        return f"{self.name}_image"

    def out_shape(self) -> tuple[int, int]:
        """Shape of the frames the firmware sends with the current binning setting."""
        return self.params.out_shape(bool(self.binning.get()))

    def describe(self) -> dict[str, Any]:
        """Readings plus the external image key."""
        d: dict[str, Any] = dict(super().describe())
        d[self.image_key] = {"source": f"smeflow:firmware:{self.backend.get()}",
                             "shape": list(self.out_shape()), "dtype": "array",
                             "dtype_numpy": np.dtype(np.uint16).str, "external": "STREAM:"}
        return d

    # -- acquisition --------------------------------------------------------------------
    def chain_config(self) -> ChainConfig:
        """The firmware registers for the current configuration signals."""
        x0, y0, x1, y1 = (int(v) for v in self.roi.get())
        return ChainConfig(threshold=int(self.threshold.get()), roi=(x0, y0, x1, y1),
                           binning=bool(self.binning.get()))

    def stage(self) -> list[Any]:
        """Load the configuration into the firmware and open a new HDF5 file."""
        config = self.chain_config()
        backend = str(self.backend.get())
        if self.firmware is None or self.firmware.backend != backend:
            self.firmware = Firmware(self.params, backend)
        self.firmware.configure(config, self.tables)
        self.sensor.threshold = float(self.energy_threshold.get())
        name = f"{self.name}_{time.strftime('%Y%m%d-%H%M%S')}_{uuid.uuid4().hex[:8]}.h5"
        self.writer = FrameWriter(self.folder, name, self.out_shape(), data_key=self.image_key,
                                  attrs={"exposure": float(self.exposure.get()),
                                         "backend": backend})
        staged: list[Any] = super().stage()
        return staged

    def unstage(self) -> list[Any]:
        """Close the HDF5 file (its SHA-256 goes to ``last_digest`` and ``digests``)."""
        if self.writer is not None:
            self.last_digest = self.writer.close()
            self.digests[str(self.writer.path)] = self.last_digest
            self.writer = None
        unstaged: list[Any] = super().unstage()
        return unstaged

    def acquire_frame(self, t: float | None = None) -> np.ndarray:
        """One exposure through the firmware: the frame, also written and published."""
        if self.writer is None or self.firmware is None:
            raise RuntimeError(f"{self.name}: trigger() before stage(); stage the detector "
                               "(bluesky plans do) so it has a file to write to")
        exposure = float(self.exposure.get())
        shape = (self.params.height, self.params.width)
        flux = self.scene.flux_image(shape, self.pixel_size, t=t)
        counts = self.sensor.expose(flux, exposure)
        frame = self.firmware.acquire([counts])[0]
        self.last_counts = counts
        with self._lock:
            self.writer.append(frame.image)
        now = time.time()
        self.roi_sum.put(int(frame.roi_sum), timestamp=now)
        self.saturated.put(int(frame.saturated), timestamp=now)
        self.histogram.put([int(v) for v in frame.histogram], timestamp=now)
        self.frame_number.put(int(frame.frame_number), timestamp=now)
        return frame.image

    def trigger(self) -> DeviceStatus:
        """Expose and read one frame; the status finishes when it is in the file."""
        status = DeviceStatus(self)
        exposure = float(self.exposure.get())

        def work() -> None:
            start = time.monotonic()
            try:
                self.acquire_frame(t=time.time() + exposure * self.time_scale / 2)
                left = exposure * self.time_scale - (time.monotonic() - start)
                if left > 0:
                    time.sleep(left)
            except Exception as exc:
                status.set_exception(exc)
            else:
                status.set_finished()

        threading.Thread(target=work, name=f"{self.name}-exposure", daemon=True).start()
        return status

    def collect_asset_docs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``stream_resource`` (once per file) and ``stream_datum`` for new frames."""
        if self.writer is not None:
            with self._lock:
                yield from self.writer.asset_docs()
