"""VHDL names: case-insensitive clashes, reserved words, names the generated code or its
libraries use, and Python identifiers VHDL cannot spell, in ports, signals, variables,
generics, states, entities, labels and types. Each design exports, passes GHDL's analysis
without warnings and its testbench, and matches the compiled backend."""

from __future__ import annotations

import enum
import re
from pathlib import Path

import pytest

from fpga.export import export, record_trace
from fpga.ghdl import analyse
from fpga.pytest_plugin import HardwareTester
from fpga.vhdl.names import Namer, legal
from sme import Bool, Bus, In, Network, Out, Process, UInt, wrap

pytestmark = pytest.mark.ghdl


class Mode(enum.Enum):
    A = 0
    a = 1   # a member that differs from another only in letter case
    NEXT = 2


Mode2 = enum.Enum("Mode", [("IN", 0), ("OUT", 3)])  # type: ignore[misc]  # another "Mode"


class Output(Bus):
    Index: UInt[8] = 0
    mode: Mode = Mode.A


class Shift(Bus):
    left: UInt[4] = 0      # top-level signal shift_left: numeric_std's function
    signal: Bool = False   # a reserved word after the bus name: shift_signal is fine


class Other(Bus):
    out: Mode2 = Mode2.IN  # type: ignore[valid-type]


class Signal(Process):
    """A class named by a reserved word, fields that clash with generated names."""

    shift: In[Shift]
    output: Out[Output]
    other: Out[Other]
    output_index: UInt[8] = 3     # beside port 'output' signal 'Index'
    output_index_next: UInt[8] = 0  # beside the _next variable of output.Index
    count: UInt[8] = 0
    count_init: UInt[8] = 7       # beside the generic of 'count'
    tick_state: Bool = False      # a name the state machine declares
    st_start: UInt[2] = 0         # a state literal's name

    def on_tick(self):  # type: ignore[no-untyped-def]
        _tmp = self.shift.left + 1            # leading underscore
        resize_ = _tmp * 2                   # trailing underscore, a numeric_std name
        zähler = self.count + self.count_init  # not ASCII
        while True:
            self.count = wrap(zähler)
            self.output_index = wrap(self.output_index + resize_)
            self.output_index_next = wrap(self.output_index_next + 1)
            self.tick_state = not self.tick_state
            self.st_start = wrap(self.st_start + 1)
            self.output.Index = wrap(self.output_index + self.count)
            self.output.mode = Mode.a if self.shift.signal else Mode.NEXT
            self.other.out = Mode2.OUT if self.tick_state else Mode2.IN
            yield
            self.output.mode = Mode.A
            yield


class Stage(Process):
    src: In[Output]
    dst: Out[Shift]

    def on_tick(self) -> None:
        self.dst.left = self.src.Index % 16
        self.dst.signal = self.src.mode == Mode.a


def _stage_b() -> type[Process]:
    class Stage(Process):  # a second class called Stage
        src: In[Shift]
        dst: Out[Shift]

        def on_tick(self) -> None:
            self.dst.left = self.src.left
            self.dst.signal = not self.src.signal

    return Stage


def build() -> Network:
    shift, out, loop = Shift(name="shift"), Output(name="output"), Shift(name="loop")
    sig = Signal(name="clk", shift=shift, output=out, other=Other(name="other"))
    return Network("names", [sig, Stage(name="rst", src=out, dst=loop),
                             _stage_b()(name="sel", src=loop, dst=Shift(name="done"))],
                   inputs=[shift])


def stimulus() -> list[dict[str, object]]:
    return [{"shift.left": i % 16, "shift.signal": i % 3 == 0} for i in range(40)]


def test_clashing_names_pass_ghdl_and_match_compiled(sme_hw: HardwareTester) -> None:
    sme_hw.all_backends(build(), stimulus())


def test_names_are_readable_and_unique(tmp_path: Path) -> None:
    net = build()
    export(net, tmp_path, record_trace(net, stimulus()[:3]))
    result = analyse(tmp_path)
    assert result.ok and result.warnings == [], result.output
    proc = (tmp_path / "Signal_r.vhd").read_text()
    assert "output_Index : out unsigned(7 downto 0)" in proc
    assert re.search(r"variable output_index_2 : unsigned\(7 downto 0\) := output_index_init;",
                     proc)
    assert "count_init_2 : unsigned(7 downto 0)" in proc  # the generic of 'count'
    assert "variable tick_state_2 : std_logic" in proc
    for name in ("tmp", "resize_r", "zxe4hler"):
        assert f"variable {name} :" in proc
    assert {"Stage.vhd", "Stage_2.vhd"} <= {p.name for p in tmp_path.iterdir()}
    pkg = (tmp_path / "names_pkg.vhd").read_text()
    assert "type Mode_t is (Mode_A, Mode_a_2, Mode_NEXT);" in pkg
    assert "subtype Mode_t_2 is unsigned(1 downto 0);" in pkg
    top = (tmp_path / "names.vhd").read_text()
    assert "shift_left_r : in unsigned(3 downto 0)" in top
    assert re.search(r"^  clk_inst : entity work\.Signal_r$", top, re.M)
    identifiers = re.findall(r"^\s*(?:variable|signal|constant)\s+(\w+)", proc, re.M)
    lowered = [i.lower() for i in identifiers]
    assert len(lowered) == len(set(lowered)), identifiers


@pytest.mark.parametrize(("python", "vhdl"), [
    ("_tmp", "tmp"), ("a__b", "a_b"), ("x_", "x"), ("_1", "v1"), ("zähler", "zxe4hler"),
    ("__", "v"), ("ok_name", "ok_name"),
])
def test_legal_spellings(python: str, vhdl: str) -> None:
    assert legal(python) == vhdl


def test_namer_is_case_insensitive_and_avoids_reserved_words() -> None:
    n = Namer(["clk"])
    assert [n.take(x) for x in ("Count", "count", "COUNT", "signal", "Signal", "CLK",
                                "to_integer", "rising_edge", "sel")] == [
        "Count", "count_2", "COUNT_3", "signal_r", "Signal_2", "CLK_2", "to_integer_r",
        "rising_edge_r", "sel_r"]
