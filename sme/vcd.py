"""Writing a ``Trace`` as a VCD file that GTKWave (or any waveform viewer) opens.

Each tick is one clock period of 10 ns; a ``clk`` signal is added so the viewer shows the
edges. Bool and integer signals are bit vectors (signed ones in two's complement), enums
are strings (member names), fixed-point values are reals, arrays are one variable per
element, and undefined values are ``x``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vcd import VCDWriter

from .trace import UNDEFINED, Trace
from .types import ArrayType, BoolType, EnumType, FixedType, SignalType

PERIOD_NS = 10


def _kind(t: SignalType) -> tuple[str, int | None]:
    if isinstance(t, EnumType):
        return "string", None
    if isinstance(t, FixedType):
        return "real", 64
    return "wire", t.width


def _encode(t: SignalType, value: Any) -> Any:
    if value is UNDEFINED:
        return "x" if not isinstance(t, (EnumType, FixedType)) else (
            "U" if isinstance(t, EnumType) else float("nan"))
    if isinstance(t, BoolType):
        return 1 if value else 0
    if isinstance(t, EnumType):
        return value.name
    if isinstance(t, FixedType):
        return float(value)
    v = int(value)
    return v & ((1 << t.width) - 1)


def write_vcd(trace: Trace, path: str | os.PathLike[str]) -> Path:
    """Write ``trace`` to ``path`` as VCD; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w") as fh, VCDWriter(fh, timescale="1 ns", date="",
                                            comment=f"smeflow trace of {trace.network}") as w:
        clk = w.register_var(trace.network, "clk", "wire", size=1, init=0)
        variables: list[list[tuple[Any, SignalType]]] = []
        for col in trace.columns:
            bus, _, sig = col.name.partition(".")
            scope = f"{trace.network}.{bus}"
            t = col.type
            if isinstance(t, ArrayType):
                el = t.element
                kind, size = _kind(el)
                variables.append([
                    (w.register_var(scope, f"{sig}[{i}]", kind, size=size), el)
                    for i in range(t.length)
                ])
            else:
                kind, size = _kind(t)
                variables.append([(w.register_var(scope, sig, kind, size=size), t)])
        previous: list[Any] = [object()] * len(trace.columns)
        for row_index, row in enumerate(trace.rows):
            time = row_index * PERIOD_NS
            if row_index:
                w.change(clk, time, 1)
            for j, value in enumerate(row):
                if value == previous[j] and type(value) is type(previous[j]):
                    continue
                previous[j] = value
                col_vars = variables[j]
                if len(col_vars) > 1 or isinstance(trace.columns[j].type, ArrayType):
                    items = [UNDEFINED] * len(col_vars) if value is UNDEFINED else list(value)
                    for (var, el), item in zip(col_vars, items, strict=True):
                        w.change(var, time, _encode(el, item))
                else:
                    var, t = col_vars[0]
                    w.change(var, time, _encode(t, value))
            if row_index:
                w.change(clk, time + PERIOD_NS // 2, 0)
        w.flush(len(trace.rows) * PERIOD_NS)
    return target
