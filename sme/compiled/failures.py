"""A failed run-time check of the compiled loop, as the interpreter's exception.

The generated loop records where a check failed (its ``Site``: what was checked, the
signal, the process and the source line) and the offending value and index; the session
(``session.py``) turns them here into the exception the interpreter raises for the same
mistake, with the same message.
"""

from __future__ import annotations

from typing import Any

from ..bus import SignalSpec, misfit_error
from ..declare import MISSING
from ..errors import (
    ArrayIndexError,
    BackendError,
    SignalValueError,
    SimulationError,
    UndefinedSignalError,
)
from ..interp_locals import at_line, index_message, local_misfit
from ..lower.cycles import spin_message
from ..network import Network
from ..overflow import Overflowing, resize, store
from ..types import ArrayType, TypeMisfit
from .batch_io import py_value
from .layout import Site


def site_error(network: Network, site: Site, value: int, index: int) -> BaseException:
    """The exception the interpreter raises for the check that failed at ``site`` of
    ``network``'s compiled loop (``value`` and ``index`` as the loop recorded them in
    ``E``): the same class and message, so a compiled run fails as an interpreted one."""
    what = site.what
    if what == "store":
        return _store_error(site, value, index)
    if what == "resize":
        assert site.target_type is not None and site.value_type is not None
        try:
            resize(py_value(site.value_type, value), site.target_type,
                   site.rounding, site.overflow)  # type: ignore[arg-type]
        except ValueError as exc:
            if site.signal:  # a store into an annotated local
                return local_misfit(site.signal, exc, site.who, at_line(site.where))
            return exc
        return BackendError(f"{site.where}: internal: resize failed in compiled code only")
    if what in ("undefined", "undefined_tb"):
        if site.register:
            return UndefinedSignalError(
                f"register {site.owner}.{site.signal} has no initial value and was read "
                f"before anything wrote it ({site.who})")
        bus = network.bus(site.owner)
        return UndefinedSignalError(
            f"{site.owner}.{site.signal} has no initial value and nothing has written it "
            f"yet (read by {site.who}); give it a default in {type(bus).__name__} or "
            "write it first")
    if what == "index":
        return ArrayIndexError(f"{site.owner}.{site.signal}[{value}]: index out of range "
                               f"0..{site.length - 1}")
    if what == "index_read":
        return ArrayIndexError(index_message(site.signal, value, site.length, site.who,
                                             site.where))
    if what == "zerodiv":
        return ZeroDivisionError("integer division or modulo by zero")
    if what == "steps":
        where = site.lines[value] if 0 <= value < len(site.lines) else site.where
        return SimulationError(spin_message(site.who, where))
    return BackendError(f"unknown failure site {site!r}")


def _store_error(site: Site, value: int, index: int) -> BaseException:
    """A store's failed range check: the interpreter's ``SignalValueError`` (or the
    misfit error of a scalar), found by storing the value as the interpreter does."""
    t = site.target_type
    assert t is not None and site.value_type is not None
    obj: Any = py_value(site.value_type, value)
    if site.overflow != "error" or site.rounding != "exact":
        obj = Overflowing(obj, site.overflow, site.rounding)  # type: ignore[arg-type]
    element_t = t.element if isinstance(t, ArrayType) else t
    try:
        store(element_t, obj)
    except TypeMisfit as exc:
        if site.element:
            return SignalValueError(
                f"{site.owner}.{site.signal}[{index}]: {exc}; {t!r} allows "
                f"{t.describe_range()}; written at {at_line(site.where)}", bus=site.owner,
                signal=site.signal, value=obj)
        spec = SignalSpec(site.signal, t, MISSING)
        return misfit_error(site.owner, spec, obj, exc, site.who, at_line(site.where))
    return BackendError(f"{site.where}: internal: a value the interpreter accepts failed a "
                        f"check in compiled code ({obj!r} into {t!r})")
