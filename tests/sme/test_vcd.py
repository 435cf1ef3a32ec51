"""VCD output: a waveform file a viewer can open, with the trace's values."""

from __future__ import annotations

import enum
from pathlib import Path

from vcd.reader import TokenKind, tokenize

from sme import Array, Bool, Bus, In, Int, Network, Out, Process, SFix, Simulator, UInt
from sme.examples import counter
from sme.vcd import write_vcd


class Mode(enum.Enum):
    IDLE = 0
    RUN = 1


class Wide(Bus):
    flag: Bool = False
    neg: Int[8] = 0
    mode: Mode = Mode.IDLE
    gain: SFix[4, 4] = 0
    arr: Array[UInt[4], 2] = (0, 0)
    later: UInt[4]


class Src(Bus):
    go: Bool = False


class Driver(Process, simulation_only=True):  # a float gain: a testbench driver
    src: In[Src]
    out: Out[Wide]

    def on_tick(self) -> None:
        if self.src.go:
            self.out.flag = True
            self.out.neg = -3
            self.out.mode = Mode.RUN
            self.out.gain = -1.5
            self.out.arr = [1, 15]
            self.out.later = 9


def _changes(path: Path) -> dict[str, list[tuple[int, object]]]:
    ids: dict[str, str] = {}
    changes: dict[str, list[tuple[int, object]]] = {}
    scope: list[str] = []
    time = 0
    with open(path, "rb") as fh:
        for tok in tokenize(fh):
            if tok.kind is TokenKind.SCOPE:
                scope.append(tok.scope.ident)
            elif tok.kind is TokenKind.UPSCOPE:
                scope.pop()
            elif tok.kind is TokenKind.VAR:
                index = tok.var.bit_index
                suffix = "" if index is None else f"[{index}]"
                ids[tok.var.id_code] = ".".join([*scope[1:], tok.var.reference]) + suffix
            elif tok.kind is TokenKind.CHANGE_TIME:
                time = tok.time_change
            elif tok.kind in (TokenKind.CHANGE_SCALAR, TokenKind.CHANGE_VECTOR,
                              TokenKind.CHANGE_REAL, TokenKind.CHANGE_STRING):
                data = tok.data
                changes.setdefault(ids[data.id_code], []).append((time, data.value))
    return changes


def test_counter_vcd_holds_the_trace(tmp_path: Path) -> None:
    sim = Simulator(counter.build())
    trace = sim.run(stimulus=counter.stimulus())
    assert trace is not None
    path = write_vcd(trace, tmp_path / "c.vcd")
    changes = _changes(path)
    values = changes["counter_data.value"]
    # one change per distinct value, at 10 ns per tick
    assert values[0] == (0, 0)
    assert (10, 1) in values and (30, 3) in values and (90, 0) in values
    assert len(changes["clk"]) == 1 + 2 * trace.ticks


def test_vcd_encodes_every_kind_of_signal(tmp_path: Path) -> None:
    src, wide = Src(), Wide()
    sim = Simulator(Network("kinds", [Driver(src=src, out=wide)]))
    sim.poke("src.go", True)
    sim.step(2)
    assert sim.trace is not None
    changes = _changes(write_vcd(sim.trace, tmp_path / "k.vcd"))
    assert changes["wide.neg"][-1] == (10, 0b11111101)  # two's complement of -3
    assert changes["wide.mode"][-1][1] == "RUN"
    assert changes["wide.gain"][-1][1] == -1.5
    assert changes["wide.arr[1]"][-1][1] == 15
    assert changes["wide.later"][0][1] == "x"  # undefined at reset
    assert changes["wide.later"][-1] == (10, 9)
