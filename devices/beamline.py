"""A ready beamline: sample stages, rotation stage, fast shutter, beam monitor, the
scene, and the detector with its firmware, built together in one call.

Two sample set-ups share the hardware: ``use_phantom()`` (transmission imaging of a 3D
Shepp–Logan phantom through imaging optics, 20 µm effective pixels) for tomography and
``use_powder()`` (a CeO2 capillary, the detector looking at the diffraction rings directly
with 172 µm pixels, PONI at the detector centre) for diffraction. The device ``sample``
(a :class:`SampleChanger`) swaps them from a plan, ``bps.mv(beamline.sample, "powder")``,
which is how a plan queue or a notebook changes the experiment. The detector's frame files
name the beamline (:data:`BEAMLINE_NAME`, also its runs' ``beamline`` metadata), the
source (:data:`SOURCE_NAME`) and the sample in the beam (NXmx requires the three).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ophyd import Kind

from fpga.designs.layout import DetectorLayout
from fpga.designs.params import ChainParams, detector_params
from geometry import PoniGeometry, photon_energy

from .beam import BeamMonitor
from .checked_signal import CheckedSignal, SettingError
from .detector import FirmwareDetector
from .motion import SimMotor
from .phantom import PhantomSample, shepp_logan_3d
from .powder import CEO2, PowderSample
from .rotation import RotationStage
from .samples import Scene
from .shutter import FastShutter

IMAGING_PIXEL = 20e-6
"""Effective pixel of the imaging optics (m): 256 pixels see 5.1 mm."""
DIFFRACTION_PIXEL = 172e-6
"""Pixel of the detector looking at the rings directly (m), Pilatus-like."""
BEAMLINE_NAME = "smeflow-sim"
"""The simulated beamline's name: its runs' ``beamline`` metadata (``smeflow demo``, the
queue server's RunEngine) and its frame files' instrument (NeXus ``/entry/instrument/name``)."""
SOURCE_NAME = "smeflow-sim storage ring (simulated)"
"""The X-ray source the frame files name (NeXus ``/entry/source/name``): the ring whose
current the beam monitor reads."""


class SampleChanger(CheckedSignal):
    """Which sample is in the beam, by name; putting a name swaps the sample.

    Parameters
    ----------
    name
        Device name (read under it, e.g. in the baseline).
    choices
        Sample name → the function that puts that sample in the beam.
    value
        The sample in the beam at construction.
    """

    def __init__(self, *, name: str, choices: Mapping[str, Callable[[], None]], value: str,
                 **kwargs: Any) -> None:
        if value not in choices:
            raise ValueError(f"{name}: initial sample {value!r} is not one of {sorted(choices)}")
        super().__init__(name=name, value=value, kind=Kind.config, check=_known_sample,
                         **kwargs)
        self._choices = dict(choices)

    def put(self, value: Any, *, force: bool = False, **kwargs: Any) -> None:
        """Swap to sample ``value``; an unknown name is refused before anything changes
        (also by ``set``, at once: ``bps.mv(sample, "typo")`` fails with this error)."""
        value = self.checked(value)
        self._choices[value]()
        super().put(value, force=True, **kwargs)


def _known_sample(changer: Any, value: Any) -> str:
    if not isinstance(value, str) or value not in changer._choices:
        raise SettingError(f"{changer.name}: no sample {value!r}; choose one of "
                           f"{', '.join(map(repr, sorted(changer._choices)))}")
    return value


@dataclass
class Beamline:
    """The devices of one simulated beamline (see ``create``)."""

    sample_x: SimMotor
    sample_y: SimMotor
    rotation: RotationStage
    shutter: FastShutter
    beam: BeamMonitor
    scene: Scene
    det: FirmwareDetector
    phantom: PhantomSample
    powder: PowderSample
    geometry: PoniGeometry
    extra: dict[str, Any] = field(default_factory=dict)
    sample: SampleChanger = field(init=False)
    imaging_energy: float = field(init=False)
    """The beam's photon energy (keV) with the phantom in: the sensor's when the beamline
    was built, or as last set while the phantom was in."""

    def __post_init__(self) -> None:
        self.imaging_energy = self.det.sensor.photon_energy
        self.sample = SampleChanger(name="sample", value="phantom",
                                    choices={"phantom": self._phantom_in,
                                             "powder": self._powder_in})

    @classmethod
    def create(cls, folder: str | Path, *, params: ChainParams | None = None,
               backend: str = "compiled", time_scale: float = 0.01,
               exposure_time_scale: float = 0.0,
               layout: DetectorLayout | None = None) -> Beamline:
        """Build the beamline writing frames into ``folder``. Motion runs ``time_scale``
        wall seconds per physical second; exposures wait ``exposure × exposure_time_scale``.
        ``layout``: a detector of several modules (e.g. ``fpga.designs.layout.PILATUS_6M``)
        instead of the one-chain detector of ``params`` (default
        ``fpga.designs.params.detector_params(256, 256)``: 256×256 pixels, 64 lanes)."""
        if layout is not None and params is not None:
            raise ValueError("Beamline.create: give params or layout, not both")
        p = layout.module if layout is not None else params or detector_params(256, 256)
        rows, cols = layout.shape if layout is not None else (p.height, p.width)
        sx = SimMotor(name="sample_x", limits=(-25.0, 25.0), velocity=10.0,
                      acceleration=100.0, time_scale=time_scale)
        sy = SimMotor(name="sample_y", limits=(-10.0, 10.0), velocity=5.0,
                      acceleration=50.0, time_scale=time_scale)
        rot = RotationStage(name="rotation", time_scale=time_scale)
        shutter = FastShutter(name="shutter", actuation_time=0.01, time_scale=time_scale)
        beam = BeamMonitor(name="beam")
        phantom = PhantomSample(shepp_logan_3d(radius=2.0, mu=1.0),
                                name="3D Shepp-Logan phantom")
        geometry = PoniGeometry(dist=0.12, poni1=rows / 2 * DIFFRACTION_PIXEL,
                                poni2=cols / 2 * DIFFRACTION_PIXEL,
                                pixel1=DIFFRACTION_PIXEL, pixel2=DIFFRACTION_PIXEL,
                                shape=(rows, cols), wavelength=0.5e-10)
        powder = PowderSample(CEO2, geometry, peak_flux=2e4, background=50.0)
        scene = Scene(sample_x=sx, sample_y=sy, rotation=rot, shutter=shutter, beam=beam,
                      sample=phantom)
        det = FirmwareDetector(name="det", scene=scene, folder=folder,
                               params=None if layout is not None else p, layout=layout,
                               pixel_size=IMAGING_PIXEL, backend=backend,
                               time_scale=exposure_time_scale)
        det.instrument_name, det.source_name = BEAMLINE_NAME, SOURCE_NAME
        return cls(sx, sy, rot, shutter, beam, scene, det, phantom, powder, geometry)

    def use_phantom(self) -> None:
        """Tomography set-up: the phantom on the rotation stage, imaging pixels."""
        self.sample.put("phantom")

    def use_powder(self) -> None:
        """Diffraction set-up: the CeO2 powder, direct detection with ``geometry`` (which
        the detector's frame files then record as NXmx: ``det.geometry``), the beam at
        ``geometry``'s wavelength: the sensor counts photons of that energy (0.5 Å: 24.8
        keV), back to ``imaging_energy`` with the phantom."""
        self.sample.put("powder")

    def _phantom_in(self) -> None:
        self.scene.sample = self.phantom
        self.det.sensor.photon_energy = self.imaging_energy
        self.det.pixel_size = IMAGING_PIXEL
        self.det.geometry = None  # (radiography: no diffraction geometry)

    def _powder_in(self) -> None:
        if self.sample.get() == "phantom":
            self.imaging_energy = self.det.sensor.photon_energy
        if self.geometry.wavelength is not None:  # (the rings and the counts: one beam)
            self.det.sensor.photon_energy = photon_energy(self.geometry.wavelength)
        self.scene.sample = self.powder
        self.det.pixel_size = DIFFRACTION_PIXEL
        self.det.geometry = self.geometry

    def detector_geometry(self) -> PoniGeometry:
        """The geometry of the frames as the detector now reads them out: ``geometry``
        binned 2 × 2 while ``det.binning`` is on (pixels twice as large, half the shape,
        the same PONI) — what a diffraction run records for its reduction."""
        return self.geometry.binned(2) if self.det.binning.get() else self.geometry

    def devices(self) -> list[Any]:
        """Every ophyd device, for ``%wa``-style listings and baseline readings."""
        return [self.sample_x, self.sample_y, self.rotation, self.shutter, self.beam,
                self.sample, self.det]

    def close(self) -> None:
        """Stop a running fly acquisition and unstage the detector (its files closed),
        then stop motion, the beam monitor's update thread and the firmware's simulation:
        a fly running on would drive a closed board, which re-configures from reset."""
        try:
            if self.det.fly is not None:
                self.det.fly.cancel()
            if self.det.files.staged:
                self.det.unstage()
        finally:
            for motor in (self.sample_x, self.sample_y, self.rotation):
                motor.stop()
            self.beam.destroy()
            self.det.firmware.close()
