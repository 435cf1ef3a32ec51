"""Errors of the lowering front end: Python in a process body that no backend can translate."""

from __future__ import annotations

from ..errors import SmeError
from .ir import Loc


class LoweringError(SmeError):
    """A process body cannot be lowered; the message starts with ``file:line:col``."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(f"{loc}: {message}")
        self.loc = loc
        self.detail = message


class SourceUnavailableError(LoweringError):
    """The source of a process body cannot be read (defined at the prompt or by ``exec``):
    the compiled backend and the exporter refuse it; the interpreter runs it unchecked."""


class UnsupportedConstructError(LoweringError):
    """The body uses a Python construct outside the translatable subset; ``construct`` names
    it (for example ``"while loop"``)."""

    def __init__(self, loc: Loc, construct: str, message: str) -> None:
        super().__init__(loc, message)
        self.construct = construct


class LoweringTypeError(LoweringError):
    """An expression's types do not combine (for example a Bool in arithmetic, an enum
    compared with a number, a local whose type cannot be inferred)."""
