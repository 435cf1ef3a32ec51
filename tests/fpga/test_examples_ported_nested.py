"""SME C#'s SimpleNestedComponent ported (``sme/examples/nested_component.py``): each
request gives ``repeat_count`` register numbers counting up from ``start_register``, in
the interpreter, the compiled backend and GHDL; the C# incrementer's literal port (not
clocked, yet keeping a register) is refused, naming the register."""

from __future__ import annotations

import pytest

from fpga.pytest_plugin import HardwareTester
from sme import DeclarationError, In, Int, Out, Process
from sme.examples import nested_component as nc


@pytest.mark.ghdl
def test_each_request_counts_its_register_numbers_in_every_backend(
        sme_hw: HardwareTester) -> None:
    trace = sme_hw.all_backends(nc.build(), list(nc.stimulus()))  # interp = compiled = GHDL
    enabled, number = trace.column("out.output_enabled"), trace.column("out.register_number")
    runs: list[list[int]] = []
    for t, on in enumerate(enabled):
        if on:
            if not enabled[t - 1]:
                runs.append([])
            runs[-1].append(number[t])
    assert runs == [[10, 11, 12, 13], [50, 51]]
    assert enabled.index(True) == 5  # request read at tick 2, reset at 3, first tick at 4


def test_a_combinational_process_with_a_register_is_refused() -> None:
    with pytest.raises(DeclarationError, match=r"test_examples_ported_nested\.py:\d+: "
                       r"combinational process .*Incrementer cannot hold registers \(regno\)"):
        class Incrementer(Process, combinational=True):  # C#: no [ClockedProcess]
            ticker: In[nc.TickBus]
            output: Out[nc.CounterOutput]
            regno: Int[32] = 0
