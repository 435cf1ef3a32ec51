"""``smeflow demo``'s options are resolved once: :func:`plans.demo.check_demo_args` puts
in the defaults of those left out and returns what it checked, and ``cmd_demo`` runs
exactly that (it no longer resolves them a second time, where the two could drift)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

import plans.demo as demo
import plans.demo_memory as demo_memory


def parse(*argv: str) -> argparse.Namespace:
    """``smeflow demo``'s parser alone (not every command's: their imports take seconds)."""
    parser = argparse.ArgumentParser(prog="smeflow")
    demo.register_demo(parser.add_subparsers())
    return parser.parse_args(["demo", *argv])


def test_check_demo_args_returns_the_options_it_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert demo.check_demo_args(parse()) == demo.DemoRun(
        tmp_path / demo.DEFAULT_OUTPUT, tmp_path / demo.DEFAULT_DATA, demo.DEFAULT_PROJECTIONS,
        quiet=False)
    assert demo.check_demo_args(parse("-o", "pics", "--data", "cat", "--projections", "7",
                                      "-q")) \
        == demo.DemoRun(tmp_path / "pics", tmp_path / "cat", 7, quiet=True)
    assert demo.check_demo_args(parse("--prepare")) is None


class _Ran(Exception):
    """Stands for the demo: carries what it was asked to run."""


def test_cmd_demo_runs_what_check_demo_args_resolved(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[Any] = []
    real_check = demo.check_demo_args

    def check(args: Any) -> Any:
        checked.append(real_check(args))
        return checked[-1]

    def run_demo(data_dir: Path, out_dir: Path, **kwargs: Any) -> Any:
        raise _Ran(data_dir, out_dir, kwargs["projections"], kwargs["quiet"])

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo, "check_demo_args", check)
    monkeypatch.setattr(demo, "run_demo", run_demo)
    # (not this test process's malloc settings)
    monkeypatch.setattr(demo_memory, "return_freed_buffers", lambda: True)
    monkeypatch.setattr(demo_memory, "cap_malloc_arenas", lambda: True)
    monkeypatch.setattr(demo_memory, "page_out_libraries", lambda: 0)
    for argv in ((), ("-o", "pics", "--data", "cat", "--projections", "7", "-q")):
        with pytest.raises(_Ran) as ran:
            demo.cmd_demo(parse(*argv))
        run = checked[-1]
        assert run is not None
        assert ran.value.args == (run.data, run.output, run.projections, run.quiet)


def test_cmd_demo_pages_out_libraries_as_each_loading_phase_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``smeflow demo`` gives back its shared libraries' pages (``page_out_libraries``)
    after its imports and as each phase that loads more ends (after noting the phase's
    memory); not during the scans, whose libraries would be read back from the disk."""
    events: list[str] = []

    def run_demo(data_dir: Path, out_dir: Path, **kwargs: Any) -> Any:
        for phase in demo.DEMO_PHASES:
            kwargs["on_phase"](phase)
        raise _Ran()

    real_mark = demo_memory.PeakMemory.mark

    def mark(self: demo_memory.PeakMemory, phase: str) -> demo_memory.PhaseMemory:
        events.append(f"mark {phase}")
        return real_mark(self, phase)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo, "run_demo", run_demo)
    monkeypatch.setattr(demo_memory, "return_freed_buffers", lambda: True)
    monkeypatch.setattr(demo_memory, "cap_malloc_arenas", lambda: True)
    monkeypatch.setattr(demo_memory, "page_out_libraries", lambda: events.append("page out"))
    monkeypatch.setattr(demo_memory.PeakMemory, "mark", mark)
    with pytest.raises(_Ran):
        demo.cmd_demo(parse("-q"))
    want = [e for phase in ("start", *demo.DEMO_PHASES) for e in (
        [f"mark {phase}", "page out"] if phase in demo.LOADING_PHASES else [f"mark {phase}"])]
    assert want.count("page out") == 4  # start, catalog, beamline, kernels
    assert events == want
