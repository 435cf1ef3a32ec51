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
        localns = dict(vars(klass))
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
