"""Fuzzing the parsers of ``sme``: the CSV trace reader and the ``MODULE:NAME`` specs.

Property: for any input the parser returns a valid result or raises exactly its
documented error (``TraceFormatError`` naming the file and line; ``CliError`` naming the
spec) — never an ``IndexError``, ``UnicodeDecodeError``, ``csv.Error`` or the like.

Hypothesis settings: ``derandomize=True`` so CI runs the same examples every time (a
failure is reproducible from the test name alone) and ``database=None`` so nothing is
written into the tree; ``SMEFLOW_FUZZ_EXAMPLES`` raises the example count and turns the
randomisation back on (``benchmarks/fuzz_nightly.py`` does that for long runs).
"""

from __future__ import annotations

import enum
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sme import Array, Bool, Bus, Fixed, In, Int, Network, Out, Process, SFix, Simulator, UInt
from sme.cli import CliError, load_object
from sme.trace import Trace, TraceFormatError

_NIGHTLY = int(os.environ.get("SMEFLOW_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_NIGHTLY or 250, deadline=None, derandomize=not _NIGHTLY,
                database=None, suppress_health_check=[HealthCheck.too_slow])


class Mode(enum.Enum):
    OFF = 0
    ON = 1


class Knobs(Bus):
    go: Bool = False
    step: Int[8] = 0


class Status(Bus):
    count: Int[8] = 0
    mode: Mode = Mode.OFF
    gain: SFix[4, 2] = 0
    last: Array[UInt[4], 2] = (0, 0)
    seen: UInt[8]


class Machine(Process):
    knobs: In[Knobs]
    status: Out[Status]

    def on_tick(self) -> None:
        if self.knobs.go:
            self.status.count = self.status.count + self.knobs.step
            self.status.mode = Mode.ON
            self.status.gain = Fixed(-3, 2)
            self.status.last = [self.status.last[1], 5]
            self.status.seen = 1


def _reference() -> tuple[Trace, bytes]:
    sim = Simulator(Network("machine", [Machine(status=Status(), knobs=Knobs())]))
    sim.run(stimulus=[{"knobs.go": False}, {"knobs.go": True, "knobs.step": -2},
                      {"knobs.step": 3}])
    assert sim.trace is not None
    with tempfile.TemporaryDirectory() as d:
        path = sim.trace.write_csv(Path(d) / "t.csv")
        return sim.trace, path.read_bytes()


TRACE, CSV = _reference()


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """One file rewritten by every example (hypothesis runs examples one after another)."""
    with tempfile.TemporaryDirectory(prefix="fuzz_trace_") as d:
        yield Path(d) / "fuzzed.csv"


def _mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """Near-valid files: truncated, one byte flipped/inserted, a cell replaced."""
    n = len(valid)
    truncated = st.integers(0, n).map(lambda i: valid[:i])
    flipped = st.tuples(st.integers(0, n - 1), st.integers(1, 255)).map(
        lambda t: valid[:t[0]] + bytes([valid[t[0]] ^ t[1]]) + valid[t[0] + 1:])
    inserted = st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=8)).map(
        lambda t: valid[:t[0]] + t[1] + valid[t[0]:])
    cells = re.split(rb"([,\n])", valid)
    replaced = st.tuples(st.integers(0, len(cells) - 1), st.text(max_size=12)).map(
        lambda t: b"".join([*cells[:t[0]], t[1].encode("utf-8", "surrogatepass"), *cells[t[0] + 1:]]))
    return st.one_of(truncated, flipped, inserted, replaced)


def _check_read(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        back = Trace.read_csv(path, like=TRACE)
    except TraceFormatError as exc:
        assert re.match(rf"{re.escape(str(path))}:\d+: ", str(exc)), str(exc)
        event("rejected")
        return
    event("accepted")
    assert back.names and sorted(back.names) == sorted(TRACE.names)
    for row in back.rows:
        assert len(row) == len(TRACE.columns)


@FUZZ
@given(data=st.binary(max_size=400))
def test_trace_reader_on_random_bytes(scratch: Path, data: bytes) -> None:
    _check_read(scratch, data)


@FUZZ
@given(data=st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_trace_reader_on_random_text(scratch: Path, data: bytes) -> None:
    _check_read(scratch, data)


@FUZZ
@given(data=_mutations(CSV))
def test_trace_reader_on_near_valid_files(scratch: Path, data: bytes) -> None:
    _check_read(scratch, data)


def test_the_reference_trace_reads_back(scratch: Path) -> None:
    """The mutations start from a file the reader accepts (else they test nothing)."""
    scratch.write_bytes(CSV)
    assert Trace.read_csv(scratch, like=TRACE) == TRACE


@pytest.mark.parametrize(("data", "message"), [
    (b"\xff\xfe" + CSV, r":1: not UTF-8 text"),
    (CSV.replace(b"OFF,0,0 0", b"OFF,0,0 \xe9", 1), r":2: not UTF-8 text \(byte 0xe9"),
    (CSV + b"1," + b"x" * 200_000 + b"\n", r":6: field larger than field limit"),
    (CSV.replace(b"0,0,0,OFF", b"0,0,0" + b"1" * 5000 + b",OFF", 1), r":2: column"),
])
def test_trace_reader_regressions(scratch: Path, data: bytes, message: str) -> None:
    """Inputs the fuzzing found: undecodable bytes, csv-module errors, huge integers."""
    scratch.write_bytes(data)
    with pytest.raises(TraceFormatError, match=re.escape(str(scratch)) + message):
        Trace.read_csv(scratch, like=TRACE)


# -- MODULE:NAME specs (smeflow sim / graph / vhdl) ----------------------------------------

# Module names stay within the project's own packages: importing arbitrary installed
# modules from random text could have side effects.
_MODULES = st.sampled_from(["sme", "sme.examples.counter", "sme.examples", "", ".", ".sme",
                            "..x", "sme.", "sme..x", "sme.nope", "no_such_module", " sme",
                            "sme\x00", "sme/examples", "sme.examples.counter.build"])


@FUZZ
@given(spec=st.tuples(_MODULES, st.sampled_from([":", "", "::"]), st.text(max_size=20))
       .map("".join))
def test_module_specs_load_or_raise_cli_error(spec: str) -> None:
    try:
        load_object(spec)
    except CliError as exc:
        assert str(exc).startswith(repr(spec)), str(exc)
