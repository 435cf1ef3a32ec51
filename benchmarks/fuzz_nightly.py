"""Nightly differential fuzzing: many random process bodies, Python vs GHDL.

Each module holds ``--processes`` random process classes (``fpga.fuzz``); it is simulated in
Python with random stimulus, exported with its trace and replayed in GHDL (and with
``--lockstep`` also run in cocotb lock-step). A mismatching module is reduced to a small
failing process with ``fpga.fuzz.reduce_body`` and kept in ``--out``.

    python benchmarks/fuzz_nightly.py --modules 100 --processes 25 --seed 1000
    python benchmarks/fuzz_nightly.py --all-constructs   # include the known differences

``--language-modules`` more modules come from ``fpga.fuzz_language`` (generator processes
with loops, 64-bit registers, a RAM, names clashing up to case or with VHDL reserved words),
each run in the interpreter, the compiled backend and GHDL.

It then runs the parser fuzz tests (``tests/*/test_fuzz_parsers.py``: CSV traces,
``.poni`` files, packets and the readout, HDF5 files, catalog arguments) with
``--parser-examples`` random examples per property instead of the CI's fixed few hundred
(``SMEFLOW_FUZZ_EXAMPLES``; ``0`` skips them).

Prints one line per module and the figures ``fuzz.bodies``, ``fuzz.failing_modules``,
``fuzz.language_modules``, ``fuzz.language_failing``,
``fuzz.bodies_per_s`` and ``fuzz.parser_failures``; exits 1 when anything differed or a
parser raised what it must not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fpga.cosim import run_lockstep
from fpga.export import export, record_trace
from fpga.fuzz import KNOWN_VHDL_DIFFERENCES, load_module, module_source, reduce_body
from fpga.fuzz_language import language_source
from fpga.ghdl import run_testbench
from fpga.stimulus import random_stimulus


def differs(source: str, folder: Path, ticks: int, seed: int, lockstep: bool) -> str | None:
    """Run one module; the first difference as text, or None."""
    net = load_module(source, folder).build()
    trace = record_trace(net, random_stimulus(net, ticks, seed))
    export(net, folder / "vhdl", trace)
    result = run_testbench(folder / "vhdl")
    if not result.passed:
        first = result.mismatches[0] if result.mismatches else result.output[-500:]
        return f"testbench: {first}"
    if lockstep:
        ls = run_lockstep(net, folder / "vhdl", random_stimulus(net, ticks, seed))
        if not ls.passed:
            return f"lock-step: {ls.mismatch}"
    return None


def language_differs(seed: int, folder: Path, ticks: int) -> str | None:
    """Run one ``fpga.fuzz_language`` module in the interpreter, the compiled backend and
    GHDL; the first difference as text, or None."""
    from sme import Simulator

    source = language_source(seed)
    net = load_module(source, folder).build()
    stim = list(random_stimulus(net, ticks, seed))
    trace = record_trace(net, stim)
    compiled = Simulator(load_module(source, folder).build(), backend="compiled").run(
        stimulus=stim)
    diff = trace.first_difference(compiled) if compiled is not None else "no trace"
    if diff is not None:
        return f"compiled: {diff}"
    export(net, folder / "vhdl", trace)
    result = run_testbench(folder / "vhdl")
    if not result.passed:
        return f"testbench: {result.mismatches[0] if result.mismatches else result.output[-500:]}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the fuzzing campaign described by the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modules", type=int, default=40, help="random modules to run")
    p.add_argument("--processes", type=int, default=25, help="random bodies per module")
    p.add_argument("--ticks", type=int, default=500, help="random-stimulus ticks per module")
    p.add_argument("--seed", type=int, default=1000, help="seed of the first module")
    p.add_argument("--lockstep", action="store_true", help="also run the cocotb lock-step")
    p.add_argument("--all-constructs", action="store_true",
                   help="do not leave out the constructs with known VHDL differences")
    p.add_argument("--out", default="out/fuzz", help="where failing modules are kept")
    p.add_argument("--language-modules", type=int, default=20,
                   help="fpga.fuzz_language modules to run in all three backends")
    p.add_argument("--parser-examples", type=int, default=5000,
                   help="random examples per parser property (0: skip the parser fuzzing)")
    args = p.parse_args(argv)
    exclude = frozenset() if args.all_constructs else KNOWN_VHDL_DIFFERENCES
    out = Path(args.out)
    failing = 0
    start = time.perf_counter()
    for seed in range(args.seed, args.seed + args.modules):
        source = module_source(seed, args.processes, exclude=exclude)
        folder = Path(tempfile.mkdtemp(prefix=f"fuzz{seed}_"))
        problem = differs(source, folder, args.ticks, seed, args.lockstep)
        print(f"seed {seed}: {'OK' if problem is None else 'DIFFERS ' + problem}", flush=True)
        if problem is not None:
            failing += 1
            keep = out / f"seed_{seed}"
            shutil.copytree(folder, keep, dirs_exist_ok=True)
            _reduce(source, seed, problem, args, exclude, keep)
        shutil.rmtree(folder, ignore_errors=True)
    seconds = time.perf_counter() - start
    language_failing = 0
    for seed in range(args.seed, args.seed + args.language_modules):
        folder = Path(tempfile.mkdtemp(prefix=f"lang{seed}_"))
        problem = language_differs(seed, folder, args.ticks)
        print(f"language seed {seed}: {'OK' if problem is None else 'DIFFERS ' + problem}",
              flush=True)
        if problem is not None:
            language_failing += 1
            shutil.copytree(folder, out / f"language_{seed}", dirs_exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
    bodies = args.modules * args.processes
    print(f"fuzz.bodies = {bodies}")
    print(f"fuzz.failing_modules = {failing}")
    print(f"fuzz.bodies_per_s = {bodies / seconds:.1f}")
    print(f"fuzz.language_modules = {args.language_modules}")
    print(f"fuzz.language_failing = {language_failing}")
    parser_failures = fuzz_parsers(args.parser_examples) if args.parser_examples > 0 else 0
    print(f"fuzz.parser_failures = {parser_failures}")
    return 1 if failing or language_failing or parser_failures else 0


PARSER_TESTS = ["tests/sme/test_fuzz_parsers.py", "tests/dataflow/test_fuzz_parsers.py"]


def fuzz_parsers(examples: int) -> int:
    """Run the parser properties with ``examples`` random examples each; failed tests."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "SMEFLOW_FUZZ_EXAMPLES": str(examples)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-k", "not regression", *PARSER_TESTS], cwd=root, env=env,
                          capture_output=True, text=True, check=False)
    print(done.stdout[-3000:], end="", flush=True)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    failed = [int(w) for w, nxt in zip(summary.split(), summary.split()[1:], strict=False)
              if w.isdigit() and nxt.startswith(("failed", "error"))]
    return sum(failed) or int(done.returncode != 0)


def _reduce(source: str, seed: int, problem: str, args: argparse.Namespace,
            exclude: frozenset[str], keep: Path) -> None:
    """Isolate the failing process (when the report names one) and shrink its body."""
    import re

    m = re.search(r"signal out(\d+)\.", problem)
    if m is None:
        return
    k = int(m[1])
    alone = module_source(seed, args.processes, exclude=exclude, keep={k})

    def still_fails(src: str) -> bool:
        folder = Path(tempfile.mkdtemp(prefix="reduce_"))
        try:
            return differs(src, folder, args.ticks, seed, False) is not None
        except Exception:  # a reduction that breaks the module is not the same failure
            return False
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    if still_fails(alone):
        small = reduce_body(alone, f"P{k}", still_fails)
        (keep / "reduced.py").write_text(small)
        print(f"  reduced to {keep / 'reduced.py'}")


if __name__ == "__main__":
    sys.exit(main())
