"""``smeflow demo``, ``smeflow sim`` and ``smeflow graph`` (registered as entry points)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .cli import CliError, check_trace_memory, given, load_network, load_stimulus, output_file
from .graph import write_graph
from .network import Network
from .simulator import Simulator
from .trace import Trace, format_table
from .vcd import write_vcd

Subparsers = Any  # argparse's _SubParsersAction is private
DEFAULT_ROWS = 40
"""Rows of the trace ``smeflow sim`` prints unless ``--rows`` says otherwise."""


def simulate(network: Network, ticks: int | None, stimulus: str | None,
             backend: str = "interp") -> Trace:
    """Simulate a network from the command line's arguments and return its trace."""
    if ticks is None and stimulus is None:
        raise CliError("give --ticks N, --stimulus MODULE:FUNC, or both")
    if ticks is not None and ticks < 0:
        raise CliError(f"--ticks {ticks}: must be >= 0")
    if ticks is not None:
        check_trace_memory(ticks, network)
    stim = load_stimulus(stimulus, ticks, network)
    sim = Simulator(network, backend=backend)
    trace = sim.run(ticks, stimulus=stim)
    assert trace is not None
    return trace


def _save(trace: Trace, csv: str | None, vcd: str | None) -> list[str]:
    written = []
    if csv:
        written.append(str(trace.write_csv(csv)))
    if vcd:
        written.append(str(write_vcd(trace, vcd)))
    return written


def _print_trace(trace: Trace, limit: int) -> None:
    """The trace as a table; of a longer one its first ceil(limit/2) and last
    floor(limit/2) rows, in one column layout, and how many were left out between."""
    n = len(trace.rows)
    if n <= limit:
        print(format_table(trace, range(n)))
        return
    head, tail = (limit + 1) // 2, limit // 2
    lines = format_table(trace, [*range(head), *range(n - tail, n)]).split("\n")
    lines.insert(1 + head, f"... {n - limit} rows not shown ...")
    print("\n".join(lines))


def cmd_sim(args: argparse.Namespace) -> int:
    """Simulate a network, print its trace and optionally save CSV/VCD."""
    if args.rows is not None and args.quiet:
        raise CliError("--rows: not with --quiet (the trace is not printed)")
    rows = given(args.rows, DEFAULT_ROWS)
    if rows < 0:
        raise CliError(f"--rows {rows}: must be >= 0")
    if args.ticks is not None and args.ticks < 0:  # (before the design is imported)
        raise CliError(f"--ticks {args.ticks}: must be >= 0")
    for path, option in ((args.csv, "--csv"), (args.vcd, "--vcd")):
        if path:
            output_file(path, option)
    trace = simulate(load_network(args.network), args.ticks, args.stimulus, args.backend)
    if not args.quiet:
        _print_trace(trace, rows)
    for path in _save(trace, args.csv, args.vcd):
        print(f"wrote {path}")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    """Draw a network."""
    output_file(args.output, "-o")
    print(f"wrote {write_graph(load_network(args.network), args.output)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job until the beamline exists: simulate the counter and show its trace."""
    from .examples import counter

    out = Path(args.output)
    network = counter.build()
    trace = simulate(network, None, "sme.examples.counter:stimulus")
    print(f"The SME counter ({counter.__file__}), {trace.ticks} ticks:\n")
    _print_trace(trace, 40)
    print()
    for path in _save(trace, str(out / "counter.csv"), str(out / "counter.vcd")):
        print(f"wrote {path}")
    for suffix in ("dot", "svg"):
        try:
            print(f"wrote {write_graph(network, out / f'counter.{suffix}')}")
        except Exception as exc:  # the drawing is optional in the demo
            print(f"(no {suffix}: {exc})")
    return 0


def _add_sim_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", metavar="MODULE:NETWORK",
                   help="a Network, or a function returning one: a dotted module "
                   "(found from the current folder too) or a file, e.g. "
                   "sme.examples.counter:build or path/to/design.py:build")
    p.add_argument("--ticks", type=int, help="number of ticks (default: until stimulus ends); "
                   "the trace keeps every tick, and must fit in half the available memory")
    p.add_argument("--stimulus", metavar="MODULE:FUNC|FILE.csv",
                   help="function returning an iterator of per-tick {'bus.signal': value}, "
                   "or a CSV file with a bus.signal header and one row per tick")


def register_sim(sub: Subparsers) -> None:
    """``smeflow sim``."""
    p = sub.add_parser("sim", help="simulate a network and print/save its trace")
    _add_sim_args(p)
    p.add_argument("--backend", default="interp", help="simulation backend (default: interp)")
    p.add_argument("--csv", help="write the trace as CSV")
    p.add_argument("--vcd", help="write the trace as VCD (GTKWave)")
    p.add_argument("--rows", type=int,  # (None: not given, refused with --quiet)
                   help=f"rows of the trace to print (default {DEFAULT_ROWS}: the first and "
                   f"last {DEFAULT_ROWS // 2}; not with --quiet)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the trace")
    p.set_defaults(func=cmd_sim)


def register_graph(sub: Subparsers) -> None:
    """``smeflow graph``."""
    p = sub.add_parser("graph", help="draw a network (.dot, or .svg/.png/.pdf with Graphviz)")
    p.add_argument("network", metavar="MODULE:NETWORK")
    p.add_argument("-o", "--output", required=True, help="output file (.dot .svg .png .pdf)")
    p.set_defaults(func=cmd_graph)


def register_demo(sub: Subparsers) -> None:
    """``smeflow counter-demo``: the SME kernel alone (the beamline demo is ``smeflow demo``)."""
    p = sub.add_parser("counter-demo", help="simulate the counter example: trace, VCD, drawing")
    p.add_argument("-o", "--output", default="out/demo", help="folder for the demo's files")
    p.set_defaults(func=cmd_demo)
