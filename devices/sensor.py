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
firmware (about 10 ms per 1024×1024 frame of a diffraction pattern, most means below 10).

Not modelled: charge sharing between pixels, count-rate dead time (pile-up) and the
energy spectrum of the beam (monochromatic beam assumed).

Defects, at positions drawn once from the seed: dead pixels always read 0; hot pixels
count at ``hot_rate`` counts/s on top of any photons (so they saturate in long
exposures).

The link (``link_stream``) then sends a sequence of count frames to the firmware as
``lanes`` pixels per tick, with the flags and gaps of docs/firmware.md ("Inputs").
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import numpy as np
import numpy.typing as npt

from fpga.designs.layout import DetectorLayout
from fpga.designs.params import PIXEL_MAX, ChainParams
from fpga.designs.reference import pad_lines

from .counting import NORMAL_MIN_MEAN, CounterWords, draw_counts

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


def _count(name: str, v: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or not 0 <= v <= hi:
        raise ValueError(f"{name} must be an int in 0 … {hi}, not {v!r}")
    return int(v)


@dataclass(frozen=True, eq=False)
class _KeptTerms:
    """The means of the last exposure of a flux image that cannot change (``_frozen``),
    and, from the image's second exposure on, the first terms of their draws
    (``draw_counts(exps=…)``), for the next exposures with the same means."""

    flux: npt.NDArray[np.floating]
    efficiency: float | npt.NDArray[np.float64]
    """The counting pass's efficiency object (a new one whenever it changes)."""
    scale: float
    exposure: float
    hot_rate: float
    """The hot pixels' rate (a public attribute of the model, which may change)."""
    exps: npt.NDArray[np.float64] | None
    """The terms, or ``None`` after one exposure (nothing kept for a one-off image)."""


def _frozen(a: npt.NDArray[Any]) -> bool:
    """Whether nothing can change ``a``'s values: it is read-only, and so is every array
    it is a view of (a sample's cached flux image; a read-only view of a writeable array
    is not)."""
    base: object = a
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return False
        base = base.base
    return base is None


class SensorModel:
    """A photon-counting sensor of ``params.height × params.width`` pixels (of the whole
    frame of a multi-module ``DetectorLayout``; its gap pixels are never sent).

    Parameters
    ----------
    params
        Frame shape (the firmware's build parameters).
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
                 hot_rate: float = 1e6, seed: int = 0) -> None:
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
        self.hot_rate = _positive("hot_rate", hot_rate, zero_ok=True)
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
        self._kept: _KeptTerms | None = None
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

    @overload
    def expose(self, flux: npt.ArrayLike, exposure: float, *, scale: float = 1.0,
               out: None = None) -> npt.NDArray[np.uint32]: ...

    @overload
    def expose(self, flux: npt.ArrayLike, exposure: float, *, scale: float = 1.0,
               out: _Out) -> _Out: ...

    @overload
    def expose(self, flux: npt.ArrayLike, exposure: float, *, scale: float = 1.0,
               out: npt.NDArray[np.uint32 | np.int64] | None
               ) -> npt.NDArray[np.uint32 | np.int64]: ...

    def expose(self, flux: npt.ArrayLike, exposure: float, *, scale: float = 1.0,
               out: npt.NDArray[np.uint32 | np.int64] | None = None
               ) -> npt.NDArray[np.uint32 | np.int64]:
        """Counts of one exposure of ``exposure`` seconds to ``scale × flux`` (photons/s
        per pixel, ``height × width``): Poisson, saturating at 2**20 − 1, with dead and hot
        pixels (one compiled pass, ``devices.counting.draw_counts``; ``scale``, e.g. the
        beam current over its nominal value, is applied in that pass, with no copy of
        ``flux``). ``out``: a C-contiguous ``height × width`` ``uint32`` or ``int64`` array
        to draw into and return (the frame of a link stream, ``frame_link``); default a
        new ``uint32`` array.

        A flux image nothing can change (read-only, and so is what it is a view of: the
        image a sample keeps while it stays put) exposed again with the same ``exposure``,
        ``scale`` and efficiency has the same means: from the image's second exposure
        on, each exposure's first terms of the draws are kept (8 bytes a pixel, until
        another image comes; an exposure with other means keeps its own, so a beam
        scale that drifts every few frames costs one computing pass per change) and the
        next exposures with the same means read them back instead of computing them —
        the same counts, a fifth less time."""
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
        with self._frame_lock:  # each exposure its own noise, whichever thread asks
            frame = self._frame
            self._frame = (frame + 1) % (1 << 32)
        efficiency, hot_rate = self._pass_efficiency, float(self.hot_rate)
        kept, exps, ready = self._kept, None, False
        if _frozen(phi):  # the means may be those of the last exposures
            seen = kept is not None and kept.flux is phi
            same = (seen and kept is not None and kept.efficiency is efficiency
                    and kept.scale == scale and kept.exposure == t
                    and kept.hot_rate == hot_rate)
            if same and kept is not None and kept.exps is not None:
                exps, ready = kept.exps, True
            elif seen:  # the image again, with these means or new ones (the beam's scale
                # drifts): keep this exposure's terms for the next ones
                exps = np.empty(phi.size)
            else:
                self._kept = _KeptTerms(phi, efficiency, scale, t, hot_rate, None)
        bad = draw_counts(phi.ravel(), efficiency, self._hot_at, self._dead_at,
                          t, hot_rate, _LAM_CAP, PIXEL_MAX,
                          CounterWords(self._noise_key, frame), counts.ravel(), scale=scale,
                          exps=exps, exps_ready=ready)
        if exps is not None and not ready and bad < 0:
            self._kept = _KeptTerms(phi, efficiency, scale, t, hot_rate, exps)
        if bad >= 0:
            y, x = divmod(bad, self.shape[1])
            value = phi[y, x]
            if not np.isfinite(value):
                raise ValueError(f"flux must be finite (found {value} at pixel (y={y}, x={x}))")
            raise ValueError(f"flux must be >= 0, got {value} at pixel (y={y}, x={x})")
        return counts

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
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
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


@dataclass(frozen=True, eq=False)
class LinkStream:
    """Per-tick stimulus of the firmware's ``link`` bus for a sequence of frames.

    ``valid``, ``sof``, ``eol`` are ``bool`` arrays of length ``ticks``; ``data`` is
    ``(ticks, lanes)`` ``int64`` (all fields 0 on idle ticks). ``sof_ticks[i]`` is the tick
    of frame i's first word (the timestamp the firmware puts in its header),
    ``last_ticks[i]`` that of its last word.
    """

    valid: npt.NDArray[np.bool_]
    sof: npt.NDArray[np.bool_]
    eol: npt.NDArray[np.bool_]
    data: npt.NDArray[np.int64]
    sof_ticks: npt.NDArray[np.int64]
    last_ticks: npt.NDArray[np.int64]

    @property
    def ticks(self) -> int:
        """Length of the stream in ticks."""
        return int(self.valid.shape[0])

    def stimulus(self, bus: str = "link", start: int = 0, stop: int | None = None
                 ) -> dict[str, npt.NDArray[np.generic]]:
        """Ticks ``start`` … ``stop − 1`` as ``sme.Simulator.run_batch`` stimulus:
        ``{"<bus>.valid", "<bus>.sof", "<bus>.eol", "<bus>.data"}`` → arrays (views)."""
        sl = slice(start, stop)
        return {f"{bus}.valid": self.valid[sl], f"{bus}.sof": self.sof[sl],
                f"{bus}.eol": self.eol[sl], f"{bus}.data": self.data[sl]}


def link_stream(frames: Sequence[npt.ArrayLike] | npt.NDArray[np.integer], params: ChainParams,
                *, lead_idle: int = 0, idle_prob: float = 0.0, tail_idle: int = 0,
                seed: int | np.random.Generator | None = 0,
                reuse: LinkStream | None = None) -> LinkStream:
    """Serialise count frames into link words.

    Word c of line y carries pixels ``(y, c·K … c·K + K − 1)`` (the lanes past the line's
    end, when K does not divide the width, are 0); ``sof`` is set on each frame's first
    word, ``eol`` on the last word of every line. Idle ticks: ``lead_idle``
    before the first frame, ``params.frame_gap`` after every frame (also the last, so the
    firmware can finish its packet), ``tail_idle`` more at the end, and, inside frames,
    before each word but a frame's first a geometric number of idle ticks
    (``P(k) = idle_prob**k · (1 − idle_prob)``, drawn from ``seed``) to exercise ``valid``
    gaps.

    ``reuse``: a stream its caller is done with. When it has the ticks and frames this
    call makes (built for as many frames of the same ``params`` with the same idle ticks
    and no random ones), its words are overwritten with ``frames`` and it is returned —
    no new buffers (a megapixel frame's words are 8 MB, and the pages of a fresh buffer
    cost more than the copy); otherwise a new stream is made.
    """
    k, wpf = params.lanes, params.words_per_frame
    items = _check_frames(frames, params)
    n_frames = len(items)
    lead_idle = _count("lead_idle", lead_idle, 1 << 40)
    tail_idle = _count("tail_idle", tail_idle, 1 << 40)
    if (isinstance(idle_prob, bool) or not isinstance(idle_prob, int | float)
            or not 0.0 <= idle_prob < 1.0):
        raise ValueError(f"idle_prob must be a number in [0, 1), not {idle_prob!r}")
    if reuse is not None and idle_prob == 0 and _fits(reuse, params, n_frames, lead_idle,
                                                      tail_idle):
        for i, frame in enumerate(items):
            _put_words(reuse.data, int(reuse.sof_ticks[i]), frame, params)
        return reuse
    link, tick = _layout(n_frames, params, lead_idle, idle_prob, tail_idle, seed)
    if idle_prob > 0:
        link.data[tick] = np.stack([pad_lines(f, params) for f in items]).reshape(tick.size, k)
    else:  # each frame's words are consecutive ticks: one slice copy per frame
        for i, frame in enumerate(items):
            _put_words(link.data, int(tick[i * wpf]), frame, params)
    return link


def _layout(n_frames: int, params: ChainParams, lead_idle: int, idle_prob: float,
            tail_idle: int, seed: int | np.random.Generator | None
            ) -> tuple[LinkStream, npt.NDArray[np.int64]]:
    """The ticks and flags of a link stream of ``n_frames`` frames (``link_stream``'s
    arguments, checked), its words all 0, and the tick of each word."""
    k, wpl, wpf = params.lanes, params.words_per_line, params.words_per_frame
    n_words = n_frames * wpf
    # Idle ticks before each word.
    gaps = np.zeros(n_words, dtype=np.int64)
    if idle_prob > 0 and n_words:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        gaps = rng.geometric(1.0 - idle_prob, n_words).astype(np.int64) - 1
    starts = np.arange(n_frames) * wpf
    gaps[starts] = params.frame_gap
    if n_frames:
        gaps[0] = lead_idle
    tick = np.cumsum(gaps + 1) - 1
    total = (int(tick[-1]) + 1 + params.frame_gap if n_words else lead_idle) + tail_idle
    valid = np.zeros(total, bool)
    sof = np.zeros(total, bool)
    eol = np.zeros(total, bool)
    data = np.zeros((total, k), np.int64)
    valid[tick] = True
    sof[tick[starts]] = True
    eol[tick[wpl - 1::wpl]] = True
    link = LinkStream(valid=valid, sof=sof, eol=eol, data=data, sof_ticks=tick[starts].copy(),
                      last_ticks=tick[starts + wpf - 1].copy())
    return link, tick


def frame_link(params: ChainParams, reuse: LinkStream | None = None
               ) -> tuple[LinkStream, npt.NDArray[np.int64]] | None:
    """A one-frame link stream (as ``link_stream`` makes it) and its frame's words as a
    ``(height, width)`` view, for a sensor to draw the counts into (``SensorModel.expose(…,
    out=…)``): no counts array and no copy into the link. ``reuse``: a one-frame stream
    its caller is done with, returned again when it fits. ``None`` when the lines are
    padded (``params.lanes`` does not divide the width: the frame is not one block of the
    words)."""
    if params.pad:
        return None
    if reuse is None or not _fits(reuse, params, 1, 0, 0):  # (words 0 until drawn into)
        reuse = _layout(1, params, 0, 0.0, 0, None)[0]
    view = reuse.data[:params.words_per_frame].reshape(params.height, params.width)
    return reuse, view


def _fits(link: LinkStream, params: ChainParams, n_frames: int, lead_idle: int,
          tail_idle: int) -> bool:
    """Whether ``link`` has the ticks of ``n_frames`` frames of ``params`` with these idle
    ticks and none inside the frames (``link_stream(reuse=…)`` may then refill it)."""
    wpf, step = params.words_per_frame, params.words_per_frame + params.frame_gap
    firsts = lead_idle + step * np.arange(n_frames, dtype=np.int64)
    return (isinstance(link, LinkStream) and link.ticks == lead_idle + n_frames * step + tail_idle
            and link.data.shape == (link.ticks, params.lanes) and link.data.flags.writeable
            and np.array_equal(link.sof_ticks, firsts)
            and np.array_equal(link.last_ticks, firsts + wpf - 1)
            and int(np.count_nonzero(link.valid)) == n_frames * wpf)


def _put_words(data: npt.NDArray[np.int64], first: int, frame: npt.NDArray[np.integer],
               params: ChainParams) -> None:
    """A frame's words into ``data`` from tick ``first`` on (consecutive ticks; the lanes
    past a line's end are left as they are: 0)."""
    wpf = params.words_per_frame
    if params.pad:
        lines = data[first:first + wpf].reshape(params.height, params.line_width)
        lines[:, :params.width] = frame
    else:
        data[first:first + wpf] = frame.reshape(wpf, params.lanes)


def _check_frames(frames: Sequence[npt.ArrayLike] | npt.NDArray[np.integer],
                  params: ChainParams) -> list[npt.NDArray[np.integer]]:
    """The frames as integer arrays of the sensor shape with counts in range."""
    shape = (params.height, params.width)
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        items: list[npt.NDArray[Any]] = list(frames)
    elif isinstance(frames, np.ndarray):
        raise ValueError(f"frames must be a sequence of {shape} arrays or a (n, {shape[0]}, "
                         f"{shape[1]}) array, got an array of shape {frames.shape}")
    else:
        items = [np.asarray(f) for f in frames]
    for i, f in enumerate(items):
        if f.shape != shape:
            raise ValueError(f"frames[{i}] has shape {f.shape}, the sensor is {shape}")
        if f.dtype == bool or not np.issubdtype(f.dtype, np.integer):
            raise ValueError(f"frames[{i}] must hold integer counts, got dtype {f.dtype}")
        signed = np.issubdtype(f.dtype, np.signedinteger)  # (an unsigned min is >= 0)
        if f.size and ((signed and int(f.min()) < 0) or int(f.max()) > PIXEL_MAX):
            raise ValueError(f"frames[{i}] counts must be in 0 … {PIXEL_MAX}, got "
                             f"{int(f.min())} … {int(f.max())}")
    return items


__all__ = ["NORMAL_MIN_MEAN", "LinkStream", "SensorModel", "counting_efficiency", "frame_link",
           "link_stream"]
