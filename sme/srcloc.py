"""Source locations of the things a user builds, so that errors can point at their lines."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

_SME_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class SrcLoc:
    """A place in the user's source: file and line."""

    file: str
    line: int

    def __str__(self) -> str:
        path = self.file
        try:
            rel = os.path.relpath(path)
            if not rel.startswith(".."):
                path = rel
        except ValueError:
            pass
        return f"{path}:{self.line}"


UNKNOWN = SrcLoc("<unknown>", 0)


def _is_internal(filename: str) -> bool:
    return os.path.dirname(os.path.abspath(filename)) == _SME_DIR


def caller(skip_self: object = None) -> SrcLoc:
    """Return the first frame outside the ``sme`` package itself.

    Frames whose ``self`` is ``skip_self`` are skipped too, so that a subclass's
    ``__init__`` calling ``super().__init__`` reports the line that built the object.
    """
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if not _is_internal(code.co_filename) and not (
            skip_self is not None and frame.f_locals.get("self") is skip_self
        ):
            return SrcLoc(code.co_filename, frame.f_lineno)
        frame = frame.f_back  # type: ignore[assignment]
    return UNKNOWN
