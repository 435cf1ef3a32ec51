"""Azimuthal integration on OpenCL, called like pyFAI's ``integrate1d``/``integrate2d``.

:class:`AzimuthalIntegrator` is built from a :class:`geometry.PoniGeometry` (or a ``.poni``
file: :meth:`AzimuthalIntegrator.load`). Its ``integrate1d``/``integrate2d`` take pyFAI's
arguments with pyFAI's meaning and defaults — ``method`` (pixel splitting ``"no"``,
``"bbox"`` — the default — or ``"full"``, or a pyFAI method tuple), ``unit``
(``q_nm^-1`` by default), ``radial_range``, ``azimuth_range``, ``mask`` (the detector's
module gaps when None), ``dummy``/``delta_dummy`` (the detector's when None), NaN pixels
dropped, ``correctSolidAngle``, ``polarization_factor``, ``dark``, ``flat``,
``normalization_factor``, ``error_model`` (None, ``"poisson"``, ``"azimuthal"``) — and return
results that unpack like pyFAI's; ``integrate_radial`` gives I(χ) over a radial range, as
pyFAI's. Results agree with pyFAI's CSR engines bin by bin; bins no pixel reaches hold
:attr:`AzimuthalIntegrator.empty` (0 unless set), as pyFAI's ``ai.empty``.

Everything that depends on the geometry and the configuration is built once and cached,
keyed by all it depends on (mask, dark and flat by content): the sparse integration matrix
(:mod:`analysis.azint_matrix`) and the per-bin normalisation sums
(:mod:`analysis.azint_plan`). Per call only the frames go to the device — one frame, or a
stack ``(n, rows, cols)`` in one launch (:mod:`analysis.azint_engine`) — converted from their
own type on the device.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from analysis import azint_args as args
from analysis import azint_clip, azint_median, azint_plan, azint_radial, azint_separate, cl
from analysis.azint_engine import KINDS, Engine
from analysis.azint_geometry import GeometryAttributes
from analysis.azint_matrix import Matrix, Request, build
from analysis.azint_plan import Dummy, Finished, Plan, Sums, finish, make_plan, normalisation
from analysis.azint_plan import reference as reference_sums
from analysis.azint_results import Integrate1dResult, Integrate2dResult
from geometry import PoniGeometry, Unit, UnitName, radial_unit, read_poni

__all__ = ["AzimuthalIntegrator", "Integrate1dResult", "Integrate2dResult"]

F64 = npt.NDArray[np.float64]
_T = TypeVar("_T")
DEFAULT_METHOD = ("bbox", "csr", "cython")
_MATRICES = 4
_ENGINES = 8


@dataclass(frozen=True)
class _Call:
    """One call's configuration, checked."""

    request: Request
    mask: npt.NDArray[Any] | None
    mask_key: object
    dark: npt.NDArray[Any] | None
    flat: npt.NDArray[Any] | None
    correct_solid_angle: float | None
    polarization_factor: float | None
    error_model: str | None
    dummy: Dummy | None
    empty: float
    normalization_factor: float


class AzimuthalIntegrator(GeometryAttributes):
    """pyFAI-like azimuthal integrator running its per-frame work on OpenCL.

    Parameters
    ----------
    geometry
        Detector geometry (PONI convention), e.g. from :func:`geometry.read_poni`.
    device
        OpenCL device choice passed to :func:`analysis.cl.runtime` (None: the default).
    kernel
        ``"auto"`` (private histograms on a CPU device when the bins fit, else CSR rows),
        ``"private"`` (private histograms wherever they apply: at most 4096 bins; 2D cakes
        with pixel splitting still go row by row) or ``"csr"`` — the kernel changes, not
        the result.
    empty
        The value of bins that no pixel reaches (pyFAI's ``ai.empty``); settable later.

    The geometry is settable as pyFAI's (``ai.wavelength = ...``, ``ai.dist``, ``ai.rot1``,
    ``ai.energy``, ``ai.geometry``: :mod:`analysis.azint_geometry`).
    """

    _PLAIN_ATTRIBUTES: frozenset[str] = frozenset()

    def __init__(self, geometry: PoniGeometry, device: str | None = None,
                 kernel: str = "auto", empty: float = 0.0) -> None:
        self._matrices: OrderedDict[tuple[object, ...], Matrix] = OrderedDict()
        self._engines: OrderedDict[tuple[object, ...], Engine] = OrderedDict()
        self.geometry = geometry
        self._poni_file: tuple[PoniGeometry | None, str] = (None, "")
        self.kernel = kernel
        self.empty = empty
        self._rt = cl.runtime(device)
        self._compute_engine = f"OpenCL {self.rt.name}"
        self._contents = args.ContentKeys()

    @classmethod
    def load(cls, path: str | os.PathLike[str], shape: tuple[int, int] | None = None,
             device: str | None = None) -> AzimuthalIntegrator:
        """An integrator for the geometry of a pyFAI ``.poni`` file (``pyFAI.load``)."""
        integrator = cls(read_poni(path, shape=shape), device=device)
        integrator._poni_file = (integrator.geometry, str(path))  # (named if no wavelength)
        return integrator

    @property
    def rt(self) -> cl.Runtime:
        """The OpenCL runtime (device, context, queue) chosen when the integrator was made."""
        return self._rt

    @property
    def kernel(self) -> str:
        """The integration kernel (one of ``analysis.azint_engine.KINDS``; ``"auto"``
        chooses). Setting it makes the next integration use it: the plans made with the
        old one are forgotten (the matrices stay: they do not depend on it)."""
        return self._kernel

    @kernel.setter
    def kernel(self, kernel: str) -> None:
        if kernel not in KINDS:
            raise ValueError(f"unknown kernel {kernel!r}; valid: {', '.join(KINDS)}")
        self._kernel = kernel
        self._engines.clear()

    @property
    def empty(self) -> float:
        """The value given to bins that no pixel reaches, whatever the ``dummy`` (pyFAI's
        ``ai.empty``: 0 by default, a float32; None or 0 set it to 0)."""
        return self._empty

    @empty.setter
    def empty(self, value: float | None) -> None:
        if value is None:
            value = 0.0
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)):
            raise ValueError(f"empty must be a number (the value of empty bins), got "
                             f"{value!r}")
        self._empty = float(np.float32(value))

    def reset(self) -> None:
        """Forget every cached matrix and plan."""
        self._matrices.clear()
        self._engines.clear()

    # -- configuration -----------------------------------------------------------------

    def _call(self, dtype: np.dtype[Any], unit: Unit, npt_rad: int, npt_azim: int | None,
              azim_unit: Unit | None, method: Any, radial_range: Any, azimuth_range: Any,
              mask: Any, dummy: Any, delta_dummy: Any, dark: Any, flat: Any,
              correct_solid_angle: Any, polarization_factor: Any, error_model: Any,
              normalization_factor: Any) -> _Call:
        g = self.geometry
        split = args.split_of(method)
        model = args.error_model(error_model)
        if unit.needs_wavelength and g.wavelength is None:  # raises, naming it and the file
            source = self._poni_file[1] if self._poni_file[0] is g else None
            unit.values(np.zeros(1), np.zeros(1), np.ones(1), None, source)
        pol = polarization_factor
        if pol is not None and (isinstance(pol, bool) or not isinstance(
                pol, (int, float, np.integer, np.floating)) or not -1.0 <= float(pol) <= 1.0):
            raise ValueError(f"polarization_factor must be in [-1, 1] or None, got {pol!r}")
        factor = normalization_factor
        if isinstance(factor, bool) or not isinstance(
                factor, (int, float, np.integer, np.floating)) or not np.isfinite(factor) \
                or factor == 0:
            raise ValueError(f"normalization_factor must be a finite non-zero number, got "
                             f"{factor!r}")
        user_mask = args.mask_image(mask, g.shape)
        if user_mask is None:
            mask_arr = g.detector.mask if g.detector.has_gaps else None
            mask_key: object = ("detector", g.detector.name) if mask_arr is not None else None
        else:
            mask_arr, mask_key = user_mask, self._contents.key("mask", user_mask)
        d = args.dummy_of(dummy, delta_dummy, g.detector, dtype)
        request = Request(split, unit, npt_rad, args.radial_range(radial_range, unit),
                          npt_azim, args.azimuth_range(
                              azimuth_range, azim_unit or _CHI_DEG))
        return _Call(request, mask_arr, mask_key, args.image("dark", dark, g.shape),
                     args.image("flat", flat, g.shape),
                     args.solid_angle_order(correct_solid_angle),
                     None if pol is None else float(pol), model, d, self.empty,
                     float(factor))

    def _matrix(self, c: _Call) -> Matrix:
        r = c.request
        key = (r.split, r.unit.name, r.npt_rad, r.npt_azim, r.radial_range,
               r.azimuth_range, c.mask_key)
        def make() -> Matrix:
            mask = np.zeros(self.geometry.shape, bool) if c.mask is None else c.mask != 0
            return build(self.geometry, r, mask)

        return _cached(self._matrices, key, _MATRICES, make)

    def _engine_key(self, c: _Call) -> tuple[object, ...]:
        r = c.request
        flat_key = self._contents.key("flat", c.flat)
        return (r.split, r.unit.name, r.npt_rad, r.npt_azim, r.radial_range,
                r.azimuth_range, c.mask_key, flat_key, self._contents.key("dark", c.dark),
                c.correct_solid_angle, c.polarization_factor,
                c.dummy if flat_key is not None else None)

    def _checked_engine(self, call: str, c: _Call, frames: int) -> Engine:
        """The engine of ``c`` after :func:`analysis.azint_args.check_memory`: a cached
        engine's tables and matrix exist already (they are in what is no longer available),
        so only the frames' sums and results are counted for it."""
        key = self._engine_key(c)
        r = c.request
        args.check_memory(call, r.npt_rad, r.npt_azim, frames, self.geometry.shape,
                          built=key in self._engines)
        return self._engine(c, key)

    def _engine(self, c: _Call, key: tuple[object, ...] | None = None) -> Engine:
        if key is None:
            key = self._engine_key(c)

        def make() -> Engine:
            flat = None if c.flat is None else c.flat.astype(np.float32)
            norm = normalisation(self.geometry, flat, c.correct_solid_angle,
                                 c.polarization_factor)
            dark = None if c.dark is None else np.ascontiguousarray(
                c.dark, dtype=np.float32).ravel()
            plan = make_plan(self._matrix(c), norm, dark, flat, c.dummy)
            return Engine(self.rt, plan, self.kernel)

        return _cached(self._engines, key, _ENGINES, make)

    # -- integration -------------------------------------------------------------------

    def _run(self, data: Any, dim: int, npt_rad: Any, npt_azim: Any, unit: Any,
             kwargs: dict[str, Any], reference: bool) -> tuple[_Call, Plan, Sums, Finished,
                                                               bool]:
        frames = args.check_frames(data, self.geometry.shape, self.rt.context)
        if dim == 1:
            r_unit, a_unit = radial_unit(unit), None
        else:
            r_unit, a_unit = args.units2d(unit)
        n_rad = args.bins("npt" if dim == 1 else "npt_rad", npt_rad)
        n_azim = None if dim == 1 else args.bins("npt_azim", npt_azim)
        stacked = frames.ndim == 3
        c = self._call(np.dtype(frames.dtype), r_unit, n_rad, n_azim, a_unit, **kwargs)
        engine = self._checked_engine(f"integrate{dim}d", c,
                                      int(frames.shape[0]) if stacked else 1)
        if stacked and frames.shape[0] == 0:  # nothing to send to the device
            none = np.zeros((0, engine.plan.nbins))
            sums = Sums(none, None if c.error_model is None else none, none, none, none)
        elif reference:
            host = frames if isinstance(frames, np.ndarray) else frames.get()
            sums = reference_sums(engine.plan, host.reshape(-1, *self.geometry.shape)
                                  if stacked else host[None], c.error_model, c.dummy)
        else:
            sums = engine.stack_sums(frames, c.error_model, c.dummy)
        if dim == 2 and c.error_model == "poisson" and c.dark is not None \
                and c.request.split != "full":  # as pyFAI's (dark_variance)
            sums = azint_plan.add_dark_variance(sums, engine.plan, frames, c.dummy)
        div = None if reference else engine.divisors(sums, c.normalization_factor)
        return c, engine.plan, sums, finish(sums, c.empty, c.normalization_factor, div), \
            stacked

    def _result1d(self, data: Any, npt_: Any, unit: Any, kwargs: dict[str, Any],
                  reference: bool) -> Integrate1dResult:
        metadata = kwargs.pop("metadata", None)
        c, plan, s, fin, stacked = self._run(data, 1, npt_, None, unit, kwargs, reference)

        def out(a: F64 | None) -> Any:
            return None if a is None else (a if stacked else a[0])

        f = c.normalization_factor
        norm, norm2 = (s.norm, s.norm2) if f == 1.0 else (s.norm * f, s.norm2 * f * f)
        return Integrate1dResult(
            out(fin.intensity), out(fin.sem), out(s.count), out(s.signal), out(s.variance),
            out(norm), out(norm2), out(fin.std), out(fin.sem),
            c.error_model, (c.request.split, "csr", "opencl"),
            "numpy reference" if reference else self._compute_engine, metadata,
            plan.matrix.radial.centres(c.request.unit.scale), UnitName(c.request.unit))

    def _result2d(self, data: Any, npt_rad: Any, npt_azim: Any, unit: Any,
                  kwargs: dict[str, Any], reference: bool) -> Integrate2dResult:
        metadata = kwargs.pop("metadata", None)
        c, plan, s, fin, stacked = self._run(data, 2, npt_rad, npt_azim, unit, kwargs,
                                             reference)
        m = plan.matrix
        assert m.azimuthal is not None
        shape = (m.radial.npt, m.azimuthal.npt)

        def cake(a: F64 | None) -> Any:
            if a is None:
                return None
            out = np.ascontiguousarray(a.reshape(-1, *shape).transpose(0, 2, 1))
            return out if stacked else out[0]

        r_unit, a_unit = args.units2d(unit)
        f = c.normalization_factor
        return Integrate2dResult(
            cake(fin.intensity), cake(fin.sem), cake(s.count), cake(s.signal),
            cake(s.variance), cake(s.norm * f), cake(s.norm2 * f * f), cake(fin.std),
            cake(fin.sem), c.error_model, (c.request.split, "csr", "opencl"),
            "numpy reference" if reference else self._compute_engine, metadata,
            m.radial.centres(r_unit.scale), m.azimuthal.centres(a_unit.scale),
            UnitName(r_unit), UnitName(a_unit))

    def integrate1d(self, data: Any, npt: int, *, correctSolidAngle: bool | float = True,
                    error_model: str | None = None, radial_range: Any = None,
                    azimuth_range: Any = None, mask: Any = None, dummy: float | None = None,
                    delta_dummy: float | None = None, polarization_factor: float | None = None,
                    dark: Any = None, flat: Any = None, method: Any = DEFAULT_METHOD,
                    unit: str = "q_nm^-1", safe: bool = True, normalization_factor: float = 1.0,
                    metadata: Any = None) -> Integrate1dResult:
        """Integrate ``data`` into ``npt`` radial bins — pyFAI's ``integrate1d``.

        Parameters
        ----------
        data
            One frame ``(rows, cols)`` or a stack ``(n, rows, cols)`` (every result array
            then has a leading axis ``n``) of any of uint8–uint64, int8–int64, float32,
            float64; numpy, or a ``pyopencl.array.Array`` on this integrator's context.
        npt
            Number of radial bins. No fixed bound, but a call whose tables and results
            would take more than half the machine's available memory is refused before
            anything is allocated (``ValueError`` naming ``npt``, the estimate and the
            limit): ``npt × (128 + 200 × frames)`` bytes plus 64 per detector pixel (a
            configuration already cached: ``npt × 200 × frames`` alone), against half of
            ``MemAvailable`` (``/proc/meminfo``) — :func:`analysis.azint_args.check_memory`.
        correctSolidAngle, polarization_factor, dark, flat, normalization_factor
            Corrections as pyFAI applies them: ``(x − dark) / (flat × polarization ×
            solid angle × normalization_factor)``, summed per bin as numerator and
            denominator. ``correctSolidAngle`` is pyFAI's: True divides by
            cos(incidence)³, a number > 0 by cos(incidence) to that power (1 is not
            True), False or 0 by nothing.
        error_model
            None (pyFAI's default), ``"poisson"`` (variance max(1, x)) or ``"azimuthal"``
            (the spread within each bin).
        radial_range
            ``(min, max)`` in ``unit``; default: the unmasked pixels' extent.
        azimuth_range
            ``(start, end)`` χ in degrees: only pixels in it count.
        mask
            Non-zero where pixels are excluded; None: the detector's module gaps. A
            float mask holding a fraction or NaN is refused (pyFAI reads 0.5 as 0).
        dummy, delta_dummy
            Pixels equal to ``dummy`` (±``delta_dummy``) do not count; None: the
            detector's (−2 ± 1.5 for Dectris detectors). Bins that no pixel reaches get
            :attr:`empty`, not the dummy (as pyFAI).
        method
            Pixel splitting ``"no"``, ``"bbox"`` (default), ``"full"``, a pyFAI method
            tuple / ``IntegrationMethod``, or a pyFAI method name (``"csr"``,
            ``"nosplit_csr"``, ``"full_csr"``, ``"splitpixel"``, ...: its splitting —
            :mod:`analysis.azint_method`).
        unit
            ``2th_deg``, ``2th_rad``, ``q_nm^-1`` (default), ``q_A^-1``, ``r_mm``, ``r_m``,
            ``d*2_A^-2``, ``d*2_nm^-2``.
        safe
            Accepted for pyFAI compatibility (the cache is always checked).
        metadata
            Kept on the result.
        """
        del safe
        return self._result1d(data, npt, unit, _given(locals()), reference=False)

    def integrate2d(self, data: Any, npt_rad: int, npt_azim: int = 360, *,
                    correctSolidAngle: bool | float = True, error_model: str | None = None,
                    radial_range: Any = None, azimuth_range: Any = None, mask: Any = None,
                    dummy: float | None = None, delta_dummy: float | None = None,
                    polarization_factor: float | None = None, dark: Any = None,
                    flat: Any = None, method: Any = DEFAULT_METHOD, unit: Any = "q_nm^-1",
                    safe: bool = True, normalization_factor: float = 1.0,
                    metadata: Any = None) -> Integrate2dResult:
        """A cake of ``npt_rad`` radial × ``npt_azim`` χ bins — pyFAI's ``integrate2d``.

        ``unit`` is a radial unit or a pair ``(radial, azimuthal)`` (χ in ``chi_deg`` by
        default, or ``chi_rad``); ``azimuth_range`` is in the azimuthal unit. Other
        arguments as :meth:`integrate1d`; arrays come back ``(npt_azim, npt_rad)``. The
        memory rule is :meth:`integrate1d`'s with ``npt_rad × npt_azim`` bins (pyFAI's
        default cake, 500 × 360, is 180 000 bins: ≈ 59 MB for one frame)."""
        del safe
        return self._result2d(data, npt_rad, npt_azim, unit, _given(locals()),
                              reference=False)

    integrate1d_ng = integrate1d  # (pyFAI's names for the same two since 2023)
    integrate2d_ng = integrate2d

    def integrate_radial(self, data: Any, npt: int, npt_rad: int = 100, *,
                         correctSolidAngle: bool | float = True, radial_range: Any = None,
                         azimuth_range: Any = None, mask: Any = None,
                         dummy: float | None = None, delta_dummy: float | None = None,
                         polarization_factor: float | None = None, dark: Any = None,
                         flat: Any = None, method: Any = DEFAULT_METHOD,
                         unit: Any = "chi_deg", radial_unit: Any = "q_nm^-1",
                         normalization_factor: float = 1.0) -> Integrate1dResult:
        """The intensity in ``npt`` χ bins, summed over ``radial_range`` (in
        ``radial_unit``, cut in ``npt_rad`` bins) — pyFAI's ``integrate_radial``: a texture
        or strain profile around a ring. ``result.radial`` is χ in ``unit`` (``chi_deg``
        or ``chi_rad``); ``azimuth_range`` is in degrees whatever ``unit``, as pyFAI's.
        Other arguments as :meth:`integrate2d`, of which it is the sum over the radial
        bins (:func:`analysis.azint_radial.radial_profile`); no error model, as pyFAI."""
        chi = azint_radial.profile_unit(unit)
        cake = self.integrate2d(
            data, npt_rad, npt, correctSolidAngle=correctSolidAngle,
            radial_range=radial_range, azimuth_range=azimuth_range, mask=mask, dummy=dummy,
            delta_dummy=delta_dummy, polarization_factor=polarization_factor, dark=dark,
            flat=flat, method=method, unit=(radial_unit, "chi_deg"),
            normalization_factor=normalization_factor)
        return azint_radial.radial_profile(cake, chi, self.empty)

    sigma_clip_ng = azint_clip.sigma_clip_ng
    sigma_clip = azint_clip.sigma_clip_ng  # (pyFAI's current name for it)
    medfilt1d_ng = azint_median.medfilt1d_ng
    separate = azint_separate.separate

    def reference1d(self, data: Any, npt: int, **kwargs: Any) -> Integrate1dResult:
        """:meth:`integrate1d` computed with numpy straight from the definitions (no
        OpenCL, no precomputed sums): the kernels' reference."""
        unit = kwargs.pop("unit", "q_nm^-1")
        return self._result1d(data, npt, unit, _kwargs(kwargs), reference=True)

    def reference2d(self, data: Any, npt_rad: int, npt_azim: int = 360, **kwargs: Any
                    ) -> Integrate2dResult:
        """:meth:`integrate2d` computed with numpy (see :meth:`reference1d`)."""
        unit = kwargs.pop("unit", "q_nm^-1")
        return self._result2d(data, npt_rad, npt_azim, unit, _kwargs(kwargs), reference=True)

    def plan1d(self, npt: int, **kwargs: Any) -> Plan:
        """The frame-independent :class:`~analysis.azint_plan.Plan` of a 1D configuration
        (integration matrix, per-pixel normalisation, static sums; ``plan.radial`` is the
        bin axis), as :meth:`integrate1d` uses it. Takes :meth:`integrate1d`'s keyword
        arguments, and ``data_dtype`` (float32 by default) for the dummy value's
        conversion."""
        unit = kwargs.pop("unit", "q_nm^-1")
        dtype = np.dtype(kwargs.pop("data_dtype", np.float32))
        kw = _kwargs(kwargs)
        kw.pop("metadata")
        c = self._call(dtype, radial_unit(unit), args.bins("npt", npt), None, None, **kw)
        return self._checked_engine("plan1d", c, 0).plan


def _cached(cache: OrderedDict[Any, _T], key: object, keep: int, make: Callable[[], _T]
            ) -> _T:
    """``cache[key]``, made by ``make`` when missing; the ``keep`` most recently used stay."""
    value = cache.get(key)
    if value is None:
        value = make()
        if len(cache) >= keep:
            cache.popitem(last=False)
        cache[key] = value
    else:
        cache.move_to_end(key)
    return value


_CHI_DEG = args.units2d("2th_deg")[1]
_DEFAULTS = dict(method=DEFAULT_METHOD, radial_range=None, azimuth_range=None, mask=None,
                 dummy=None, delta_dummy=None, dark=None, flat=None, correct_solid_angle=True,
                 polarization_factor=None, error_model=None, normalization_factor=1.0,
                 metadata=None)


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """The configuration arguments among an ``integrate*`` call's ``locals()``."""
    out = {name: values[name] for name in _DEFAULTS if name in values}
    out["correct_solid_angle"] = values["correctSolidAngle"]
    return out


def _kwargs(given: dict[str, Any]) -> dict[str, Any]:
    """pyFAI-style keyword arguments of the reference/plan calls, with the defaults."""
    out = dict(_DEFAULTS)
    for key, value in given.items():
        name = "correct_solid_angle" if key == "correctSolidAngle" else key
        if name not in out or key == "correct_solid_angle":
            raise TypeError(f"unexpected keyword argument {key!r}")
        out[name] = value
    return out
