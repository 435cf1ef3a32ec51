"""Fault injection at scale: what survives SIGKILL mid-scan, a disk that fills up, and
frame files cut short or with a flipped bit (``tests/faults/harness.py`` does the work).

Every trial runs real components: a RunEngine in a child process writing frames with
``FrameWriter`` into an embedded catalog (provenance recorded), killed with SIGKILL
after a random number of events (half the trials with the default batching writer,
half with ``batch_size=1``), or limited in file size so that its writes fail mid-scan
as on a full disk; damaged copies of a finished run are read frame by frame and
verified. Then each run is found, repaired when it has no stop document, and every
frame read back through the catalog.

Figures:

- ``faults.runs_attempted`` / ``faults.runs_recoverable``: all trials, and those whose
  run was found and read back;
- ``faults.killed_runs_readable = R of K``: SIGKILLed runs found, repaired and read;
- ``faults.flushed_frames_lost``: frames the RunEngine had announced before the fault
  that the catalog cannot serve intact (must be 0);
- ``faults.silent_corruptions``: frames served without an error with other pixels than
  acquired, plus damaged files that ``verify`` passed (must be 0);
- ``faults.crashes``: scan processes ended by a signal nobody sent them, such as a
  segfault at exit after a full disk (must be 0);
- ``faults.damage_detected``: damaged frames and files reported as such;
- ``faults.seconds``: wall time of all trials.

Exit status 1 when a must-be-0 figure is not 0, a killed run is unreadable or a failed
run does not say it failed.

Run: ``python benchmarks/faults.py [--killed N] [--full N] [--truncated N]
[--flipped N] [--seed S] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.harness import figures, run_trials


def main(argv: list[str] | None = None) -> int:
    """Run the trials and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--killed", type=int, default=10, help="SIGKILLed scans (10)")
    parser.add_argument("--full", type=int, default=4, help="scans hitting a full disk (4)")
    parser.add_argument("--truncated", type=int, default=6, help="files cut short (6)")
    parser.add_argument("--flipped", type=int, default=10, help="files with a bit flipped (10)")
    parser.add_argument("--seed", type=int, default=2026, help="random seed (2026)")
    parser.add_argument("--dir", type=Path, help="folder for the trials (a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="faults-") as root:
        t0 = time.perf_counter()
        report = run_trials(Path(root), args.seed, args.killed, args.full, args.truncated,
                            args.flipped)
        seconds = time.perf_counter() - t0
    for note in report.notes:
        print(f"# {note}")
    for line in figures(report):
        print(line)
    print(f"faults.seconds = {seconds:.1f}")
    bad = (report.flushed_frames_lost or report.silent_corruptions or report.crashes
           or report.failures_unrecorded or report.killed_readable != report.killed)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
