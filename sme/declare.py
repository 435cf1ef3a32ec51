"""Reading the annotated fields of ``Bus`` and ``Process`` classes.

Annotations may be strings (``from __future__ import annotations``); they are evaluated in
the defining module, the way ``typing.get_type_hints`` would, but without requiring that
the annotation objects be Python types (``UInt[8]`` is an object, not a type).
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

from .errors import DeclarationError
from .srcloc import SrcLoc


def own_annotations(cls: type) -> dict[str, Any]:
    """Evaluated annotations of ``cls`` and its bases (bases first, like dataclasses)."""
    result: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        raw = inspect.get_annotations(klass)
        if not raw:
            continue
        module = sys.modules.get(klass.__module__)
        globalns = dict(vars(module)) if module is not None else {}
        localns = {**klass.__dict__.get("_sme_def_ns", {}), **vars(klass)}
        for name, ann in raw.items():
            if isinstance(ann, str):
                try:
                    ann = eval(ann, globalns, localns)
                except Exception as exc:
                    raise DeclarationError(
                        f"{class_loc(klass)}: cannot evaluate the annotation of "
                        f"{klass.__qualname__}.{name}: {ann!r} ({exc})"
                    ) from None
            result[name] = ann
    return result


def defining_namespace() -> dict[str, Any]:
    """The local names of the function running the ``class`` statement being declared
    (call from ``__init_subclass__``), so that string annotations may name its parameters
    and locals: a class made by a factory (``def fifo(word, depth): class Fifo(Process):
    buf: Array[word, depth] = ...``) resolves as Python resolves it without ``from
    __future__ import annotations``. Empty for a class declared at module level."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_name == "__init_subclass__":
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None or frame.f_locals is frame.f_globals:
        return {}
    return dict(frame.f_locals)


def class_loc(cls: type) -> SrcLoc:
    """Where a class was defined (file and line of its ``class`` statement)."""
    loc = cls.__dict__.get("_sme_src_loc")
    if isinstance(loc, SrcLoc):
        return loc
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None) or "<unknown>"
    return SrcLoc(file, 0)


_MISSING = object()
MISSING: Any = _MISSING
