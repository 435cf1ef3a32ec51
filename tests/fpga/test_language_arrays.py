"""Array element writes on signals and registers that have no value yet: writing one
element gives the array a value (the others hold their type's zero, as hardware does after
power-up) in every backend; reading an element before any write is an error naming the
signal."""

from __future__ import annotations

import enum

import pytest

from fpga.pytest_plugin import HardwareTester
from sme import Array, Bool, Bus, In, Network, Out, Process, Simulator, UInt
from sme.errors import UndefinedSignalError
from sme.trace import UNDEFINED

pytestmark = pytest.mark.ghdl


class Colour(enum.Enum):
    RED = 3
    GREEN = 5
    BLUE = 9


class Go(Bus):
    go: Bool = False
    at: UInt[2] = 0


class Row(Bus):
    cells: Array[UInt[8], 4]          # no default: undefined until written
    tags: Array[Colour, 2]


class Fill(Process):
    """Writes the row one element at a time, as an SME C# process writes a bus array."""

    go: In[Go]
    row: Out[Row]
    scratch: Array[UInt[4], 3]        # an array register without an initial value

    def on_tick(self) -> None:
        if self.go.go:
            self.scratch[self.go.at % 3] = self.go.at
            self.row.cells[self.go.at] = self.go.at * 10 + self.scratch[0]
            self.row.tags[1] = Colour.BLUE


class Comb(Process, combinational=True):
    """A combinational writer filling two elements of an undefined array."""

    row: In[Row]
    out: Out[Row]

    def on_tick(self) -> None:
        self.out.cells[0] = self.row.cells[3]
        self.out.cells[2] = 1
        self.out.tags[0] = Colour.GREEN


def build() -> Network:
    row = Row()
    return Network("arrays", [Fill(go=Go(), row=row), Comb(row=row, out=Row())])


def stimulus() -> list[dict[str, object]]:
    return [{"go.go": i % 3 != 1, "go.at": (i * 3) % 4} for i in range(12)]


def test_element_writes_define_the_array_in_every_backend(sme_hw: HardwareTester) -> None:
    net = Network("arrays_first", [Fill(go=Go(), row=Row())])
    trace = sme_hw.all_backends(net, stimulus()[2:])  # the first tick writes element 2
    cells = trace.names.index("row.cells")
    assert trace.rows[0][cells] is UNDEFINED
    assert trace.rows[1][cells] == (0, 0, 20, 0)  # 2*10 + scratch[0] (zero: unwritten)
    assert trace.rows[2][cells] == (0, 10, 20, 0)  # element 1 = 1*10 + scratch[0]
    tags = trace.rows[1][trace.names.index("row.tags")]
    assert tags == (Colour.RED, Colour.BLUE)      # the enum's zero is its first member


def test_reading_an_element_before_any_write_names_the_signal() -> None:
    net = build()  # Comb reads row.cells[3] while Fill has not written it yet
    for backend in ("interp", "compiled"):
        with pytest.raises(UndefinedSignalError, match=r"row_0\.cells has no initial value "
                           r"and nothing has written it yet \(read by Comb 'comb'"):
            Simulator(net, backend=backend).run(stimulus=stimulus())


def test_array_register_reads_before_writes_are_errors() -> None:
    class Peek(Process):
        go: In[Go]
        row: Out[Row]
        mem: Array[UInt[4], 2]

        def on_tick(self) -> None:
            self.row.cells[0] = self.mem[1]

    for backend in ("interp", "compiled"):
        sim = Simulator(Network("peek", [Peek(go=Go(), row=Row())]), backend=backend)
        with pytest.raises(UndefinedSignalError, match=r"register peek\.mem has no initial "
                           "value and was read before anything wrote it"):
            sim.step()
