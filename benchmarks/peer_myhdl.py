"""Peer measurement: the benchmark pipeline simulated in MyHDL.

This is the reference point our own simulator is compared against, so it is
written the way a MyHDL user normally writes a design plus testbench: a
``@block`` with one ``@always(clk.posedge)`` process per pipeline stage,
``Signal(intbv(...))`` registers, a free-running clock generator and a
testbench ``@instance`` that drives the stimulus and reads the outputs every
cycle.

The pipeline (all registers update on the same rising edge and start at 0):

* input for tick ``i`` (applied before edge ``i``):
  ``u = (i * 40503 + 12345) mod 2**16``, ``x = u`` read as signed 16-bit,
  ``x_valid = 0 if i % 8 == 7 else 1``;
* stage 1: ``p1 <= x * 3 + 1`` (signed 19 bits), ``v1 <= x_valid``;
* stage 2: ``c2 <= clamp(p1, 0, 4095)`` (unsigned 12 bits), ``v2 <= v1``;
* stage 3: accumulate 16 valid samples of ``c2`` into ``acc``; on the 16th,
  ``s3 <= acc + c2`` and ``v3 <= 1``, otherwise ``v3 <= 0``;
* stage 4: ``sum_out <= s3``, ``sum_valid <= v3``.

Reading the outputs right after edges 0 ... 99 999 gives 5 468 ticks with
``sum_valid = 1`` whose ``sum_out`` values total 175 399 483.

Run ``python benchmarks/peer_myhdl.py`` to print the measured rate.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from myhdl import (
    Signal,
    Simulation,
    StopSimulation,
    always,
    block,
    delay,
    instance,
    intbv,
)

__all__ = ["EXPECTED_VALID_COUNT", "EXPECTED_VALID_SUM", "run_myhdl_pipeline", "stimulus"]

#: Reference figures for 100 000 ticks.
EXPECTED_VALID_COUNT = 5_468
EXPECTED_VALID_SUM = 175_399_483

_HALF_PERIOD = 5  # simulation time units; one tick is one full clock period


def stimulus(i: int) -> tuple[int, bool]:
    """Return the pipeline input for tick ``i``.

    Parameters
    ----------
    i : int
        Tick index (the input is applied before clock edge ``i``).

    Returns
    -------
    tuple of (int, bool)
        ``(x, x_valid)``, with ``x`` a signed 16-bit sample.
    """
    u = (i * 40503 + 12345) & 0xFFFF
    return (u - 0x10000 if u >= 0x8000 else u), (i & 7) != 7


@dataclass
class _Tally:
    """Output statistics accumulated by the testbench."""

    valid_count: int = 0
    valid_sum: int = 0


@block  # type: ignore[untyped-decorator]
def pipeline(clk: Any, x: Any, x_valid: Any, sum_out: Any, sum_valid: Any) -> Any:
    """Four-stage benchmark pipeline.

    Parameters
    ----------
    clk : Signal(bool)
        Clock; every register updates on its rising edge.
    x : Signal(intbv) signed 16 bits
        Input sample.
    x_valid : Signal(bool)
        Input sample valid.
    sum_out : Signal(intbv) unsigned 16 bits
        Sum of 16 clamped samples.
    sum_valid : Signal(bool)
        High for one cycle when ``sum_out`` carries a new sum.

    Returns
    -------
    myhdl block instance
        The stage processes.
    """
    p1 = Signal(intbv(0, min=-(2**18), max=2**18))
    v1 = Signal(bool(0))
    c2 = Signal(intbv(0)[12:])
    v2 = Signal(bool(0))
    acc = Signal(intbv(0)[16:])
    cnt = Signal(intbv(0)[4:])
    s3 = Signal(intbv(0)[16:])
    v3 = Signal(bool(0))

    @always(clk.posedge)  # type: ignore[untyped-decorator]
    def stage1() -> None:
        p1.next = x * 3 + 1
        v1.next = x_valid

    @always(clk.posedge)  # type: ignore[untyped-decorator]
    def stage2() -> None:
        if p1 < 0:
            c2.next = 0
        elif p1 > 4095:
            c2.next = 4095
        else:
            c2.next = p1
        v2.next = v1

    @always(clk.posedge)  # type: ignore[untyped-decorator]
    def stage3() -> None:
        if v2:
            if cnt == 15:
                s3.next = acc + c2
                v3.next = 1
                acc.next = 0
                cnt.next = 0
            else:
                acc.next = acc + c2
                cnt.next = cnt + 1
                v3.next = 0
        else:
            v3.next = 0

    @always(clk.posedge)  # type: ignore[untyped-decorator]
    def stage4() -> None:
        sum_out.next = s3
        sum_valid.next = v3

    return stage1, stage2, stage3, stage4


@block  # type: ignore[untyped-decorator]
def testbench(ticks: int, tally: _Tally) -> Any:
    """Clock generator, pipeline and a stimulus/monitor process.

    Parameters
    ----------
    ticks : int
        Number of rising clock edges to simulate.
    tally : _Tally
        Receives the number of valid output ticks and the sum of ``sum_out``
        over them.

    Returns
    -------
    myhdl block instance
        Clock generator, design under test and testbench process.
    """
    clk = Signal(bool(0))
    x = Signal(intbv(0, min=-(2**15), max=2**15))
    x_valid = Signal(bool(0))
    sum_out = Signal(intbv(0)[16:])
    sum_valid = Signal(bool(0))

    dut = pipeline(clk, x, x_valid, sum_out, sum_valid)

    @always(delay(_HALF_PERIOD))  # type: ignore[untyped-decorator]
    def clkgen() -> None:
        clk.next = not clk

    @instance  # type: ignore[untyped-decorator]
    def driver() -> Generator[Any, None, None]:
        # Inputs for tick 0 go in at time 0, before the first rising edge.
        x.next, x_valid.next = stimulus(0)
        count = 0
        total = 0
        for i in range(ticks):
            # Registers settle on rising edge i; sample them half a period later.
            yield clk.negedge
            if sum_valid:
                count += 1
                total += int(sum_out)
            # Drive the inputs for tick i + 1 before rising edge i + 1.
            x.next, x_valid.next = stimulus(i + 1)
        tally.valid_count = count
        tally.valid_sum = total
        raise StopSimulation

    return clkgen, dut, driver


def run_myhdl_pipeline(ticks: int) -> tuple[int, int, float]:
    """Simulate ``ticks`` clock edges in MyHDL.

    Only ``Simulation.run`` is timed: the MyHDL import, elaboration of the
    ``@block`` hierarchy and construction of the ``Simulation`` object happen
    before the clock starts. The timed part includes the testbench work done
    every cycle (computing the stimulus, reading and accumulating outputs),
    and the clock generator's two events per tick.

    Parameters
    ----------
    ticks : int
        Number of rising clock edges; outputs are read after each of them.

    Returns
    -------
    tuple of (int, int, float)
        ``(valid_count, valid_sum, seconds)``: ticks with ``sum_valid = 1``,
        the sum of ``sum_out`` over them, and the wall-clock run time.

    Raises
    ------
    ValueError
        If ``ticks`` is negative.
    """
    if ticks < 0:
        raise ValueError(f"ticks must be >= 0, got {ticks}")
    tally = _Tally()
    sim = Simulation(testbench(ticks, tally))
    try:
        start = time.perf_counter()
        sim.run(quiet=1)
        seconds = time.perf_counter() - start
    finally:
        sim.quit()  # idempotent; frees the single-Simulation slot on error too
    return tally.valid_count, tally.valid_sum, seconds


def main(ticks: int = 100_000) -> None:
    """Run the benchmark and print the rate and the output check.

    Parameters
    ----------
    ticks : int, optional
        Number of clock edges to simulate.
    """
    count, total, seconds = run_myhdl_pipeline(ticks)
    print(f"pipeline.myhdl.ticks_per_s = {ticks / seconds:.3g}")
    print(f"pipeline.myhdl.seconds = {seconds:.3f}")
    print(f"pipeline.myhdl.valid_count = {count}")
    print(f"pipeline.myhdl.valid_sum = {total}")
    if ticks == 100_000:
        ok = (count, total) == (EXPECTED_VALID_COUNT, EXPECTED_VALID_SUM)
        print(f"pipeline.myhdl.check = {'ok' if ok else 'MISMATCH'}")


if __name__ == "__main__":
    main()
