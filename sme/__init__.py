"""sme — synchronous message exchange: typed buses, clocked and combinational processes,
networks checked before the first tick, and cycle-accurate simulation.

The semantics are those of ``shared/DESIGN.md`` ("SME semantics"); see the README for a
worked example.
"""

from .backend import Backend, Build, Session, backend_names, get_backend, register_backend
from .bus import Bus
from .errors import (
    ArrayIndexError,
    BackendError,
    BusTypeError,
    CombinationalLoopError,
    DeclarationError,
    MultipleWritersError,
    NetworkError,
    PortDirectionError,
    SignalValueError,
    SimulationError,
    SmeError,
    UnconnectedInputError,
    UndefinedSignalError,
    UnknownSignalError,
)
from .network import Network
from .overflow import resize, saturate, wrap
from .process import In, Out, Process
from .simulator import Simulator
from .trace import UNDEFINED, Trace
from .types import Array, Bool, Fixed, Int, SFix, UFix, UInt, cast

__all__ = [
    "UNDEFINED", "Array", "ArrayIndexError", "Backend", "BackendError", "Bool", "Build", "Bus",
    "BusTypeError", "CombinationalLoopError", "DeclarationError", "Fixed", "In", "Int",
    "MultipleWritersError", "Network", "NetworkError", "Out", "PortDirectionError", "Process",
    "SFix", "Session", "SignalValueError", "SimulationError", "Simulator", "SmeError", "Trace",
    "UFix", "UInt", "UnconnectedInputError", "UndefinedSignalError", "UnknownSignalError",
    "backend_names", "cast", "get_backend", "register_backend", "resize", "saturate", "wrap",
]
