"""The front end shared by every code generator: ``on_tick`` source → typed IR.

``lower_process(cls)`` parses a process class's ``on_tick`` (and the helper functions it
calls), resolves every name, infers the exact type of every expression and returns a
``ProcessIR`` (see ``sme.lower.ir``). Python outside the supported subset raises
``UnsupportedConstructError`` naming file, line, column and construct.
"""

from __future__ import annotations

from .errors import LoweringError, LoweringTypeError, UnsupportedConstructError
from .ir import ProcessIR
from .lower import lower_network, lower_process

__all__ = [
    "LoweringError", "LoweringTypeError", "ProcessIR", "UnsupportedConstructError",
    "lower_network", "lower_process",
]
