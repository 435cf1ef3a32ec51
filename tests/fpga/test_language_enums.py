"""Enums with explicit values are encoded by value in every backend: the compiled
backend's raw values and batch I/O, the VHDL (an ``unsigned`` subtype with one constant
per member, as wide as the largest value), the cocotb ports; traces keep member names."""

from __future__ import annotations

import enum
import random
from pathlib import Path

import numpy as np
import pytest

from fpga.export import export, record_trace
from fpga.pytest_plugin import HardwareTester
from sme import Array, Bool, Bus, In, Network, Out, Process, Simulator, UInt
from sme.types import EnumType

pytestmark = pytest.mark.ghdl


class Phase(enum.Enum):
    IDLE = 0
    RUN = 4
    DONE = 9


class Colour(enum.Enum):  # not ints: encoded by position
    RED = "red"
    GREEN = "green"


class Ctl(Bus):
    go: Bool = False
    want: Phase = Phase.IDLE


class Status(Bus):
    phase: Phase = Phase.IDLE
    seen: Array[Phase, 2] = [Phase.DONE, Phase.IDLE]
    colour: Colour = Colour.RED
    done: UInt[4] = 0


class Sequencer(Process):
    """IDLE → RUN on go; RUN → the wanted phase (DONE when IDLE is wanted); DONE → IDLE."""

    ctl: In[Ctl]
    status: Out[Status]
    phase: Phase = Phase.IDLE

    def on_tick(self) -> None:
        match self.phase:
            case Phase.IDLE:
                if self.ctl.go:
                    self.phase = Phase.RUN
            case Phase.RUN:
                self.phase = self.ctl.want if self.ctl.want != Phase.IDLE else Phase.DONE
            case _:
                self.phase = Phase.IDLE
        self.status.phase = self.phase
        self.status.seen[0] = self.ctl.want if self.ctl.go else self.phase
        self.status.colour = Colour.GREEN if self.phase == Phase.DONE else Colour.RED
        self.status.done = 1 if self.phase == Phase.DONE else 0


def build() -> Network:
    return Network("phases", [Sequencer(ctl=Ctl(), status=Status())])


def stimulus(ticks: int = 80) -> list[dict[str, object]]:
    rng = random.Random(5)
    return [{"ctl.go": rng.random() < 0.5, "ctl.want": rng.choice(list(Phase))}
            for _ in range(ticks)]


def test_codes_and_width() -> None:
    t = EnumType(Phase)
    assert t.codes == (0, 4, 9) and t.width == 4 and not t.positional
    assert t.to_raw(Phase.DONE) == 9 and t.from_raw(4) is Phase.RUN
    with pytest.raises(ValueError, match="3 is not the code of a member of Phase"):
        t.from_raw(3)
    c = EnumType(Colour)
    assert c.codes == (0, 1) and c.width == 1 and c.positional

    class Auto(enum.Enum):
        A = enum.auto()
        B = enum.auto()
        C = enum.auto()

    assert EnumType(Auto).codes == (1, 2, 3) and EnumType(Auto).width == 2


def test_same_trace_in_every_backend(sme_hw: HardwareTester) -> None:
    trace = sme_hw.all_backends(build(), stimulus())
    csv = trace.write_csv(sme_hw.tmp_path / "t.csv").read_text().splitlines()
    assert csv[0].split(",")[2] == "status.phase"
    assert {row.split(",")[2] for row in csv[1:]} == {"IDLE", "RUN", "DONE"}


def test_batch_io_and_stimulus_are_codes() -> None:
    go, want = np.array([1, 0, 0, 0]), np.array([0, 4, 9, 0])
    for backend in ("interp", "compiled"):
        out = Simulator(build(), backend=backend, trace=False).run_batch(
            {"ctl.go": go, "ctl.want": want}, 4)
        assert out["status.phase"].tolist() == [4, 4, 9, 0]
        assert out["status.seen"][:, 0].tolist() == [0, 4, 9, 0]
        with pytest.raises(ValueError, match="3 is not the code of a member of Phase"):
            Simulator(build(), backend=backend, trace=False).run_batch(
                {"ctl.go": go[:1], "ctl.want": np.array([3])}, 1)


def test_vhdl_encodes_by_value(tmp_path: Path) -> None:
    net = build()
    export(net, tmp_path, record_trace(net, stimulus(5)))
    pkg = (tmp_path / "phases_pkg.vhd").read_text()
    assert "subtype Phase_t is unsigned(3 downto 0);" in pkg
    assert 'constant Phase_DONE : Phase_t := "1001";  -- 9' in pkg
    assert "type Colour_t is (Colour_RED, Colour_GREEN);" in pkg
    top = (tmp_path / "phases.vhd").read_text()
    assert "status_phase : out Phase_t := Phase_IDLE" in top


def test_lockstep_reads_the_codes(sme_hw: HardwareTester) -> None:
    sme_hw.lockstep(build(), stimulus(40))
