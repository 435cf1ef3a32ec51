"""``smeflow vhdl``: export a network as VHDL, record its trace, optionally run it in GHDL.

    smeflow vhdl sme.examples.counter:build -o out/counter --ticks 1000 --run
    smeflow vhdl sme.examples.pipeline:build -o out/pipeline \\
        --stimulus sme.examples.pipeline:stimulus --ticks 10000 --run --lockstep

The command simulates the network with the Python interpreter (the reference), writes the
VHDL, testbench, ``trace.csv`` and GHDL scripts into ``-o``, and with ``--run`` analyses
and runs the testbench in GHDL, printing ``PASS``/``FAIL`` with the figures. ``--lockstep``
also runs the cocotb lock-step co-simulation with the same stimulus. The exit status is 0
when everything asked for passed, 1 on a failure, 2 on a usage error.
Registered through the ``smeflow.commands`` entry-point group.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from sme.cli import CliError, check_trace_memory, load_network, load_stimulus, output_dir

Subparsers = Any  # argparse's _SubParsersAction is private

DEFAULT_TICKS = 100
"""Ticks simulated when neither --ticks nor --stimulus is given (inputs stay at their
initial values)."""
MISMATCHES_SHOWN = 10


def cmd_vhdl(args: argparse.Namespace) -> int:
    """Export, record the trace, and (``--run``/``--lockstep``) verify in GHDL."""
    from fpga.export import export, record_trace

    if args.ticks is not None and args.ticks < 0:
        raise CliError(f"--ticks {args.ticks}: must be >= 0")
    output_dir(args.output, "-o")
    network = load_network(args.network)
    ticks = args.ticks if args.ticks is not None or args.stimulus else DEFAULT_TICKS
    if ticks is not None:
        check_trace_memory(ticks, network)
    t0 = time.perf_counter()
    trace = record_trace(network, load_stimulus(args.stimulus, ticks, network), ticks)
    written = export(network, args.output, trace)
    print(f"exported '{network.name}' to {written.out_dir}: "
          f"{', '.join(written.sources)}, Makefile, run.sh")
    print(f"trace: {written.trace} ({trace.ticks} ticks, {len(trace.columns)} signals, "
          f"recorded and exported in {time.perf_counter() - t0:.2f} s)")
    status = 0
    if args.run:
        status = max(status, _run_testbench(written.out_dir, trace.ticks))
    if args.lockstep:
        status = max(status, _run_lockstep(args, network, ticks))
    return status


def _run_testbench(out_dir: Any, ticks: int) -> int:
    from fpga.ghdl import run_testbench

    t0 = time.perf_counter()
    result = run_testbench(out_dir)
    seconds = time.perf_counter() - t0
    shown = result.ticks if result.ticks is not None else "?"
    if result.passed:
        print(f"testbench: PASS  ticks = {shown}  time = {seconds:.2f} s  mismatches = 0")
        return 0
    print(f"testbench: FAIL  ticks = {shown} (of {ticks})  time = {seconds:.2f} s  "
          f"mismatches = {len(result.mismatches)}  (ghdl exit status {result.returncode})")
    for m in result.mismatches[:MISMATCHES_SHOWN]:
        print(f"  {m}")
    if not result.mismatches:
        tail = result.output.strip().splitlines()[-15:]
        print("  GHDL said:\n" + "\n".join(f"    {ln}" for ln in tail))
    return 1


def _run_lockstep(args: argparse.Namespace, network: Any, ticks: int | None) -> int:
    from fpga.cosim import run_lockstep

    stimulus = load_stimulus(args.stimulus, ticks, network)
    result = run_lockstep(network, args.output, stimulus, ticks)
    mismatches = 0 if result.passed else 1
    print(f"lock-step: {'PASS' if result.passed else 'FAIL'}  ticks = {result.ticks}  "
          f"time = {result.seconds:.2f} s  mismatches = {mismatches}")
    if result.mismatch is not None:
        print(f"  first mismatch: {result.mismatch}")
        print(f"  simulator log: {result.log_file}")
    return 0 if result.passed else 1


def register_vhdl(sub: Subparsers) -> None:
    """``smeflow vhdl``."""
    p = sub.add_parser(
        "vhdl", help="export a network as VHDL with its testbench; --run checks it in GHDL",
        description="Export MODULE:NETWORK as VHDL-2008 with a trace-replay testbench, the "
        "trace recorded by the Python simulation, a Makefile and run.sh.")
    p.add_argument("network", metavar="MODULE:NETWORK",
                   help="a Network, or a function returning one: a dotted module (found from "
                   "the current folder too) or a file, e.g. sme.examples.counter:build or "
                   "path/to/design.py:build")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--ticks", type=int,
                   help=f"ticks to record (default: until the stimulus ends, or "
                        f"{DEFAULT_TICKS} without stimulus); the trace keeps every tick, "
                        "and must fit in half the available memory")
    p.add_argument("--stimulus", metavar="MODULE:FUNC|FILE.csv",
                   help="function returning an iterator of per-tick {'bus.signal': value}, "
                   "or a CSV file with a bus.signal header and one row per tick")
    p.add_argument("--run", action="store_true",
                   help="analyse and run the testbench in GHDL; print PASS/FAIL")
    p.add_argument("--lockstep", action="store_true",
                   help="also run the cocotb lock-step co-simulation with the same stimulus")
    p.set_defaults(func=cmd_vhdl)


__all__ = ["DEFAULT_TICKS", "cmd_vhdl", "register_vhdl"]
