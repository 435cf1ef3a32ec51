"""The Simulator facade: run (ticks / stimulus / until), step, input/output views, poke/peek,
run_batch, observers, and the backend registry."""

import enum

import numpy as np
import pytest

from sme import (
    BackendError,
    Bool,
    Bus,
    Fixed,
    In,
    Int,
    Network,
    Out,
    PortDirectionError,
    Process,
    SFix,
    SignalValueError,
    SimulationError,
    Simulator,
    UInt,
    UnknownSignalError,
    backend_names,
    get_backend,
)


class Mode(enum.Enum):
    OFF = 0
    ON = 1


class Cmd(Bus):
    add: UInt[8] = 0
    enable: Bool = False


class Total(Bus):
    total: UInt[16] = 0
    big: UInt[64] = 0
    neg: Int[8] = 0
    half: SFix[4, 1] = 0
    mode: Mode = Mode.OFF


class Adder(Process, simulation_only=True):  # exercises values no hardware holds
    cmd: In[Cmd]
    out: Out[Total]
    acc: UInt[16] = 0

    def on_tick(self) -> None:
        if self.cmd.enable:
            self.acc = self.acc + self.cmd.add
        self.out.total = self.acc
        self.out.big = 2**64 - 1 - self.acc
        self.out.neg = -1 - (self.acc % 100)
        self.out.half = Fixed(-self.acc % 16, 1)
        self.out.mode = Mode.ON if self.cmd.enable else Mode.OFF


def make() -> tuple[Network, Cmd, Total]:
    cmd, total = Cmd(), Total()
    return Network("adder", [Adder(cmd=cmd, out=total)]), cmd, total


def test_run_ticks_holds_inputs() -> None:
    net, _, _ = make()
    sim = Simulator(net)
    sim.poke("cmd.add", 3)
    sim.poke("cmd.enable", True)
    trace = sim.run(4)
    assert trace is sim.trace
    assert sim.tick == 4
    assert sim.peek("total.total") == 12
    assert trace is not None
    assert trace.ticks == 4
    assert trace.column("cmd.add") == [0, 3, 3, 3, 3]


def test_run_stimulus_stops_when_it_ends() -> None:
    net, _, _ = make()
    sim = Simulator(net)
    sim.run(stimulus=[{"cmd.add": 1, "cmd.enable": True}, {"cmd.add": 2}, {"cmd.enable": False}])
    assert sim.tick == 3
    assert sim.trace is not None
    assert sim.trace.column("total.total") == [0, 1, 3, 3]


def test_run_ticks_with_a_shorter_stimulus_holds_the_last_values() -> None:
    net, _, _ = make()
    sim = Simulator(net)
    sim.run(5, stimulus=iter([{"cmd.add": 1, "cmd.enable": True}, {"cmd.add": 2}]))
    assert sim.tick == 5
    assert sim.peek("total.total") == 9


def test_run_ticks_with_a_longer_stimulus_stops_at_ticks() -> None:
    net, _, _ = make()
    sim = Simulator(net)
    endless = ({"cmd.add": 1, "cmd.enable": True} for _ in iter(int, 1))
    sim.run(3, stimulus=endless)
    assert sim.tick == 3
    sim.run(2, stimulus=endless)
    assert sim.peek("total.total") == 5


def test_run_until_is_checked_after_each_tick() -> None:
    net, _, _ = make()
    sim = Simulator(net)
    sim.poke("cmd.add", 7)
    sim.poke("cmd.enable", 1)
    sim.run(until=lambda s: s.peek("total.total") >= 30)
    assert sim.tick == 5
    sim.run(100, until=lambda s: True)
    assert sim.tick == 6
    sim.run(stimulus=[{"cmd.add": 1}] * 10, until=lambda s: s.peek("total.total") >= 45)
    assert sim.tick == 9


def test_run_argument_errors() -> None:
    net, _, _ = make()
    sim = Simulator(net)
    with pytest.raises(SimulationError, match=r"^run\(\) needs ticks=, stimulus= or until= to "
                       "know when to stop$"):
        sim.run()
    with pytest.raises(SimulationError, match=r"^run\(ticks=-1\): ticks must be >= 0$"):
        sim.run(-1)
    assert sim.run(0) is sim.trace
    assert sim.tick == 0


def test_step_and_on_tick_observers() -> None:
    net, _, _ = make()
    sim = Simulator(net)
    seen: list[int] = []
    sim.on_tick(lambda s: seen.append(s.tick))
    sim.step(3)
    sim.step()
    assert seen == [1, 2, 3, 4]


def test_input_and_output_views_by_name_and_by_bus() -> None:
    net, cmd, total = make()
    sim = Simulator(net)
    view = sim.input(cmd)
    assert sim.input("cmd") is view
    view.add = 5
    view.enable = True
    sim.step()
    out = sim.output("total")
    assert out.total == 5
    assert sim.output(total).total == 5
    assert sim.output(cmd).add == 5  # inputs can be read back
    with pytest.raises(PortDirectionError, match=r"^the testbench cannot write total\.total"):
        out.total = 1


def test_driving_anything_but_a_top_level_input() -> None:
    net, _, _ = make()
    sim = Simulator(net)
    with pytest.raises(SimulationError) as info:
        sim.poke("total.total", 1)
    info.match(r"^bus 'total' \(Total, created at .*test_simulator\.py:\d+\) is not a top-level "
               r"input of network 'adder' \(inputs: cmd\); only top-level inputs are driven from "
               r"outside$")


def test_poke_and_peek_errors() -> None:
    net, _, _ = make()
    sim = Simulator(net)
    with pytest.raises(SimulationError, match=r"^'cmd': name a signal as 'bus\.signal'$"):
        sim.poke("cmd", 1)
    with pytest.raises(KeyError, match=r"network 'adder' has no bus 'nope' \(its top-level inputs: cmd; every bus: cmd, total\)"):
        sim.peek("nope.x")
    with pytest.raises(UnknownSignalError, match=r"has no signal 'nope'; its signals are: add, "
                       "enable$"):
        sim.poke("cmd.nope", 1)
    with pytest.raises(UnknownSignalError, match="has no signal 'nope'"):
        sim.peek("total.nope")


def test_testbench_misfit_names_the_testbench() -> None:
    net, _, _ = make()
    sim = Simulator(net)
    with pytest.raises(SignalValueError, match=r"^cmd\.add: cannot store 256 \(256 is out of "
                       r"range\); UInt\[8\] allows 0\.\.255; written by the testbench; if the "
                       r"overflow is deliberate"):
        sim.poke("cmd.add", 256)
    with pytest.raises(SignalValueError, match=r"cmd\.add: cannot store 300"):
        sim.run(stimulus=[{"cmd.add": 300}])


def test_apply_with_bus_mappings() -> None:
    net, cmd, _ = make()
    sim = Simulator(net)
    sim.apply({cmd: {"add": 4, "enable": True}})
    sim.apply({"cmd": {"add": 6}})
    sim.step()
    assert sim.peek("total.total") == 6
    with pytest.raises(SimulationError, match=r"^stimulus key 'cmd': expected 'bus\.signal' or a "
                       r"bus mapped to \{signal: value\}$"):
        sim.apply({"cmd": 3})


def test_tracing_off() -> None:
    net, _, _ = make()
    sim = Simulator(net, trace=False)
    assert sim.run(3) is None
    assert sim.trace is None
    assert sim.tick == 3


def test_a_new_simulator_starts_from_the_reset_state() -> None:
    net, _, _ = make()
    first = Simulator(net)
    first.run(3, stimulus=[{"cmd.add": 9, "cmd.enable": True}])
    second = Simulator(net)
    assert second.peek("total.total") == 0
    assert second.peek("cmd.add") == 0
    second.run(1)
    assert second.peek("total.total") == 0


def test_context_manager() -> None:
    net, _, _ = make()
    with Simulator(net) as sim:
        sim.step()
    assert sim.tick == 1


# -- run_batch ----------------------------------------------------------------------------------
def test_run_batch_matches_stepping() -> None:
    net, _, _ = make()
    adds = np.arange(20) % 7
    enables = np.arange(20) % 3 != 0
    got = Simulator(net, trace=False).run_batch({"cmd.add": adds, "cmd.enable": enables}, 20)
    assert list(got) == ["total.total", "total.big", "total.neg", "total.half", "total.mode"]
    sim = Simulator(net)
    sim.run(stimulus=[{"cmd.add": int(a), "cmd.enable": bool(e)} for a, e in zip(
        adds, enables, strict=True)])
    assert sim.trace is not None
    assert got["total.total"].tolist() == sim.trace.column("total.total")[1:]
    assert got["total.total"].dtype == np.int64
    assert got["total.big"].dtype == np.uint64
    assert got["total.big"].tolist() == sim.trace.column("total.big")[1:]
    assert got["total.neg"].tolist() == sim.trace.column("total.neg")[1:]
    assert got["total.half"].tolist() == [v.raw for v in sim.trace.column("total.half")[1:]]
    assert got["total.mode"].tolist() == [int(e) for e in enables]


def test_run_batch_named_outputs_and_inputs() -> None:
    net, _, _ = make()
    sim = Simulator(net, trace=False)
    got = sim.run_batch({"cmd.enable": np.ones(4, dtype=bool), "cmd.add": np.full(4, 2)}, 4,
                        outputs=["total.total", "cmd.enable"])
    assert got["total.total"].tolist() == [2, 4, 6, 8]
    assert got["cmd.enable"].dtype == np.bool_
    assert got["cmd.enable"].tolist() == [True] * 4


def test_run_batch_errors() -> None:
    net, _, _ = make()
    sim = Simulator(net, trace=False)
    with pytest.raises(BackendError, match=r"^run_batch: 'total\.total' is not a top-level input "
                       r"signal of 'adder'; inputs: cmd\.add, cmd\.enable$"):
        sim.run_batch({"total.total": np.zeros(3)}, 3)
    with pytest.raises(BackendError,
                       match=r"^run_batch: stimulus 'cmd\.add' has 2 values, need 3$"):
        sim.run_batch({"cmd.add": np.zeros(2, dtype=int)}, 3)
    with pytest.raises(BackendError, match=r"^no signal\(s\) total\.nope in network 'adder'$"):
        sim.run_batch({}, 1, outputs=["total.nope"])


# -- backends ------------------------------------------------------------------------------------
def test_backend_registry() -> None:
    assert "interp" in backend_names()
    assert get_backend("interp").name == "interp"
    with pytest.raises(BackendError, match=r"^unknown simulation backend 'nope'; known backends: "
                       r".*interp"):
        get_backend("nope")
    with pytest.raises(TypeError, match="the interp backend takes no options, got speed"):
        Simulator(make()[0], speed=2)
    Simulator(make()[0], backend=get_backend("interp")).step()


def test_testbench_misfit_names_the_tick() -> None:
    from sme.examples import counter

    sim = Simulator(counter.build())
    sim.step(3)
    with pytest.raises(SignalValueError, match=r"counter_control\.valid: cannot store 5 .*\(tick 3\)"):
        sim.poke("counter_control.valid", 5)
