"""The pure, chunked parts of the reductions (``analysis.reduce``), on numpy arrays: a
tomography run's references, chunk reconstructions and their combination (and the live
:class:`TomoAccumulator`), a diffraction run's chunk patterns and their combination. Each
chunk is reduced independently, so the Dask version (``analysis.distributed``) maps them
onto workers; ``analysis.reduce`` re-exports every name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from analysis.reductions import ReductionError
from dataflow.pixel_mask import as_bool
from geometry import PoniGeometry

if TYPE_CHECKING:
    from analysis.azint import AzimuthalIntegrator
    from analysis.fbp import OutputBuffers

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
BoolImage = npt.NDArray[np.bool_]

DEFAULT_BINS = 500
DEFAULT_UNIT = "2th_deg"

MAX_BINS = 65536
"""The most bins a reduction's pattern has (``smeflow reduce --bins``, ``AzintParams``).
Memory grows with the bins (bin tables, per-frame sums, the derived patterns): ``smeflow
reduce`` of three 256×256 frames peaked at 545 MB resident with 500 bins, 731 MB with
65536 and 1.4 GB with 2**20, and ``--bins 100000000`` was killed for want of memory.
pyFAI sets no bound on ``npt``; its ``guess_npt_rad`` (the pixels from the beam centre to
the farthest detector corner, "a good guess of the number of bins ... without oversampling
too much") is about 2900 for a 4096×4096 detector with a centred beam and 5800 with the
beam at a corner: this bound is over ten times that."""


def check_bins(bins: Any, name: str = "argument `bins`") -> int:
    """``bins`` as an integer from 1 to :data:`MAX_BINS`, else :class:`ReductionError`
    (a ``ValueError``) naming it as ``name``; checked before anything is built."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ReductionError(f"{name}: expected an integer >= 1, got {bins!r}")
    if bins > MAX_BINS:
        raise ReductionError(
            f"{name}: {bins} bins is more than the {MAX_BINS} a reduction takes (memory grows "
            "with the bins; a 4096×4096 detector has about 2900 pixels from its centre to a "
            "corner, pyFAI's guess_npt_rad)")
    return int(bins)


def select_rows(rows: Sequence[int] | None, height: int) -> list[int]:
    """The detector rows to reconstruct: ``rows`` checked against ``height`` (None: all)."""
    if rows is None:
        return list(range(height))
    out = [int(r) for r in rows]
    if not out:
        raise ReductionError("argument `rows`: expected at least one row")
    bad = [r for r in out if not 0 <= r < height]
    if bad:
        raise ReductionError(f"argument `rows`: row(s) {bad} outside the detector's rows "
                             f"0..{height - 1}")
    if len(set(out)) != len(out):
        raise ReductionError(f"argument `rows`: repeated rows in {out}")
    return out


# -- tomography chunks -----------------------------------------------------------------------


@dataclass(frozen=True)
class TomoParams:
    """Tomography reduction parameters: ``rows`` to reconstruct (None: all), the ``-log``
    ``floor``, and the OpenCL ``device`` choice."""

    rows: tuple[int, ...] | None = None
    floor: float = 1e-6
    device: str | None = None

    def metadata(self) -> dict[str, Any]:
        """The parameters as start-document values (``rows`` None: every detector row;
        the stop document lists the rows reconstructed)."""
        return {"rows": None if self.rows is None else list(self.rows), "floor": self.floor}


@dataclass(frozen=True)
class TomoReferences:
    """Mean dark and flat frames (float32), the references of flat-field normalisation,
    and the run's pixel ``mask`` (True: ignore the pixel), if it published one."""

    dark: F32
    flat: F32
    mask: BoolImage | None = None

    def rows(self, rows: Sequence[int] | slice) -> TomoReferences:
        """The references restricted to ``rows`` (in that order)."""
        idx: Any = rows if isinstance(rows, slice) else np.asarray(rows, dtype=np.intp)
        return TomoReferences(np.ascontiguousarray(self.dark[idx]),
                              np.ascontiguousarray(self.flat[idx]),
                              None if self.mask is None
                              else np.ascontiguousarray(self.mask[idx]))


def tomo_references(darks: npt.ArrayLike, flats: npt.ArrayLike,
                    mask: npt.ArrayLike | None = None) -> TomoReferences:
    """Average the dark and flat stacks ``(n, rows, cols)``; ``ReductionError`` if empty
    or when the pixel ``mask`` (NeXus bits or bool, :mod:`dataflow.pixel_mask`) does not
    have the frames' shape."""
    from analysis.tomo import average_reference

    d, f = np.asarray(darks), np.asarray(flats)
    for name, stack in (("dark", d), ("flat", f)):
        if stack.ndim != 3 or stack.shape[0] == 0:
            raise ReductionError(f"tomography needs at least one {name} frame; got "
                                 f"{name} stack of shape {stack.shape}")
    if d.shape[1:] != f.shape[1:]:
        raise ReductionError(f"dark frames {d.shape[1:]} and flat frames {f.shape[1:]} "
                             "differ in shape")
    return TomoReferences(average_reference(d), average_reference(f),
                          None if mask is None else checked_mask(mask, d.shape[1:]))


def checked_mask(mask: npt.ArrayLike, shape: tuple[int, ...]) -> BoolImage:
    """``mask`` as bool of the frames' ``shape`` (True: ignore); ``ReductionError`` when
    it is another shape or not integer bits."""
    try:
        return as_bool(mask, shape)
    except ValueError as exc:
        raise ReductionError(str(exc)) from None


@dataclass(frozen=True)
class TomoPartial:
    """A chunk's reconstruction ``(rows, W, W)`` float32, scaled for its own ``n`` angles.

    ``buffers`` and ``generation``: when ``volume`` is the host array of a reduction's
    :class:`~analysis.fbp.OutputBuffers`, those buffers and their hand-out count when
    it was made; a later chunk with the same buffers overwrites it, and a fold weights it
    in place, after which :func:`tomo_combine` refuses it."""

    volume: F32
    n: int
    buffers: OutputBuffers | None = field(default=None, compare=False, repr=False)
    generation: int = 0

    def overwritten(self) -> bool:
        """Whether this partial's buffers changed since it was made: a later chunk
        reconstructed into them, or :func:`tomo_combine` weighted it in place."""
        return self.buffers is not None and self.buffers.generation != self.generation


class _RowsPrep:
    """The line integrals of chosen ``rows`` of projections: the references of those rows
    and the pixels to fill (mask, dead flats), prepared once (:mod:`analysis.tomo_stream`)."""

    def __init__(self, refs: TomoReferences, rows: Sequence[int], floor: float) -> None:
        from analysis.tomo_stream import fill_for

        self.refs = refs
        self.rows = list(rows)
        self.idx = np.asarray(self.rows, dtype=np.intp)
        self.sub = refs.rows(self.rows)
        self.fill = fill_for(self.sub.mask, self.sub.dark, self.sub.flat)
        self.floor = floor

    def __call__(self, projections: npt.ArrayLike, angles: npt.ArrayLike) -> tuple[F32, F64]:
        """``(k, rows, cols)`` line integrals and the ``k`` angles, checked."""
        from analysis.tomo_stream import line_integrals

        p = np.asarray(projections)
        a = np.asarray(angles, dtype=np.float64)
        if p.ndim != 3 or a.ndim != 1 or p.shape[0] != a.shape[0]:
            raise ReductionError(f"chunk of projections {p.shape} and {a.shape} angles: "
                                 "expected (angles, rows, cols) with one angle per projection")
        if p.shape[1:] != self.refs.dark.shape:
            raise ReductionError(f"projections {p.shape[1:]} and dark/flat references "
                                 f"{self.refs.dark.shape} differ in shape")
        if not np.all(np.isfinite(a)):
            raise ReductionError(f"angles {a.tolist()}: not finite")
        return line_integrals(p[:, self.idx, :], self.sub.dark, self.sub.flat, self.fill,
                              self.floor), a


def tomo_chunk(projections: npt.ArrayLike, angles: npt.ArrayLike, refs: TomoReferences, *,
               rows: Sequence[int] | None = None, floor: float = 1e-6,
               device: str | None = None, buffers: OutputBuffers | None = None
               ) -> TomoPartial:
    """Reconstruct ``rows`` from one chunk of projections ``(k, rows, cols)`` at ``angles``
    (degrees): a pure function of numpy arrays (a Dask task). With ``buffers`` (one per
    reduction, see :class:`analysis.fbp.OutputBuffers`) the partial's volume is theirs:
    fold it (:func:`tomo_combine` of a generator) before the next chunk."""
    from analysis.fbp import FilteredBackProjection

    p = np.asarray(projections)
    chosen = select_rows(rows, int(p.shape[1]) if p.ndim == 3 else 0)
    mu, a = _RowsPrep(refs, chosen, floor)(p, angles)
    plan = FilteredBackProjection(a, int(p.shape[2]), degrees=True, device=device)
    volume = np.asarray(plan(np.ascontiguousarray(np.swapaxes(mu, 0, 1)), buffers=buffers),
                        dtype=np.float32)
    if buffers is not None and buffers.holds(volume):
        return TomoPartial(volume, int(p.shape[0]), buffers, buffers.generation)
    return TomoPartial(volume, int(p.shape[0]))


def tomo_combine(partials: Iterable[TomoPartial]) -> F32:
    """The reconstruction from chunk partials: ``sum_k n_k fbp_k / sum_k n_k``.

    Folded in chunk order into one sum (the same float32 operations as fresh arrays per
    chunk, without new volume-sized arrays per chunk: less memory traffic, which two
    workers on one machine share). A partial in a reduction's
    :class:`~analysis.fbp.OutputBuffers` (``tomo_chunk(..., buffers=)``) is weighted in
    its own buffer, which the next chunk overwrites anyway, so the fold allocates only
    the sum: such a partial's ``volume`` is no longer its reconstruction once folded, and
    it is marked so (``overwritten``: folding it again is refused).
    Other partials are left as they are (one reused array holds each one weighted).
    ``ReductionError`` for a partial whose
    :class:`~analysis.fbp.OutputBuffers` a later chunk reconstructed into before it was
    folded (partials of shared buffers collected in a list: each would be the last
    chunk's volume, and the sum that volume times every chunk's weight)."""
    total: F32 | None = None
    weighted: F32 | None = None
    n = 0
    for index, part in enumerate(partials):
        if part.overwritten():
            raise ReductionError(
                f"chunk partial {index}: its volume is the reduction's reused output buffer, "
                "changed since it was made (a later chunk overwrote it before it was folded, "
                "or a fold weighted it in place); fold each partial once, before "
                "reconstructing the next (tomo_combine of a generator), or give the chunks "
                "no shared OutputBuffers")
        if total is None:
            total = part.volume * np.float32(part.n)
        else:
            if part.buffers is not None:
                scratch = part.volume  # (the buffers' array: the next chunk overwrites it)
                part.buffers.generation += 1  # (weighted in place: no longer this partial)
            else:
                if weighted is None:
                    weighted = np.empty_like(total)
                scratch = weighted
            np.multiply(part.volume, np.float32(part.n), out=scratch)
            np.add(total, scratch, out=total)
        n += part.n
    if total is None or n == 0:
        raise ReductionError("no projections to reconstruct")
    np.divide(total, np.float32(n), out=total)
    return np.asarray(total, dtype=np.float32)


class TomoAccumulator:
    """The running reconstruction of a tomography run, one projection (or a few) at a
    time (live use): each :meth:`add` filters and back-projects its projections into a
    sum kept on the OpenCL device (:class:`analysis.tomo_stream.StreamingFBP`), so its
    cost is that of its own projections, and :meth:`result` is the reconstruction of
    every projection added so far.
    """

    def __init__(self, refs: TomoReferences, rows: Sequence[int], *, floor: float = 1e-6,
                 device: str | None = None) -> None:
        from analysis.tomo_stream import StreamingFBP

        self.refs = refs
        self.rows = select_rows(rows, refs.dark.shape[0])
        self.floor = floor
        self.device = device
        self._prep = _RowsPrep(refs, self.rows, floor)
        self._fbp = StreamingFBP(int(refs.dark.shape[1]), len(self.rows), device=device)

    @property
    def n(self) -> int:
        """Projections added so far."""
        return self._fbp.n

    def add(self, projections: npt.ArrayLike, angles: npt.ArrayLike) -> None:
        """Back-project projections ``(k, rows, cols)`` at ``angles`` (degrees) into the sum."""
        mu, a = self._prep(projections, angles)
        self._fbp.add(mu, a)

    def result(self) -> F32:
        """The reconstruction ``(rows, W, W)`` float32 of every projection added so far."""
        if self.n == 0:
            raise ReductionError("no projections to reconstruct")
        return self._fbp.result()

    def slabs(self) -> Iterator[F32]:
        """:meth:`result` a few rows at a time (``(k, W, W)`` slabs in row order), for
        writing it out without the whole volume on the host."""
        if self.n == 0:
            raise ReductionError("no projections to reconstruct")
        return self._fbp.slabs()


# -- diffraction chunks ----------------------------------------------------------------------


@dataclass(frozen=True)
class AzintParams:
    """1D integration parameters: ``bins`` (1 to :data:`MAX_BINS`), ``unit``, the
    ``error_model`` (Poisson, asked for explicitly: the integrator's default, like pyFAI's,
    is none) and the pixel splitting ``method`` (``"no"``: one bin per pixel, the
    fastest)."""

    bins: int = DEFAULT_BINS
    unit: str = DEFAULT_UNIT
    error_model: str | None = "poisson"
    device: str | None = None
    method: str = "no"

    @classmethod
    def given(cls, bins: int | None, unit: str | None,
              device: str | None = None) -> AzintParams:
        """The parameters a caller gave, ``None`` for ``bins`` or ``unit`` meaning the
        default (``DEFAULT_BINS``, ``DEFAULT_UNIT``), as every reduction entry point takes
        them (a live stream or a command line has runs of both reductions, so the
        diffraction options may be left unsaid)."""
        return cls(DEFAULT_BINS if bins is None else bins,
                   DEFAULT_UNIT if unit is None else unit, device=device)

    def __post_init__(self) -> None:
        from analysis.azint_args import split_of
        from geometry import RADIAL_UNITS as UNITS

        try:
            split_of(self.method)
        except ValueError as exc:
            raise ReductionError(f"argument `method`: {exc}") from None
        check_bins(self.bins)
        if self.unit not in UNITS:
            raise ReductionError(f"argument `unit`: {self.unit!r} is not one of "
                                 f"{', '.join(UNITS)}")

    def metadata(self, geometry: PoniGeometry) -> dict[str, Any]:
        """The parameters as start-document values."""
        return {"bins": self.bins, "unit": self.unit, "error_model": self.error_model,
                "method": self.method, "geometry": geometry.to_metadata()}


@dataclass(frozen=True)
class PatternChunk:
    """Patterns of consecutive frames from frame ``first``: ``intensity`` and ``sigma``
    ``(k, bins)`` float64 (``sigma`` None without error model), bin centres ``radial``."""

    first: int
    radial: F64
    intensity: F64
    sigma: F64 | None


def geometry_from(start: Mapping[str, Any]) -> PoniGeometry:
    """The run's detector geometry (start ``"geometry"``), ``PoniError`` when malformed."""
    return PoniGeometry.from_metadata(start.get("geometry"), where="start document "
                                      "'geometry'")


def azint_chunk(frames: npt.ArrayLike, integrator: AzimuthalIntegrator, params: AzintParams,
                first: int = 0, mask: BoolImage | None = None) -> PatternChunk:
    """Integrate each frame of ``(k, rows, cols)`` to a 1D pattern (one Dask task): one
    call of the integrator's stack API for all ``k`` frames, ignoring the pixels where
    ``mask`` is True (the run's pixel mask) and, always, the detector's module gaps (a
    mask given to the integrator replaces the detector's, as in pyFAI)."""
    stack = np.asarray(frames)
    if stack.ndim != 3:
        raise ReductionError(f"frames: expected (n, rows, cols), got shape {stack.shape}")
    if stack.shape[1:] != integrator.geometry.shape:
        raise ReductionError(f"frames {stack.shape[1:]} do not match the geometry's "
                             f"detector shape {integrator.geometry.shape}")
    if mask is not None:
        mask = mask | integrator.geometry.detector.mask
    res = integrator.integrate1d(np.ascontiguousarray(stack), params.bins, unit=params.unit,
                                 error_model=params.error_model, mask=mask,
                                 method=params.method)
    sigma = None if res.sigma is None else np.asarray(res.sigma, dtype=np.float64)
    return PatternChunk(first, np.asarray(res.radial, dtype=np.float64),
                        np.asarray(res.intensity, dtype=np.float64), sigma)


def azint_combine(chunks: Iterable[PatternChunk]) -> PatternChunk:
    """Concatenate pattern chunks in frame order; they must be contiguous."""
    ordered = sorted(chunks, key=lambda c: c.first)
    if not ordered:
        raise ReductionError("no frames to integrate")
    expected = ordered[0].first
    for c in ordered:
        if c.first != expected:
            raise ReductionError(f"pattern chunks not contiguous: chunk starts at frame "
                                 f"{c.first}, expected {expected}")
        expected += c.intensity.shape[0]
    sig = None
    if all(c.sigma is not None for c in ordered):
        sig = np.concatenate([c.sigma for c in ordered if c.sigma is not None])
    return PatternChunk(ordered[0].first, ordered[0].radial,
                        np.concatenate([c.intensity for c in ordered]), sig)
