"""Traces: the value of every bus signal after every tick.

A trace is the equivalence contract between backends: two simulations of a network agree
when their traces are equal. Its CSV form is what the VHDL testbench replays:

* the header lists ``bus.signal`` names, top-level inputs first;
* row 0 is the reset state, row ``k`` the state right after tick ``k - 1`` (inputs as
  driven for that tick);
* Bool is ``0``/``1``, integers are decimal, enums are member names, fixed-point values are
  their raw integer (value × 2**f), arrays are their elements separated by spaces, and a
  signal that has no value yet is ``U``.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic_file import atomic_write
from .errors import SmeError
from .types import SignalType, TypeMisfit

UNDEFINED_TEXT = "U"
ROW_BYTES = 48
"""Host bytes a trace row takes at least, whatever its signals: the row's tuple (40) and
its slot in the trace's list (8)."""
VALUE_BYTES = 8
"""Host bytes a trace row takes at least per signal: the tuple's reference to the value
(the values themselves are often shared: small integers, Booleans, enum members)."""


def memory_floor(rows: int, signals: int) -> int:
    """Host bytes a trace of ``rows`` rows of ``signals`` signals takes at least:
    ``rows × (ROW_BYTES + signals × VALUE_BYTES)``. A floor, not the peak: measured with
    200 000 ticks, the interpreter's rows take 75 bytes with the counter's 3 signals (floor
    72) and 135 with the pipeline's 10 (floor 128); the compiled backend's 117 and 242 once
    its raw rows are converted. The trace is held whole (every row is kept until the run
    ends and is written), so its size grows with the ticks asked for."""
    return rows * (ROW_BYTES + signals * VALUE_BYTES)


@dataclass(frozen=True)
class TraceBudget:
    """How long a trace of ``signals`` signals may grow on this machine: ``limit`` bytes
    (:data:`sme.host_memory.MEMORY_FRACTION` of the ``available`` memory) and the most
    ticks whose trace's :func:`memory_floor` fits under it (``ticks``; the reset row
    counted). A run held to it ends with an error, not with the machine out of memory."""

    signals: int
    available: int
    limit: int
    ticks: int

    @classmethod
    def now(cls, signals: int) -> TraceBudget:
        """The budget for ``signals`` signals with the memory available now."""
        from .host_memory import MEMORY_FRACTION, available_memory

        available = available_memory()
        limit = int(available * MEMORY_FRACTION)
        return cls(signals, available, limit, max(0, limit // memory_floor(1, signals) - 1))

    def explain(self) -> str:
        """The limit in words, for the message of a run it refuses."""
        from .host_memory import MEMORY_FRACTION

        return (f"the {size_text(self.limit)} a run may take ({MEMORY_FRACTION:.0%} of the "
                f"{size_text(self.available)} available)")


def size_text(nbytes: int) -> str:
    """``nbytes`` in GiB, or in MiB when under one GiB (for messages about memory)."""
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


class _Undefined:
    """The value of a signal that has no initial value and was never written."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Any = _Undefined()


class TraceFormatError(SmeError, ValueError):
    """A CSV trace cannot be read: the message names the file, line and column."""


@dataclass(frozen=True)
class Column:
    """A trace column: ``bus.signal``, its type and whether it is a top-level input."""

    name: str
    type: SignalType
    is_input: bool


@dataclass(frozen=True)
class Difference:
    """The first place where two traces disagree."""

    tick: int
    signal: str
    expected: Any
    got: Any

    def __str__(self) -> str:
        return (f"tick {self.tick}, signal {self.signal}: expected {self.expected!r}, "
                f"got {self.got!r}")


class Trace:
    """Rows of signal values; ``rows[0]`` is the reset state.

    A simulator may record rows cheaply (``defer``): it appends raw rows (say, a copy of a
    state array) and they become rows of Python values only when ``rows`` is read."""

    def __init__(self, network: str, columns: list[Column],
                 rows: list[tuple[Any, ...]] | None = None) -> None:
        self.network = network
        self.columns = columns
        self._rows: list[tuple[Any, ...]] = [] if rows is None else rows
        self._pending: list[Any] = []
        self._convert: Callable[[list[Any]], list[tuple[Any, ...]]] | None = None

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        """The rows (raw rows recorded through ``defer`` are converted first)."""
        if self._pending:
            assert self._convert is not None
            self._rows.extend(self._convert(self._pending))
            self._pending.clear()
        return self._rows

    @rows.setter
    def rows(self, rows: list[tuple[Any, ...]]) -> None:
        self._pending.clear()
        self._rows = rows

    def defer(self, convert: Callable[[list[Any]], list[tuple[Any, ...]]]
              ) -> Callable[[Any], None]:
        """Record rows cheaply from now on: the returned function appends one raw row, and
        ``convert`` turns a list of raw rows into rows when ``rows`` is next read. Rows
        appended to ``rows`` directly keep their order with the raw ones."""
        _ = self.rows  # converts what an earlier converter left
        self._convert = convert
        return self._pending.append

    def __repr__(self) -> str:
        return (f"Trace(network={self.network!r}, {len(self.columns)} columns, "
                f"{self.ticks} ticks)")

    @property
    def names(self) -> list[str]:
        """Column names (``bus.signal``)."""
        return [c.name for c in self.columns]

    @property
    def ticks(self) -> int:
        """Number of ticks recorded (rows after the reset row)."""
        return max(0, len(self.rows) - 1)

    def column(self, name: str) -> list[Any]:
        """All values of one signal, row by row."""
        try:
            i = self.names.index(name)
        except ValueError:
            raise KeyError(
                f"trace has no signal {name!r}; signals: {', '.join(self.names)}"
            ) from None
        return [row[i] for row in self.rows]

    def differences(self, other: Trace, limit: int = 10) -> list[Difference]:
        """Up to ``limit`` differences of ``other`` from ``self`` (self is the expectation),
        in tick order; a missing column or row counts as a difference."""
        out: list[Difference] = []
        mine = {c.name: i for i, c in enumerate(self.columns)}
        theirs = {c.name: i for i, c in enumerate(other.columns)}
        for name in mine:
            if name not in theirs:
                return [Difference(0, name, "column present", "column missing")]
        for tick, (a, b) in enumerate(zip(self.rows, other.rows, strict=False)):
            for name, i in mine.items():
                va, vb = a[i], b[theirs[name]]
                if va != vb and not (_is_seq(va) and _is_seq(vb) and tuple(va) == tuple(vb)):
                    out.append(Difference(tick, name, va, vb))
                    if len(out) >= limit:
                        return out
        if len(self.rows) != len(other.rows):
            out.append(Difference(min(len(self.rows), len(other.rows)), "<rows>",
                                  len(self.rows), len(other.rows)))
        return out

    def first_difference(self, other: Trace) -> Difference | None:
        """The first difference, or None when the traces are equal."""
        diffs = self.differences(other, limit=1)
        return diffs[0] if diffs else None

    # -- CSV ----------------------------------------------------------------------------
    def text_rows(self) -> Iterator[list[str]]:
        """Rows as CSV cells."""
        types = [c.type for c in self.columns]
        for row in self.rows:
            yield [UNDEFINED_TEXT if v is UNDEFINED else t.to_text(v)
                   for t, v in zip(types, row, strict=True)]

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the trace as CSV, atomically (a reader never sees half a file)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target, newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(self.names)
            w.writerows(self.text_rows())
        return target

    @classmethod
    def read_csv(cls, path: str | os.PathLike[str], like: Trace) -> Trace:
        """Read a CSV trace whose columns are those of ``like`` (same network).

        Raises
        ------
        TraceFormatError
            The file is not a UTF-8 CSV trace of ``like``'s network; the message names
            the file and line (and the column when one cell is wrong).
        OSError
            The file cannot be read at all.
        """
        raw = Path(path).read_bytes()
        bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0  # (Excel's)
        try:
            text = raw[bom:].decode("utf-8")
        except UnicodeDecodeError as exc:
            exc.start += bom  # (an offset in the file, not after its byte order mark)
            line = raw.count(b"\n", 0, exc.start) + 1
            raise TraceFormatError(f"{path}:{line}: not UTF-8 text (byte "
                                   f"{raw[exc.start]:#04x} at offset {exc.start})") from None
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            columns, rows = _parse_csv(path, reader, like)
        except csv.Error as exc:
            raise TraceFormatError(f"{path}:{reader.line_num}: {exc}") from None
        return cls(like.network, columns, rows)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trace):
            return NotImplemented
        return self.names == other.names and self.first_difference(other) is None

    __hash__ = None  # type: ignore[assignment]


def _is_seq(v: Any) -> bool:
    return isinstance(v, (list, tuple))


def _parse_csv(path: str | os.PathLike[str], reader: Iterator[list[str]], like: Trace
               ) -> tuple[list[Column], list[tuple[Any, ...]]]:
    """Header and rows of a CSV trace of ``like``'s network (see ``Trace.read_csv``)."""
    types = {c.name: c for c in like.columns}
    try:
        header = next(reader)
    except StopIteration:
        raise TraceFormatError(f"{path}:1: empty trace file (no header)") from None
    for j, name in enumerate(header):
        if name not in types:
            raise TraceFormatError(
                f"{path}:1: column {j + 1} {name!r} is not a signal of network "
                f"'{like.network}'"
            )
    repeated = sorted({n for n in header if header.count(n) > 1})
    missing = [n for n in types if n not in header]
    if repeated or missing:
        what = (f"repeats {', '.join(repeated)}" if repeated
                else f"lacks {', '.join(missing)}")
        raise TraceFormatError(
            f"{path}:1: the header {what}; a trace of '{like.network}' has each of "
            "its signals exactly once"
        )
    columns = [types[n] for n in header]
    rows = []
    for lineno, cells in enumerate(reader, start=2):
        if len(cells) != len(columns):
            raise TraceFormatError(
                f"{path}:{lineno}: {len(cells)} cells, expected {len(columns)}"
            )
        row = []
        for col, cell in zip(columns, cells, strict=True):
            if cell == UNDEFINED_TEXT:
                row.append(UNDEFINED)
                continue
            try:
                row.append(col.type.from_text(cell))
            except (ValueError, SmeError, TypeError, TypeMisfit) as exc:
                raise TraceFormatError(
                    f"{path}:{lineno}: column {col.name}: {cell!r} is not a "
                    f"{col.type!r} ({exc})"
                ) from None
        rows.append(tuple(row))
    return columns, rows


def format_table(trace: Trace, rows: Sequence[int] | None = None) -> str:
    """A fixed-width text table of the trace (for the terminal)."""
    names = ["tick", *trace.names]
    text = list(trace.text_rows())
    picked = range(len(text)) if rows is None else rows
    body = [[str(i - 1) if i else "reset", *text[i]] for i in picked]
    widths = [max(len(r[j]) for r in [names, *body]) for j in range(len(names))]
    lines = ["  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)
