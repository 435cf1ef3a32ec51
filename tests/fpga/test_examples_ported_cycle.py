"""SME C#'s DependencyCycle example ported (``sme/examples/dependency_cycle.py``): a ring
of combinational processes is refused when the network is built — one error naming every
process and bus of the loop, from the API and from ``smeflow sim`` / ``smeflow vhdl``
(exit status 1, no traceback) — and the same ring with one clocked process runs alike in
the interpreter, the compiled backend and GHDL."""

from __future__ import annotations

from pathlib import Path

import pytest

from fpga.pytest_plugin import HardwareTester
from sme import CombinationalLoopError, In, Out, wrap
from sme.cli import main
from sme.examples import dependency_cycle as dc


def test_a_ring_of_combinational_processes_is_refused_naming_the_loop() -> None:
    with pytest.raises(CombinationalLoopError) as info:
        dc.build_unclocked()
    text = str(info.value)
    assert text.startswith("combinational loop in network 'dependency_cycle'")
    names = ["first", *(f"id{i}" for i in range(1, dc.RING + 1))]
    for k, name in enumerate(names):  # each process, with the bus it reads
        bus = f"link{(k - 1) % (dc.RING + 1)}"
        assert f"UnclockedId '{name}' (created at " in text
        assert f"reads bus '{bus}' (IntBus, created at " in text
    assert "dependency_cycle.py:" in text and "make one of these processes clocked" in text


@pytest.mark.parametrize("argv", [["sim", "--ticks", "3"], ["sim", "--ticks", "3",
                                                             "--backend", "compiled"],
                                  ["vhdl", "-o", "{out}", "--ticks", "3"]])
def test_the_cli_refuses_it_with_one_error(argv: list[str], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.format(out=tmp_path / "vhdl") for a in argv]
    status = main([args[0], "sme.examples.dependency_cycle:build_unclocked", *args[1:]])
    out, err = capsys.readouterr()
    assert status == 1
    assert err.startswith(f"smeflow {args[0]}: error: combinational loop in network")
    assert err.count("error:") == 1 and "Traceback" not in out + err
    assert not (tmp_path / "vhdl").exists()  # nothing exported


class CountingId(dc.Id):
    """The clocked first process, adding one: the count goes round the ring."""

    input: In[dc.IntBus]
    output: Out[dc.IntBus]

    def on_tick(self) -> None:
        self.output.value = wrap(self.input.value + 1)


@pytest.mark.ghdl
def test_a_ring_with_a_register_runs_in_every_backend(sme_hw: HardwareTester) -> None:
    trace = sme_hw.all_backends(dc.ring(CountingId), ticks=6)
    links = [trace.column(f"link{i}.value") for i in range(dc.RING + 1)]
    assert all(column == list(range(7)) for column in links)  # wires: the same each tick
    # (the C# example's ring, dc.build(), runs in every backend in test_all_designs.py)
