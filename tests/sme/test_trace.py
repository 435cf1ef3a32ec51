"""Traces: the CSV format (the VHDL testbench's contract), reading it back, differences."""

import enum
from pathlib import Path
from typing import Any

import pytest

from sme import (
    UNDEFINED,
    Array,
    Bool,
    Bus,
    Fixed,
    In,
    Int,
    Network,
    Out,
    Process,
    SFix,
    Simulator,
    Trace,
    UInt,
)
from sme.trace import Column, Difference, TraceFormatError, format_table


class Phase(enum.Enum):
    IDLE = 0
    BUSY = 1


class Ctrl(Bus):
    go: Bool = False
    step: Int[8] = 0


class State(Bus):
    count: Int[8] = 0
    phase: Phase = Phase.IDLE
    gain: SFix[4, 2] = 0
    last: Array[UInt[4], 2] = (0, 0)
    seen: UInt[8]


class Machine(Process):
    ctrl: In[Ctrl]
    out: Out[State]

    def on_tick(self) -> None:
        if self.ctrl.go:
            self.out.count = self.out.count + self.ctrl.step
            self.out.phase = Phase.BUSY
            self.out.gain = Fixed(-3, 2)
            self.out.last = [self.out.last[1], 5]
            self.out.seen = 1


def simulate() -> Simulator:
    sim = Simulator(Network("machine", [Machine(out=State(), ctrl=Ctrl())]))
    sim.run(stimulus=[{"ctrl.go": False}, {"ctrl.go": True, "ctrl.step": -2},
                      {"ctrl.step": 3}])
    return sim


EXPECTED_CSV = """\
ctrl.go,ctrl.step,state.count,state.phase,state.gain,state.last,state.seen
0,0,0,IDLE,0,0 0,U
0,0,0,IDLE,0,0 0,U
1,-2,-2,BUSY,-3,0 5,1
1,3,1,BUSY,-3,5 5,1
"""


def test_csv_format(tmp_path: Path) -> None:
    sim = simulate()
    assert sim.trace is not None
    path = sim.trace.write_csv(tmp_path / "deep" / "machine.csv")
    assert path == tmp_path / "deep" / "machine.csv"
    assert path.read_text() == EXPECTED_CSV
    assert [p.name for p in path.parent.iterdir()] == ["machine.csv"]  # no temporary left


def test_header_lists_top_level_inputs_first() -> None:
    class Early(Bus):
        x: UInt[4] = 0

    class Late(Bus):
        y: UInt[4] = 0

    class Uses(Process):
        out: Out[Early]
        inp: In[Late]

        def on_tick(self) -> None:
            self.out.x = self.inp.y

    trace = Simulator(Network("n", [Uses()])).trace
    assert trace is not None
    assert trace.names == ["late.y", "early.x"]
    assert [c.is_input for c in trace.columns] == [True, False]


def test_csv_round_trip(tmp_path: Path) -> None:
    sim = simulate()
    trace = sim.trace
    assert trace is not None
    path = trace.write_csv(tmp_path / "t.csv")
    back = Trace.read_csv(path, like=trace)
    assert back == trace
    assert back.rows[1][6] is UNDEFINED
    assert back.rows[2][4] == Fixed(-3, 2)
    assert back.rows[3][3] is Phase.BUSY
    assert back.rows[3][5] == (5, 5)
    assert back.network == "machine"


def test_a_trace_saved_by_excel_reads_back_the_same(tmp_path: Path) -> None:
    """Opened in Excel and saved as "CSV UTF-8": a byte order mark before the header and
    CRLF line ends (Python's csv module writes the same with ``encoding="utf-8-sig"``);
    the mark was read into the first column's name, and the trace refused."""
    import csv

    sim = simulate()
    trace = sim.trace
    assert trace is not None
    rows = list(csv.reader(trace.write_csv(tmp_path / "t.csv").open(newline="")))
    excel = tmp_path / "excel.csv"
    with excel.open("w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f, dialect="excel").writerows(rows)
    assert excel.read_bytes()[:3] == b"\xef\xbb\xbf"
    assert Trace.read_csv(excel, like=trace) == trace
    # a byte that is not UTF-8 is named at its offset in the file, the mark counted
    data = excel.read_bytes()
    at = data.index(b"\n", data.index(b"\n") + 1) + 3  # (on line 3)
    excel.write_bytes(data[:at] + b"\xff" + data[at:])
    with pytest.raises(TraceFormatError, match=rf"excel\.csv:3: not UTF-8 text \(byte 0xff "
                                               rf"at offset {at}\)"):
        Trace.read_csv(excel, like=trace)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"bad\.csv:1: empty trace file \(no header\)$"),
        ("ctrl.go,ctrl.nope\n", r"bad\.csv:1: column 2 'ctrl\.nope' is not a signal of network "
         r"'machine'$"),
    ],
)
def test_trace_header_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    like = simulate().trace
    assert like is not None
    path = write(tmp_path, text)
    with pytest.raises(TraceFormatError, match=message) as info:
        Trace.read_csv(path, like=like)
    assert str(info.value).startswith(str(path))


def _with_cell(like: Trace, column: str, cell: str, row: int) -> str:
    """A full CSV of ``like`` whose ``row``-th data row has ``cell`` in ``column``."""
    lines = [",".join(like.names)]
    valid = next(like.text_rows())
    for i in range(row + 1):
        cells = list(valid)
        if i == row:
            cells[like.names.index(column)] = cell
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def test_short_row_is_an_error(tmp_path: Path) -> None:
    like = simulate().trace
    assert like is not None
    path = write(tmp_path, ",".join(like.names) + "\n" + ",".join(next(like.text_rows()))
                 + "\n1\n")
    with pytest.raises(TraceFormatError, match=rf"bad\.csv:3: 1 cells, expected {len(like.names)}$"):
        Trace.read_csv(path, like=like)


@pytest.mark.parametrize(
    ("column", "cell", "row", "message"),
    [
        ("ctrl.go", "2", 2, r"bad\.csv:4: column ctrl\.go: '2' is not a Bool "
         r"\('2' is not a Bool \(expected 0 or 1\)\)$"),
        ("ctrl.step", "200", 0, r"bad\.csv:2: column ctrl\.step: '200' is not a Int\[8\] \(200 is "
         r"out of range\)$"),
        ("ctrl.step", "x", 0, r"bad\.csv:2: column ctrl\.step: 'x' is not a Int\[8\]"),
        ("state.phase", "RUN", 0, r"bad\.csv:2: column state\.phase: 'RUN' is not a Phase \('RUN' "
         r"is not a member of Phase\)$"),
        ("state.gain", "99", 0, r"bad\.csv:2: column state\.gain: '99' is not a SFix\[4, 2\]"),
        ("state.last", "1 2 3", 0, r"bad\.csv:2: column state\.last: '1 2 3' is not a "
         r"Array\[UInt\[4\], 2\] \(has 3 elements, expected 2\)$"),
        ("state.last", "1 16", 0, r"bad\.csv:2: column state\.last: '1 16' is not a Array"),
    ],
)
def test_trace_cell_errors_name_file_line_and_column(
    tmp_path: Path, column: str, cell: str, row: int, message: str
) -> None:
    like = simulate().trace
    assert like is not None
    path = write(tmp_path, _with_cell(like, column, cell, row))
    with pytest.raises(TraceFormatError, match=message) as info:
        Trace.read_csv(path, like=like)
    assert str(info.value).startswith(str(path))


def test_differences() -> None:
    expected = simulate().trace
    assert expected is not None
    assert expected.differences(expected) == []
    assert expected.first_difference(expected) is None
    other = Trace(expected.network, expected.columns, [list(r) for r in expected.rows])
    other.rows[2][2] = -5  # type: ignore[index]
    other.rows[3][0] = False  # type: ignore[index]
    other.rows[3][5] = [5, 5]  # type: ignore[index]  # a list equals the same tuple
    got = expected.differences(other)
    assert got == [Difference(2, "state.count", -2, -5), Difference(3, "ctrl.go", True, False)]
    assert str(got[0]) == "tick 2, signal state.count: expected -2, got -5"
    assert expected.differences(other, limit=1) == got[:1]
    assert expected.first_difference(other) == got[0]
    assert expected != other


def test_differences_in_shape() -> None:
    expected = simulate().trace
    assert expected is not None
    shorter = Trace(expected.network, expected.columns, expected.rows[:2])
    assert expected.differences(shorter) == [Difference(2, "<rows>", 4, 2)]
    narrower = Trace(expected.network, expected.columns[1:], [r[1:] for r in expected.rows])
    assert expected.differences(narrower) == [
        Difference(0, "ctrl.go", "column present", "column missing")]
    assert expected != narrower
    assert expected.__eq__(3) is NotImplemented


def test_trace_accessors_and_table() -> None:
    trace = simulate().trace
    assert trace is not None
    assert trace.ticks == 3
    assert Trace("x", []).ticks == 0
    assert trace.column("state.count") == [0, 0, -2, 1]
    with pytest.raises(KeyError, match=r"trace has no signal 'nope'; signals: ctrl\.go, "):
        trace.column("nope")
    table = format_table(trace).splitlines()
    assert table[0].split() == ["tick", *trace.names]
    assert table[1].split() == ["reset", "0", "0", "0", "IDLE", "0", "0", "0", "U"]
    assert table[4].split()[0] == "2"
    assert len(format_table(trace, rows=[0]).splitlines()) == 2


def test_two_simulations_write_the_same_file(tmp_path: Path) -> None:
    a, b = simulate().trace, simulate().trace
    assert a is not None
    assert b is not None
    assert a.write_csv(tmp_path / "a.csv").read_bytes() == b.write_csv(
        tmp_path / "b.csv").read_bytes()


def test_columns_carry_types() -> None:
    trace: Any = simulate().trace
    assert trace.columns[0] == Column("ctrl.go", Bool, True)
    assert trace.columns[2] == Column("state.count", Int[8], False)


def test_read_csv_rejects_missing_and_repeated_columns(tmp_path: Path) -> None:
    from sme.examples import counter
    from sme.trace import TraceFormatError

    sim = Simulator(counter.build())
    sim.step()
    assert sim.trace is not None
    path = tmp_path / "t.csv"
    path.write_text("counter_control.valid,counter_data.value\n0,0\n")
    with pytest.raises(TraceFormatError, match=r"t\.csv:1: the header lacks counter_control\.reset"):
        Trace.read_csv(path, sim.trace)
    path.write_text("counter_control.valid,counter_control.valid,counter_control.reset,"
                    "counter_data.value\n0,0,0,0\n")
    with pytest.raises(TraceFormatError, match=r"header repeats counter_control\.valid"):
        Trace.read_csv(path, sim.trace)
