"""The area detector whose firmware is the SME chain, as an ophyd (v1) device.

On ``trigger()`` the detector asks its :class:`~devices.samples.Scene` for the photon
flux, the sensor model counts photons for ``exposure`` seconds, the counts go over the
link into the firmware (``devices.firmware``: interpreter, compiled or GHDL), the readout
backend checks and reassembles the frame. When the RunEngine reads the detector into an
event, the frame is written to the HDF5 file of that event's stream
(``devices.frame_files``: one file per stream, so a detector in the baseline and the
primary stream reads back its own frames in each; a frame no event announces never
reaches a file; a detector read without being staged, as in a ``SupplementalData``
baseline, writes each frame to a file of its own). The event carries the firmware's own
reductions (ROI sum, saturated count, histogram, frame number) and ``link_lost``, the
frames lost on the link before this one (re-taken, see below); the image is external data
(``<name>_image``, announced with ``stream_resource``/``stream_datum`` from
``collect_asset_docs``; the step-scan methods are in ``devices.detector_step``, what the
sensor sees of the scene — flux, counts, the sample's stages — in
``devices.detector_sensing``). A bluesky
``monitor`` of the detector (``monitor_during_wrapper``)
files every frame it acquires into the monitor stream too, announced there
(``devices.monitor_stream``). ``devices.flyer.DetectorFlyer`` makes it a flyer for
``bp.fly``.

Fly scans (``devices.fly``, the flyer methods in ``devices.detector_fly``):
``prepare(FlyParameters(...))``, ``kickoff()``, ``complete()``, and
``describe_collect()``/``collect_pages()`` for a stream declared with
``bps.declare_stream(det, name=..., collect=True)``: the frames of a continuous
acquisition on internal or position-compare triggers, with per-frame reductions, trigger
times and the rotation angle latched at each trigger (data key: the rotation stage's name).

A step-scan frame lost on the link (a packet the readout finds corrupt, or one that never
arrives) is re-exposed up to ``RETAKES`` times, as a detector server re-requests a frame;
after that the trigger fails with ``FirmwareError`` and the run ends with the reason. A
fly frame lost on the link is not re-taken (its trigger has passed): the acquisition goes
on, the next frame's ``link_lost`` counts it and the fly file lists the lost frames
(``dataflow.hdf5.read_lost``; ``devices.fly``).
When a file is closed (``unstage``) the readout backend's counters (``READOUT_COUNTERS``:
good, corrupt and dropped frames, framing errors, stray words, since the staging began)
are written into the file (``dataflow.hdf5.read_counters`` reads them), so a run's files
say what the link lost; a failed trigger's reason carries them too. Each file is a NeXus
file (``dataflow.hdf5``) whose ``NXdetector`` records the exposure (``count_time``), the
pixel size, the energy threshold, the sensor's material and thickness, the counters'
depth and the saturation value; it names the beamline, the source and the sample, its
``end_time`` is when its last frame came and its ``start_time`` its first frame's
trigger (a fly file, opened before its first trigger, writes it when its first frame is
stored: that frame's trigger); every file keeps each
frame's sample stages (``sample_axes``: the rotation stage's angle at the frame's
trigger — a fly's latched angle, a step scan's readback where it stood — and the
``sample_x``/``sample_y`` stages' positions) as the NeXus sample's chain
(``dataflow.hdf5_angles``); with a ``geometry`` it is NXmx
(``devices.frame_nexus``).

Configuration signals (``read_configuration``): ``exposure`` (s), ``energy_threshold``
(keV, the sensor's comparator, within a PILATUS3 X's range for the sensor's material:
2.7 – 18 keV for Si, ``detector_config.THRESHOLD_RANGES``), ``threshold`` (counts, the
firmware's zero suppression), ``roi`` (``[x0, y0, x1, y1]`` in output pixels), ``binning``
(2×2), ``backend`` and ``frame_shape``. They are loaded into the firmware and the sensor
at ``stage()``, as on a real detector, where the configuration is loaded between
acquisitions. Every value is checked when it is put (or ``set``, as ``bps.mv`` does)
against the firmware's own limits (:class:`fpga.designs.reference.ChainConfig`), so a bad
value fails at once with a :class:`DetectorConfigError` naming the signal and the allowed
range, never later inside a run. While staged, a put that would make the recorded
configuration, the firmware and the files disagree is refused the same way
(``detector_config.refuse_while_staged``); ``bps.configure(det, {"roi": [...]})`` loads
``roi`` and ``threshold`` into the firmware before the next exposure, and bluesky records
them in a new descriptor. ``frame_shape`` is read-only: it is the shape of the frames the
firmware sends (``out_shape()``) and follows ``binning``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.device import Staged
from ophyd.utils.errors import RedundantStaging

from dataflow.hdf5 import FrameWriter
from dataflow.hdf5_angles import AngleFrameWriter
from dataflow.hdf5_nexus import EntryNames
from dataflow.packets import ReadoutFrame
from dataflow.pixel_mask import bin_mask
from fpga.designs.layout import DetectorLayout
from fpga.designs.params import GAIN_ONE, HIST_BINS, ChainParams, detector_params
from fpga.designs.reference import ChainConfig, ChainTables
from geometry import PoniGeometry

from .detector_config import (
    LIVE_CONFIG,
    THRESHOLD_RANGES,
    ConfigSignal,
    CountsSignal,
    DetectorConfigError,
    ReadOnlySignal,
    check_backend,
    check_binning,
    check_energy_threshold,
    check_exposure,
    check_roi,
    check_threshold,
    refuse_while_staged,
)
from .detector_fly import FlyScans
from .detector_sensing import SceneSensing
from .detector_step import READOUT_COUNTERS, RETAKES, StepScans
from .firmware import BACKENDS, Firmware
from .fly import FlyAcquisition
from .frame_files import FrameFiles
from .frame_nexus import detector_fields, frames_geometry
from .modular import ModularFirmware
from .monitor_stream import MonitorStream
from .pixel_mask import PixelMaskReader, pixel_mask_bits
from .samples import PixelSize, Scene, pixel_pair
from .sensor import SensorModel

__all__ = ["READOUT_COUNTERS", "RETAKES", "DetectorConfigError", "FirmwareDetector"]

class FirmwareDetector(StepScans, FlyScans, SceneSensing, Device):  # type: ignore[misc]
    """A photon-counting area detector with the SME firmware in the loop.

    Parameters
    ----------
    scene
        Where the photons come from (sample, motors, shutter, beam).
    folder
        The data folder the HDF5 files go to (a catalog's ``raw_dir``).
    params
        Sensor shape and pixels per tick of the firmware (default
        ``fpga.designs.params.detector_params(256, 256)``: 256×256, 64 lanes; that function
        gives the detector's datapath for another shape).
    layout
        A detector of several modules, each with its own firmware board
        (:class:`fpga.designs.layout.DetectorLayout`, e.g. ``PILATUS_6M``), instead of
        ``params``; frames are the layout's shape, its gaps 0 and in the pixel mask.
    workers
        Threads simulating the modules of a multi-module layout at once (default: the
        CPUs; see :mod:`devices.modular`).
    pixel_size
        Pixel pitch in metres, passed to the scene.
    backend
        Firmware backend: ``"compiled"`` (default), ``"interp"`` or ``"ghdl"``.
    sensor
        The sensor model (default: one with a few dead and hot pixels).
    tables
        Calibration tables loaded into the firmware (default: reset dark and gain, and
        the sensor's dead and hot pixels in the mask table — the detector's bad-pixel
        map, as a vendor's calibration delivers it).
    time_scale
        Wall seconds per second of exposure (the detector waits ``exposure ×
        time_scale`` at least; 0 acquires as fast as the simulation runs).
    """

    exposure = Cpt(ConfigSignal, value=0.1, kind="config", check=check_exposure)
    energy_threshold = Cpt(ConfigSignal, value=6.0, kind="config",
                           check=check_energy_threshold)
    threshold = Cpt(ConfigSignal, value=0, kind="config", check=check_threshold)
    roi = Cpt(ConfigSignal, value=[0, 0, 0xFFFF, 0xFFFF], kind="config", check=check_roi)
    binning = Cpt(ConfigSignal, value=False, kind="config", check=check_binning)
    backend = Cpt(ConfigSignal, value="compiled", kind="config", check=check_backend)
    frame_shape = Cpt(ReadOnlySignal, value=[0, 0], kind="config",
                      explain="the [rows, cols] of the frames the firmware sends; it "
                              "follows binning")
    masked_pixels = Cpt(ReadOnlySignal, value=0, kind="config",
                        explain="the pixels of the frames' pixel_mask (gaps, dead and hot "
                                "pixels); it follows the staged configuration")
    """How many pixels the frames' mask marks: a reducer that cannot read the mask (the
    frame files are not on its machine) refuses a run whose detector masks some."""

    roi_sum = Cpt(Signal, value=0, kind="hinted")
    saturated = Cpt(Signal, value=0, kind="normal")
    histogram = Cpt(CountsSignal, value=[0] * HIST_BINS, kind="normal")
    frame_number = Cpt(Signal, value=-1, kind="normal")
    link_lost = Cpt(Signal, value=0, kind="normal")
    """Frames lost on the link (corrupt or missing packets, re-taken) before this one."""
    pixel_mask = Cpt(PixelMaskReader, kind="omitted")
    """The mask stream's device: ``bps.trigger_and_read([det.pixel_mask], name="mask")``
    (``plans.mask.publish_mask``) publishes the gaps and bad pixels with the run."""

    def __init__(self, *, name: str, scene: Scene, folder: str | Path,
                 params: ChainParams | None = None, pixel_size: PixelSize = 20e-6,
                 backend: str = "compiled", sensor: SensorModel | None = None,
                 tables: ChainTables | None = None, time_scale: float = 1.0,
                 layout: DetectorLayout | None = None, workers: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        if backend not in BACKENDS:
            raise ValueError(f"{name}: backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        if time_scale < 0:
            raise ValueError(f"{name}: time_scale must be >= 0, got {time_scale}")
        self.scene = scene
        self.folder = Path(folder)
        if layout is not None and params is not None and params != layout.module:
            raise ValueError(f"{name}: give params or a layout (whose module is the chain's "
                             "params), not both")
        self.params = (layout.module if layout is not None
                       else params or detector_params(256, 256))
        self.layout = layout or DetectorLayout.single(
            self.params, *([sensor.layer] if sensor is not None else []))
        span = THRESHOLD_RANGES.get(self.layout.sensor.material)
        if span is not None:  # (6 keV is below a CdTe sensor's range: start at its end)
            self.energy_threshold.put(
                min(max(float(self.energy_threshold.get()), span[0]), span[1]), force=True)
        self.workers = workers
        self.pixel_size = pixel_size
        self.geometry: PoniGeometry | None = None
        """Where the detector sits and the beam's wavelength (pyFAI's PONI parameters, of
        the sensor's pixels), when known: loaded at ``stage()`` and written into the frame
        files as NXmx (``devices.frame_nexus``; ``Beamline.use_powder`` sets it)."""
        self.instrument_name: str | None = None
        """The beamline's name, which the frame files record (``Beamline.create`` sets it)."""
        self.source_name: str | None = None
        """The X-ray source's name, which the frame files record (``Beamline.create``)."""
        self.sensor = sensor or SensorModel(self.layout, dead_pixels=4 * self.layout.modules,
                                            hot_pixels=2 * self.layout.modules, seed=7)
        if self.sensor.shape != self.layout.shape:
            raise ValueError(f"{name}: the sensor model is {self.sensor.shape}, the detector "
                             f"{self.layout.shape}")
        if self.sensor.layer != self.layout.sensor:  # (the files record the model's)
            raise ValueError(f"{name}: the sensor model's layer is {self.sensor.layer}, the "
                             f"layout's {self.layout.sensor}")
        self.tables = tables or self.bad_pixel_tables()
        self.time_scale = time_scale
        self.backend.put(backend)
        self.frame_shape.put(list(self.out_shape()), force=True)
        self.masked_pixels.put(int(np.count_nonzero(self.pixel_mask_array())), force=True)
        self.binning.subscribe(self._follow_binning, run=False)
        # Power the board on now: building the simulator (compiling or loading the compiled
        # chain) takes up to seconds, which inside stage() would block the RunEngine's loop.
        self.firmware = self._board(backend)
        self.firmware.configure(self.chain_config(), self.tables)
        self._counts_base = dict.fromkeys(READOUT_COUNTERS, 0)
        """Readout counts of this staging from before the firmware's last register load."""
        self._configuring = False
        self.files = FrameFiles(name, self._open_file)
        """The frame files: one per event stream and fly acquisition (``devices.frame_files``)."""
        self._file_shape = self.out_shape()
        self._file_attrs: dict[str, Any] = {"attrs": {}, "detector_fields": {},
                                            "geometry": None}
        self._pending: tuple[np.ndarray, float, float, tuple[float, ...]] | None = None
        """The last trigger's frame, its exposure, when that started and the sample's
        position then (``sample_position``), until an event announces it
        (``collect_asset_docs``)."""
        self.last_counts: np.ndarray | None = None
        """The sensor counts of the last exposure (what went over the link)."""
        self._lock = threading.Lock()
        self.fly: FlyAcquisition | None = None
        """The armed or last fly acquisition (``prepare`` makes one)."""
        self._collected = 0
        self._announced = 0
        self._exposing: threading.Thread | None = None
        self._monitors: dict[Any, MonitorStream] = {}
        """bluesky monitors of the detector, by their callback (``subscribe``)."""

    # -- keys -------------------------------------------------------------------------
    @property
    def image_key(self) -> str:
        """The data key of the frames (external data, not in ``read()``)."""
        return f"{self.name}_image"

    def _board(self, backend: str) -> Firmware | ModularFirmware:
        """The firmware: one board, or one per module of a multi-module layout."""
        if self.layout.modules == 1:
            return Firmware(self.params, backend)
        return ModularFirmware(self.layout, backend, workers=self.workers)

    def out_shape(self) -> tuple[int, int]:
        """Shape of the frames the firmware sends with the current binning setting."""
        return self.shape_for(bool(self.binning.get()))

    def shape_for(self, binning: bool) -> tuple[int, int]:
        """Shape of the frames with ``binning`` on or off (``ValueError`` when the
        firmware has no binning stage)."""
        if self.layout.modules == 1:
            return self.params.out_shape(binning)
        if binning:
            raise ValueError(f"binning: this detector's {self.layout.modules} modules do not "
                             "bin (their firmware has no binning stage)")
        return self.layout.shape

    def bad_pixel_tables(self) -> ChainTables:
        """Reset calibration tables (of the detector's frame) with the sensor's dead and
        hot pixels masked."""
        shape = self.layout.shape
        return ChainTables(np.zeros(shape, np.uint16), np.full(shape, GAIN_ONE, np.uint16),
                           self.sensor.dead_mask | self.sensor.hot_mask)

    def pixel_mask_array(self) -> np.ndarray:
        """NeXus ``pixel_mask`` bits of the frames the firmware sends now (binned like
        them): the gaps between modules, the sensor's dead and hot pixels and whatever
        else the firmware's mask table zeroes (:mod:`dataflow.pixel_mask`)."""
        gaps = self.layout.gap_mask() if self.layout.modules > 1 else None
        bits = pixel_mask_bits(dead=self.sensor.dead_mask, hot=self.sensor.hot_mask,
                               table=self.tables.mask, gaps=gaps)
        return bin_mask(bits) if self.binning.get() else bits

    def _follow_binning(self, *, value: Any, **kwargs: Any) -> None:
        """Keep ``frame_shape`` equal to the shape of the frames (binning changed)."""
        self.frame_shape.put(list(self.shape_for(bool(value))), force=True)

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

    @property
    def digests(self) -> dict[str, str]:
        """SHA-256 of every file this detector closed, by path, in the order closed."""
        return self.files.digests

    @property
    def last_digest(self) -> str | None:
        """SHA-256 of the file this detector closed last."""
        return next(reversed(self.files.digests.values()), None)

    def _configure(self) -> None:
        """Load the configuration signals into the firmware and the sensor (what
        ``stage()`` does, and a trigger without staging)."""
        config = self.chain_config()
        backend = str(self.backend.get())
        bin_factor = 2 if config.binning else 1
        pixel_y, pixel_x = (p * bin_factor for p in pixel_pair(self.pixel_size))
        geometry = frames_geometry(self.geometry, binning=config.binning,  # (before a change)
                                   shape=self.out_shape(), pixel=(pixel_y, pixel_x),
                                   who=self.name)
        if self.firmware.backend != backend:
            old, self.firmware = self.firmware, self._board(backend)
            old.close()  # (a GHDL board's build folder goes with it)
        self.firmware.configure(config, self.tables)
        self._counts_base = dict.fromkeys(READOUT_COUNTERS, 0)
        self.sensor.threshold = float(self.energy_threshold.get())
        self._file_shape = self.out_shape()
        mask = self.pixel_mask_array()
        self._file_attrs = {  # (the exposure: when a file opens, ``_open_file``)
            "attrs": {"backend": backend, "units": "counts"},  # (NXdetector data: NX_ANY)
            "detector_fields": detector_fields(
                pixel=(pixel_y, pixel_x), backend=backend, mask=mask,
                energy_threshold=float(self.energy_threshold.get()),
                sensor=self.sensor.layer),
            "geometry": geometry}
        self.masked_pixels.put(int(np.count_nonzero(mask)), force=True)

    def _open_file(self, name: str, exposure: float, started: float | None,
                   fly: bool) -> FrameWriter:
        """A new frame file ``name`` in the data folder for the configured frames; its
        ``exposure`` attribute and NeXus ``count_time`` are its frames' exposure (a fly's,
        set by ``prepare`` after the staging), not the staging's; ``started``: when its
        first frame's exposure started (NeXus ``start_time``), if known; every file keeps
        the sample's stages at each frame's trigger (``sample_axes``: the NeXus sample's
        chain); the instrument's, the source's and the sample in the beam's names (the
        scene's sample's ``name``) and, with the geometry, the beam's size at the sample
        (the sample's ``beam_size``, NXmx). ``fly``: a fly acquisition's file, opened before its
        first trigger: its ``start_time`` waits for the first frame stored
        (``store_fly_frames``)."""
        attrs, fields = self._file_attrs["attrs"], self._file_attrs["detector_fields"]
        return AngleFrameWriter(
            self.folder, name, self._file_shape, data_key=self.image_key,
            counters=READOUT_COUNTERS, lost_frames=True, attrs={**attrs, "exposure": exposure},
            detector_fields={**fields, "count_time": (exposure, "s")}, start_time=started,
            start_pending=fly, geometry=self._file_attrs["geometry"], names=EntryNames(
                self.instrument_name, self.source_name, getattr(self.scene.sample, "name",
                                                                None)),
            beam_size=getattr(self.scene.sample, "beam_size", None),
            axes=self.sample_axes())

    def _counters(self) -> dict[str, int]:
        """The readout counters now (since the configuration was loaded: ``stage()``)."""
        report = self.firmware.report()
        return {name: int(report[name]) + self._counts_base[name] for name in READOUT_COUNTERS}

    # -- configuration while staged ----------------------------------------------------
    def guard_config_put(self, signal: Signal, value: Any) -> None:
        """Refuse (:class:`DetectorConfigError`, naming the signal) a configuration change
        the staging cannot take, so the recorded configuration, the firmware and the files
        never disagree (``ConfigSignal.put`` asks before storing ``value``;
        ``detector_config.refuse_while_staged`` says what is refused and why)."""
        files: FrameFiles | None = self.__dict__.get("files")  # (None while built)
        if files is not None and files.staged:
            refuse_while_staged(self, signal, value, self._configuring)

    def configure(self, d: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """ophyd's ``configure`` (``bps.configure``, after which bluesky records the new
        configuration in a new descriptor). While staged only ``roi`` and ``threshold``
        may change: every value is checked first (nothing is applied if one is refused),
        then the firmware's registers are loaded after a running exposure finishes — a
        board reset as at ``stage()``: frame numbers restart, the readout counters
        recorded in the files go on counting from the staging."""
        if not self.files.staged:
            result: tuple[dict[str, Any], dict[str, Any]] = super().configure(d)
            return result
        for key, value in d.items():
            signal = getattr(self, key, None)
            if isinstance(signal, ConfigSignal) and key not in LIVE_CONFIG:
                self.guard_config_put(signal, signal.checked(value))
            elif isinstance(signal, ConfigSignal):
                signal.check_value(value)
        exposing = self._exposing
        if exposing is not None and exposing.is_alive():
            exposing.join()
        before = self.chain_config()
        self._configuring = True
        try:
            result = super().configure(d)
        finally:
            self._configuring = False
            if self.chain_config() != before:
                counts = self._counters()
                self.firmware.configure(self.chain_config(), self.tables)
                self._counts_base = counts
        return result

    def stage(self) -> list[Any]:
        """Load the configuration into the firmware; frames from now on go to the files
        of this staging (one per event stream, ``devices.frame_files``). ophyd's
        ``stage_sigs`` are put first (by ``Device.stage``), so the firmware and the files
        get their values, restored at ``unstage``. Staged already, ``RedundantStaging``
        before anything is touched (a reset board would break a running fly acquisition:
        its frame counter restarts)."""
        if self._staged == Staged.yes:
            raise RedundantStaging(f"Device {self.name} is already staged; unstage it "
                                   "first (a fly acquisition it runs goes on meanwhile)")
        staged: list[Any] = super().stage()
        try:
            self._configure()
            self.prepare_scene()
            with self._lock:
                self._pending = None
                self.kicked_off = False
                self._paused_mid_fly = self._resumed_mid_fly = None
                self.files.begin()
        except Exception:
            self.unstage()  # (stage_sigs restored, as ophyd does when a stage fails)
            raise
        return staged

    def unstage(self) -> list[Any]:
        """Stop a running fly acquisition, drop a frame no event announced, record the
        readout counters in the staging's files and close them (their SHA-256 go to
        ``digests``)."""
        try:
            if self.fly is not None:
                self.fly.cancel()
            self.kicked_off = False
            self._paused_mid_fly = self._resumed_mid_fly = None
            counters = self._counters()
            with self._lock:
                self._pending = None
                self.files.end(counters)
        finally:  # (a file that cannot be closed must not leave the detector staged)
            unstaged: list[Any] = super().unstage()
        return unstaged

    def publish_frame(self, frame: ReadoutFrame, now: float) -> None:
        """Put a frame's reductions on the readback signals (what ``read()`` returns)."""
        self.roi_sum.put(int(frame.roi_sum), timestamp=now)
        self.saturated.put(int(frame.saturated), timestamp=now)
        self.histogram.put([int(v) for v in frame.histogram], timestamp=now)
        self.frame_number.put(int(frame.frame_number), timestamp=now)
        self.link_lost.put(int(frame.lost_before), timestamp=now)

    def subscribe(self, callback: Any, event_type: str | None = None,
                  run: bool = True) -> Any:
        """ophyd's ``subscribe``; without an event type it is a bluesky ``monitor``
        (``devices.monitor_stream``): from now on every frame the detector acquires is
        filed into the monitor stream's own file and announced there, then bluesky's
        ``callback`` emits its event. Outside a RunEngine monitor that is an error."""
        if event_type is not None:
            return super().subscribe(callback, event_type=event_type, run=run)
        monitor = MonitorStream.attach(self.name, callback)
        with self._lock:
            self._monitors[callback] = monitor
        return callback

    def clear_sub(self, cb: Any, event_type: str | None = None) -> None:
        """ophyd's ``clear_sub``, ending a monitor subscribed with ``cb`` (``unmonitor``)."""
        with self._lock:
            monitor = self._monitors.pop(cb, None)
        if monitor is None:
            super().clear_sub(cb, event_type=event_type)
