"""GHDL runners for an exported folder: ``analyse(out_dir)`` and ``run_testbench(out_dir)``.

Both read ``sources.txt`` (written by ``fpga.export.export``: the testbench entity, then the
sources in analysis order) and run ``ghdl -a/-e/-r --std=08`` in the folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sme.errors import SmeError
from sme.progress import stage

from .export import ANALYSIS_WARNINGS, GHDL_FLAGS


class GhdlError(SmeError):
    """GHDL is missing, or analysis/elaboration of the generated code failed."""


@dataclass(frozen=True)
class Mismatch:
    """One difference reported by the testbench: trace row (0 = reset state, ``k`` = after
    tick ``k - 1``, as in ``sme.trace.Difference``), signal, expected and got text."""

    tick: int
    signal: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"tick {self.tick}, signal {self.signal}: expected {self.expected}, got {self.got}"


@dataclass(frozen=True)
class AnalysisResult:
    """Outcome of ``analyse``: ``ok`` when analysis and elaboration succeeded, the warning
    lines GHDL printed, and its whole output."""

    ok: bool
    warnings: list[str]
    output: str


@dataclass(frozen=True)
class TestbenchResult:
    """Outcome of ``run_testbench``."""

    passed: bool
    ticks: int | None
    mismatches: list[Mismatch] = field(default_factory=list)
    returncode: int = 0
    output: str = ""

    def summary(self) -> str:
        """``PASS: 2000 ticks`` or ``FAIL: …`` with the first mismatch."""
        if self.passed:
            return f"PASS: {self.ticks} ticks, 0 mismatches"
        first = f"; first: {self.mismatches[0]}" if self.mismatches else ""
        failure = _FAILURE.search(self.output)
        if failure and not self.mismatches:  # (the design stopped itself: say why)
            first = f"; {failure[1]}"
        return (f"FAIL (ghdl exit status {self.returncode}): {len(self.mismatches)} mismatches"
                f" reported{first}")


_MISMATCH = re.compile(r"MISMATCH tick=(\d+) signal=(\S+) expected=(\S*) got=(\S*)")
_FAILURE = re.compile(r"^(\S+:\d+:\d+:@\S+:\(assertion failure\):.*)$", re.MULTILINE)
_RESULT = re.compile(r"RESULT ticks=(\d+) mismatches=(\d+)")


def ghdl_path() -> str:
    """The ``ghdl`` executable (``$GHDL`` or on ``PATH``); ``GhdlError`` when missing."""
    exe = os.environ.get("GHDL") or shutil.which("ghdl")
    if not exe:
        raise GhdlError("ghdl is not installed (Debian: apt-get install ghdl); it is needed to "
                        "analyse and run the exported VHDL")
    return exe


def _sources(out_dir: Path) -> tuple[str, list[str]]:
    listing = out_dir / "sources.txt"
    if not listing.exists():
        raise GhdlError(f"{listing} not found: export the network first (fpga.export)")
    tb, *sources = listing.read_text().split()
    return tb, sources


def _run(cmd: list[str], cwd: Path, timeout: float | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)


def analyse(out_dir: str | os.PathLike[str]) -> AnalysisResult:
    """Analyse and elaborate the exported VHDL with the warnings of ``ANALYSIS_WARNINGS``."""
    folder = Path(out_dir)
    tb, sources = _sources(folder)
    exe = ghdl_path()
    (folder / "work").mkdir(exist_ok=True)
    with stage(f"GHDL: analysing {len(sources)} files"):
        a = _run([exe, "-a", *GHDL_FLAGS, *ANALYSIS_WARNINGS, *sources], folder)
    output = a.stdout + a.stderr
    ok = a.returncode == 0
    if ok:
        with stage(f"GHDL: elaborating {tb}"):
            e = _run([exe, "-e", *GHDL_FLAGS, tb], folder)
        output += e.stdout + e.stderr
        ok = e.returncode == 0
    warnings = [ln for ln in output.splitlines() if "warning" in ln]
    return AnalysisResult(ok, warnings, output)


def run_testbench(out_dir: str | os.PathLike[str], trace: str | os.PathLike[str] | None = None,
                  timeout: float | None = 600) -> TestbenchResult:
    """Analyse (if needed), elaborate and run ``tb_<N>`` on ``trace`` (default the folder's
    ``trace.csv``). Raises ``GhdlError`` when the code does not analyse."""
    folder = Path(out_dir)
    tb, _ = _sources(folder)
    res = analyse(folder)
    if not res.ok:
        raise GhdlError(f"GHDL could not analyse {folder}:\n{res.output}")
    args = [ghdl_path(), "-r", *GHDL_FLAGS, tb]
    if trace is not None:
        args.append(f"-gTRACE={Path(trace).resolve()}")
    with stage(f"GHDL: running {tb}"):
        try:
            r = _run(args, folder, timeout)
        except subprocess.TimeoutExpired:
            raise GhdlError(f"GHDL did not finish {tb} in {folder} within {timeout:g} s (a "
                            "process that loops without waiting stops simulated time, and "
                            "the testbench's watchdog with it)") from None
    output = r.stdout + r.stderr
    mismatches = [Mismatch(int(m[1]), m[2], m[3], m[4]) for m in _MISMATCH.finditer(output)]
    result = _RESULT.search(output)
    ticks = int(result[1]) if result else None
    passed = r.returncode == 0 and result is not None and int(result[2]) == 0
    return TestbenchResult(passed, ticks, mismatches, r.returncode, output)


__all__ = ["AnalysisResult", "GhdlError", "Mismatch", "TestbenchResult", "analyse",
           "ghdl_path", "run_testbench"]
