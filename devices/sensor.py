"""Model of the detector's sensor ASIC: photon flux → counts → link words for the firmware.

Counting model (single-photon-counting pixel detector, Pilatus/Medipix style)
-----------------------------------------------------------------------------
Each photon deposits ``photon_energy`` (keV); the pixel's front end measures it with a
Gaussian error of ``energy_sigma`` and counts the photon when the measured energy is above
the pixel's threshold ``T_p = threshold + δ_p``, where ``δ_p ~ N(0, threshold_dispersion)``
is the pixel's residual threshold offset after trimming (fixed per pixel, drawn from the
seed). The counting efficiency of pixel p is therefore

    ε_p = P(E + noise > T_p) = ½ · erfc((T_p − E) / (√2 · σ))

(1 far below the photon energy, ½ at it, 0 far above; a step when σ = 0). Photons arrive
independently, so the counts of a pixel with flux Φ_p (photons/s) exposed for t seconds
are Poisson with mean λ = ε_p · Φ_p · t (a thinned Poisson process), clipped at the
counter depth 2**20 − 1 (``PIXEL_MAX``).

Drawing the counts: exact Poisson draws for means below ``NORMAL_MIN_MEAN`` (10); above
it, the Cornish–Fisher expansion of the Poisson quantile in a standard normal ``z``,
``λ + √(λ − 1/12) z + (z² − 1)/6 + (z − z³)/(72√λ)``, rounded to the nearest integer
(the −1/12, Sheppard's correction, takes out the variance the rounding adds). It has the
Poisson mean, variance, skewness and excess kurtosis to first order, and its distribution
function differs from Poisson's by at most 0.025 % at λ = 10, 0.009 % at 20 and 0.001 %
at 100 (computed exactly from the normal distribution function; the sensor tests check
samples). Both laws are drawn in one compiled pass over the frame from one 64-bit random
word per pixel (``devices.counting``), a counter-based word of (noise key, exposure
number, pixel): every exposure draws fresh noise, and a seed gives the same frames
whatever thread draws them. That pass is what lets a megapixel detector keep up with its
firmware (about 10 ms per 1024×1024 frame of a diffraction pattern, most means below 10;
6 ms when its means are those of the exposure before: ``expose``).

Not modelled: the sensor's absorption (its quantum efficiency: the flux is what reaches
the comparators), charge sharing between pixels, count-rate dead time (pile-up) and the
energy spectrum of the beam (monochromatic beam assumed). The sensor's material and
thickness (``layer``: the layout's, ``fpga.designs.layout.SensorLayer``, 450 µm of silicon
unless told) describe the detector the model stands for; the frame files record them.

Defects, at positions drawn once from the seed: dead pixels always read 0; hot pixels
count at ``hot_rate`` counts/s on top of any photons (so they saturate in long
exposures).

The link (``devices.sensor_link.link_stream``, re-exported here) then sends a sequence of
count frames to the firmware as ``lanes`` pixels per tick, with the flags and gaps of
docs/firmware.md ("Inputs").
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import numpy as np
import numpy.typing as npt

from fpga.designs.layout import PILATUS_SENSOR, DetectorLayout, SensorLayer
from fpga.designs.params import PIXEL_MAX, ChainParams

from .counting import NORMAL_MIN_MEAN, CounterWords, KeptTerms, draw_counts
from .sensor_link import LinkStream, _count, frame_link, link_stream

_Out = TypeVar("_Out", npt.NDArray[np.uint32], npt.NDArray[np.int64])

_LAM_CAP = 4.0 * PIXEL_MAX
"""Poisson means above this always saturate the counter (the mean is 4× the counter depth,
over a thousand standard deviations above it): capping keeps ``Generator.poisson`` exact
after saturation and away from its overflow limit."""


def counting_efficiency(photon_energy: float, threshold: npt.ArrayLike,
                        energy_sigma: float) -> npt.NDArray[np.float64]:
    """Fraction of photons of ``photon_energy`` counted by pixels with threshold(s)
    ``threshold`` and energy resolution (rms) ``energy_sigma``, all in keV:
    ``½·erfc((T − E)/(√2·σ))``; a step (½ at ``T == E``) when ``σ == 0``."""
    t = np.asarray(threshold, dtype=np.float64)
    if energy_sigma == 0:
        return np.where(t < photon_energy, 1.0, np.where(t > photon_energy, 0.0, 0.5))
    z = (t - photon_energy) / (math.sqrt(2.0) * energy_sigma)
    erfc = np.frompyfunc(math.erfc, 1, 1)
    return np.asarray(0.5 * erfc(z), dtype=np.float64)


def _positive(name: str, v: float, zero_ok: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a number, not {v!r}")
    f = float(v)
    if not math.isfinite(f) or f < 0 or (f == 0 and not zero_ok):
        raise ValueError(f"{name} must be finite and {'>= 0' if zero_ok else '> 0'}, not {v!r}")
    return f


@dataclass(frozen=True, eq=False)
class _Kept:
    """The means of the last exposure of a flux image that cannot change (``_frozen``),
    and, from the image's second exposure on, what the counting pass keeps of them
    (``draw_counts(kept=…)``), for the next exposures with the same means."""

    flux: npt.NDArray[np.floating]
    efficiency: float | npt.NDArray[np.float64]
    """The counting pass's efficiency object (a new one whenever it changes)."""
    scale: float
    exposure: float
    hot_rate: float
    """The hot pixels' rate (a public attribute of the model, which may change)."""
    terms: KeptTerms | None
    """What the pass kept, or ``None`` after one exposure (nothing kept for a one-off
    image)."""


def _frozen(a: npt.NDArray[Any]) -> bool:
    """Whether nothing can change ``a``'s values: it is read-only, and so is every array
    it is a view of, down to memory that is an immutable ``bytes`` object
    (``devices.samples.frozen_image``). A read-only array that owns its memory is not:
    numpy lets its owner make it writeable again."""
    base: object = a
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return False
        base = base.base
    return isinstance(base, bytes)


class SensorModel:
    """A photon-counting sensor of ``params.height × params.width`` pixels (of the whole
    frame of a multi-module ``DetectorLayout``; its gap pixels are never sent).

    Parameters
    ----------
    params
        Frame shape (the firmware's build parameters), or the detector's layout.
    layer
        The sensor's material and thickness (default: ``params``'s when it is a layout,
        else :data:`~fpga.designs.layout.PILATUS_SENSOR`); recorded, not used in the
        counts (no absorption is modelled).
    photon_energy, threshold, energy_sigma, threshold_dispersion
        Beam energy, counting threshold, energy resolution (rms) of the pixel front end and
        rms pixel-to-pixel threshold spread after trimming, in keV (see the module text).
        ``threshold`` and ``photon_energy`` may be changed later (the per-pixel offsets
        stay).
    dead_pixels, hot_pixels
        Number of defective pixels of each kind, at positions drawn from ``seed``.
    hot_rate
        Counts/s of a hot pixel (on top of photons).
    seed
        Seeds both the fixed per-pixel properties and the stream of Poisson noise: two
        models with the same arguments give the same frames (the n-th exposure of one is
        the n-th of the other).
    """

    def __init__(self, params: ChainParams | DetectorLayout, *, photon_energy: float = 12.0,
                 threshold: float = 6.0, energy_sigma: float = 0.5,
                 threshold_dispersion: float = 0.0, dead_pixels: int = 0, hot_pixels: int = 0,
                 hot_rate: float = 1e6, seed: int = 0,
                 layer: SensorLayer | None = None) -> None:
        if layer is not None and not isinstance(layer, SensorLayer):
            raise ValueError(f"SensorModel: layer must be a SensorLayer, not {layer!r}")
        self.layer = layer or (params.sensor if isinstance(params, DetectorLayout)
                               else PILATUS_SENSOR)
        """The sensor's material and thickness (see the module docstring)."""
        if isinstance(params, DetectorLayout):
            self.shape: tuple[int, int] = params.shape
        elif isinstance(params, ChainParams):
            self.shape = (params.height, params.width)
        else:
            raise ValueError(f"SensorModel: params must be a ChainParams or a DetectorLayout, "
                             f"not {params!r}")
        self.params = params
        n = self.shape[0] * self.shape[1]
        self._photon_energy = _positive("photon_energy", photon_energy)
        self._threshold = _positive("threshold", threshold, zero_ok=True)
        self.energy_sigma = _positive("energy_sigma", energy_sigma, zero_ok=True)
        self.threshold_dispersion = _positive("threshold_dispersion", threshold_dispersion,
                                              zero_ok=True)
        n_dead = _count("dead_pixels", dead_pixels, n)
        n_hot = _count("hot_pixels", hot_pixels, n - n_dead)
        self._hot_rate = _positive("hot_rate", hot_rate, zero_ok=True)
        if n > 1 << 32:
            raise ValueError(f"SensorModel: {n} pixels, more than 2**32")
        fixed_seq, noise_seq = np.random.SeedSequence(seed).spawn(2)
        fixed = np.random.default_rng(fixed_seq)
        self._noise_key = int(noise_seq.generate_state(1, np.uint64)[0])
        self._frame = 0
        self._frame_lock = threading.Lock()
        # Drawn even without dispersion, so the defect positions do not depend on it.
        self._offset = self.threshold_dispersion * fixed.standard_normal(self.shape)
        where = fixed.choice(n, n_dead + n_hot, replace=False)
        self.dead_mask = np.zeros(self.shape, bool)
        self.hot_mask = np.zeros(self.shape, bool)
        self.dead_mask.flat[where[:n_dead]] = True
        self.hot_mask.flat[where[n_dead:]] = True
        self.dead_mask.flags.writeable = False
        self.hot_mask.flags.writeable = False
        self._hot_at = np.flatnonzero(self.hot_mask)   # what the counting pass takes
        self._dead_at = np.flatnonzero(self.dead_mask)
        self._hot_at.flags.writeable = False   # (the pass would take a read-only view a frame)
        self._dead_at.flags.writeable = False
        self._kept: _Kept | None = None
        self._kept_lock = threading.Lock()
        """Held while a pass keeps terms or reads them (their buffers are refilled when
        the means change)."""
        self._update_efficiency()

    def _update_efficiency(self) -> None:
        if self.threshold_dispersion:
            eff = counting_efficiency(self._photon_energy, self._threshold + self._offset,
                                      self.energy_sigma)
        else:  # one threshold for all pixels: one erfc
            eff = np.full(self.shape, counting_efficiency(
                self._photon_energy, self._threshold, self.energy_sigma), dtype=np.float64)
        eff.flags.writeable = False
        self._efficiency = eff
        # one number for the counting pass when every pixel has the same efficiency
        self._pass_efficiency: float | npt.NDArray[np.float64] = \
            eff.ravel() if self.threshold_dispersion else float(eff.flat[0])

    @property
    def efficiency(self) -> npt.NDArray[np.float64]:
        """Per-pixel counting efficiency at the current threshold and energy."""
        return self._efficiency

    @property
    def hot_rate(self) -> float:
        """Counts/s of a hot pixel on top of the photons (finite, >= 0)."""
        return self._hot_rate

    @hot_rate.setter
    def hot_rate(self, value: float) -> None:
        self._hot_rate = _positive("hot_rate", value, zero_ok=True)

    @property
    def threshold(self) -> float:
        """Counting threshold (keV)."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._threshold = _positive("threshold", value, zero_ok=True)
        self._update_efficiency()

    @property
    def photon_energy(self) -> float:
        """Photon energy of the (monochromatic) beam (keV)."""
        return self._photon_energy

    @photon_energy.setter
    def photon_energy(self, value: float) -> None:
        self._photon_energy = _positive("photon_energy", value)
        self._update_efficiency()

    def expected_counts(self, flux: npt.ArrayLike, exposure: float) -> npt.NDArray[np.float64]:
        """Mean counts per pixel (before the counter saturates): ``ε·Φ·t``, plus
        ``hot_rate·t`` on hot pixels, 0 on dead pixels."""
        phi = self._checked_flux(flux)
        t = _positive("exposure", exposure)
        lam = self._efficiency * phi * t
        lam[self.hot_mask] += self.hot_rate * t
        lam[self.dead_mask] = 0.0
        return lam

    def reserve_frames(self, n: int) -> int:
        """The noise numbers of the next ``n`` exposures, taken now: the first (the others
        follow it, modulo 2**32); the next exposure without ``frame`` takes the number
        after them. For a caller that draws those exposures in any order or on several
        threads (``expose(…, frame=first + k)``), whose frames then have the noise they
        would have had drawn one after the other."""
        _count("n", n, 1 << 32)
        with self._frame_lock:
            first = self._frame
            self._frame = (first + n) % (1 << 32)
        return first

    @overload
    def expose(self, flux: npt.ArrayLike, exposure: float, *, scale: float = 1.0,
               out: None = None, frame: int | None = None) -> npt.NDArray[np.uint32]: ...

    @overload
    def expose(self, flux: npt.ArrayLike, exposure: float, *, scale: float = 1.0,
               out: _Out, frame: int | None = None) -> _Out: ...

    @overload
    def expose(self, flux: npt.ArrayLike, exposure: float, *, scale: float = 1.0,
               out: npt.NDArray[np.uint32 | np.int64] | None, frame: int | None = None
               ) -> npt.NDArray[np.uint32 | np.int64]: ...

    def expose(self, flux: npt.ArrayLike, exposure: float, *, scale: float = 1.0,
               out: npt.NDArray[np.uint32 | np.int64] | None = None,
               frame: int | None = None) -> npt.NDArray[np.uint32 | np.int64]:
        """Counts of one exposure of ``exposure`` seconds to ``scale × flux`` (photons/s
        per pixel, ``height × width``): Poisson, saturating at 2**20 − 1, with dead and hot
        pixels (one compiled pass, ``devices.counting.draw_counts``; ``scale``, e.g. the
        beam current over its nominal value, is applied in that pass, with no copy of
        ``flux``). ``out``: a C-contiguous ``height × width`` ``uint32`` or ``int64`` array
        to draw into and return (the frame of a link stream, ``frame_link``); default a
        new ``uint32`` array.

        A flux image nothing can change (read-only down to memory nobody can write:
        ``devices.samples.frozen_image``, the image a sample keeps while it stays put)
        exposed again with the same ``exposure``,
        ``scale`` and efficiency has the same means: from the image's second exposure
        on, what the counting pass keeps of each exposure's means is kept (``KeptTerms``:
        about 10 bytes a pixel, until another image comes; an exposure with other means
        keeps its own in the same buffers, so a beam scale that drifts every few frames
        costs one computing pass per change) and the next exposures with the same means
        read them back instead of computing them — the same counts, 40 % less time.

        ``frame``: the exposure's noise number, one that ``reserve_frames`` gave (default:
        the next one); exposures of the same means and noise number have the same counts."""
        phi = self._check_flux(flux, copy=False)
        t = _positive("exposure", exposure)
        scale = _positive("scale", scale, zero_ok=True)
        if out is None:
            counts: npt.NDArray[np.uint32 | np.int64] = np.empty(self.shape, dtype=np.uint32)
        elif (not isinstance(out, np.ndarray) or out.shape != self.shape
              or out.dtype not in (np.uint32, np.int64) or not out.flags.c_contiguous
              or not out.flags.writeable):
            got = (f"{out.dtype} of shape {out.shape}" if isinstance(out, np.ndarray)
                   else repr(out))
            raise ValueError(f"expose: out must be a writeable C-contiguous {self.shape} "
                             f"uint32 or int64 array, got {got}")
        else:
            counts = out
        if frame is None:
            with self._frame_lock:  # each exposure its own noise, whichever thread asks
                frame = self._frame
                self._frame = (frame + 1) % (1 << 32)
        elif isinstance(frame, bool) or not isinstance(frame, int | np.integer):
            raise ValueError(f"expose: frame must be an int (a noise number from "
                             f"reserve_frames), not {frame!r}")
        else:
            frame = int(frame) % (1 << 32)
        efficiency, hot_rate = self._pass_efficiency, self._hot_rate
        if not _frozen(phi):
            bad = self._draw(phi, efficiency, t, hot_rate, frame, counts, scale, None, False)
        else:  # the means may be those of the last exposures
            with self._kept_lock:
                kept, terms, ready = self._kept, None, False
                seen = kept is not None and kept.flux is phi
                if seen and kept is not None and kept.terms is not None \
                        and kept.efficiency is efficiency and kept.scale == scale \
                        and kept.exposure == t and kept.hot_rate == hot_rate:
                    terms, ready = kept.terms, True
                elif seen and kept is not None:  # the image again, with new means (the
                    # beam's scale drifts): keep this exposure's terms for the next ones,
                    # in the buffers of the last ones when there are some
                    terms = kept.terms if kept.terms is not None else KeptTerms(phi.size)
                    self._kept = None
                else:
                    self._kept = _Kept(phi, efficiency, scale, t, hot_rate, None)
                bad = self._draw(phi, efficiency, t, hot_rate, frame, counts, scale, terms,
                                 ready)
                if terms is not None and not ready and bad < 0:
                    self._kept = _Kept(phi, efficiency, scale, t, hot_rate, terms)
        if bad >= 0:
            y, x = divmod(bad, self.shape[1])
            value = phi[y, x]
            if not np.isfinite(value):
                raise ValueError(f"flux must be finite (found {value} at pixel (y={y}, x={x}))")
            raise ValueError(f"flux must be >= 0, got {value} at pixel (y={y}, x={x})")
        return counts

    def _draw(self, phi: npt.NDArray[np.floating], efficiency: float | npt.NDArray[np.float64],
              t: float, hot_rate: float, frame: int, counts: npt.NDArray[np.uint32 | np.int64],
              scale: float, terms: KeptTerms | None, ready: bool) -> int:
        """The counting pass of one exposure (``draw_counts``'s return)."""
        return draw_counts(phi.ravel(), efficiency, self._hot_at, self._dead_at, t, hot_rate,
                           _LAM_CAP, PIXEL_MAX, CounterWords(self._noise_key, frame),
                           counts.ravel(), scale=scale, kept=terms, kept_ready=ready)

    def frames(self, flux: npt.ArrayLike, exposure: float, n: int) -> list[npt.NDArray[np.uint32]]:
        """``n`` successive exposures of the same flux."""
        _count("n", n, 1 << 31)
        return [self.expose(flux, exposure) for _ in range(n)]

    def _check_flux(self, flux: npt.ArrayLike, copy: bool = True) -> npt.NDArray[np.floating]:
        """``flux`` as a float array of the sensor shape (a copy unless ``copy`` is false
        and it already is one); ``expose`` checks the values in its compiled pass."""
        a = np.asarray(flux)
        if a.shape != self.shape:
            raise ValueError(f"flux must have the sensor shape {self.shape}, got {a.shape}")
        if a.dtype.kind not in "fiu":  # (not issubdtype: µs a frame; and no timedelta64)
            raise ValueError(f"flux must be a real array, got dtype {a.dtype}")
        if not copy and a.dtype in (np.float32, np.float64):
            return np.ascontiguousarray(a)
        return a.astype(np.float64)

    def _checked_flux(self, flux: npt.ArrayLike) -> npt.NDArray[np.float64]:
        phi = self._check_flux(flux).astype(np.float64, copy=False)
        if not np.isfinite(phi).all():
            raise ValueError("flux must be finite (found NaN or inf)")
        if (phi < 0).any():
            y, x = np.argwhere(phi < 0)[0]
            raise ValueError(f"flux must be >= 0, got {phi[y, x]} at pixel (y={y}, x={x})")
        return phi


__all__ = ["NORMAL_MIN_MEAN", "LinkStream", "SensorModel", "counting_efficiency", "frame_link",
           "link_stream"]
