"""The smeflow command line: demo, sim, graph, and its errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sme.cli import main


def test_demo_prints_the_counter_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["counter-demo", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "counter_control.valid" in out and "counter_data.value" in out
    assert (tmp_path / "counter.csv").read_text().splitlines()[0] == (
        "counter_control.valid,counter_control.reset,counter_data.value"
    )
    assert (tmp_path / "counter.vcd").exists()


def test_sim_writes_csv_and_vcd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "p.csv"
    status = main(["sim", "sme.examples.pipeline:build", "--stimulus",
                   "sme.examples.pipeline:stimulus", "--ticks", "50", "--csv", str(csv),
                   "--vcd", str(tmp_path / "p.vcd"), "-q"])
    assert status == 0
    lines = csv.read_text().splitlines()
    assert len(lines) == 1 + 51  # header, reset row, 50 ticks
    assert lines[0].startswith("samples.x,samples.x_valid,")
    assert lines[1].split(",")[0] == "0" and lines[2].split(",")[0] == "12345"


@pytest.mark.parametrize("limit", [0, 1, 2, 3, 4, 10, 11, 12])
def test_sim_prints_exactly_the_rows_asked_for(limit: int,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``--rows N`` of a longer trace prints its first ceil(N/2) and last floor(N/2) rows,
    says how many it left out, and keeps one column layout (new-user review N3: --rows 1
    said '10 rows not shown' and printed all 11; 0 printed all; 3 printed 2; the two
    halves were aligned apart)."""
    assert main(["sim", "sme.examples.counter:build", "--stimulus",
                 "sme.examples.counter:stimulus", "--ticks", "10", "--rows", str(limit)]) == 0
    header, *lines = capsys.readouterr().out.rstrip("\n").split("\n")
    assert header.split() == ["tick", "counter_control.valid", "counter_control.reset",
                              "counter_data.value"]
    ticks = ["reset", *map(str, range(10))]  # 11 rows: the reset state, ticks 0..9
    if limit >= len(ticks):
        assert [line.split()[0] for line in lines] == ticks
        return
    head, tail = (limit + 1) // 2, limit // 2
    assert lines[head] == f"... {len(ticks) - limit} rows not shown ..."
    shown = lines[:head] + lines[head + 1:]
    assert [line.split()[0] for line in shown] == ticks[:head] + ticks[len(ticks) - tail:]
    assert all(len(line) == len(header) for line in shown)


def test_graph_command(tmp_path: Path) -> None:
    assert main(["graph", "sme.examples.counter:build", "-o", str(tmp_path / "c.dot")]) == 0
    assert "digraph" in (tmp_path / "c.dot").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sim", "nosuchmodule:build", "--ticks", "3"], "cannot import module 'nosuchmodule'"),
        (["sim", "sme.examples.counter", "--ticks", "3"], "expected MODULE:NAME"),
        (["sim", "sme.examples.counter:nothing", "--ticks", "3"], "has no 'nothing'"),
        (["sim", "sme.examples.counter:stimulus", "--ticks", "3"], "is not a Network"),
        (["sim", "sme.examples.counter:build"], "give --ticks N, --stimulus"),
        (["sim", "sme.examples.counter:build", "--ticks", "-1"], "--ticks -1: must be >= 0"),
        # refused before the design is imported (was 'cannot import module')
        (["sim", "nosuchmodule:build", "--ticks", "-1"], "--ticks -1: must be >= 0"),
        # an option the other mode ignores is refused (was taken and did nothing)
        (["sim", "sme.examples.counter:build", "--ticks", "3", "-q", "--rows", "5"],
         "--rows: not with --quiet"),
        (["sim", "sme.examples.counter:build", "--ticks", "3", "--rows", "-1"],
         "--rows -1: must be >= 0"),
        # a trace that cannot fit: refused before a tick (it ran on, growing ~72 B a tick)
        (["sim", "sme.examples.counter:build", "--ticks", str(10**12), "-q"],
         "--ticks 1000000000000: a trace of 1000000000001 rows × 3 signals needs at least "
         "67,055.2 GiB"),
    ],
)
def test_bad_arguments_give_one_clear_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_trace_over_half_the_available_memory_is_refused(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The limit is half of what the machine has available: with 2 MiB available the
    counter's trace (3 signals, at least 72 bytes a row, the reset row and one a tick) fits
    14 562 ticks, not 14 563 (before, every --ticks ran, its trace growing until the machine
    ran out)."""
    import sme.host_memory

    monkeypatch.setattr(sme.host_memory, "available_memory", lambda: 2 << 20)
    assert main(["sim", "sme.examples.counter:build", "--ticks", "14563", "-q"]) == 2
    err = capsys.readouterr().err
    assert err == ("smeflow sim: error: --ticks 14563: a trace of 14564 rows × 3 signals "
                   "needs at least 1.0 MiB of memory, more than the 1.0 MiB a run may take "
                   "(50% of the 2.0 MiB available); give at most 14562 ticks\n"), err
    assert main(["sim", "sme.examples.counter:build", "--ticks", "14562", "-q"]) == 0


STIMULI = """import itertools


def forever():
    for i in itertools.count():
        yield {"counter_control.valid": i % 4 != 3, "counter_control.reset": False}


def exactly():
    for i in range(14562):
        yield {"counter_control.valid": True, "counter_control.reset": False}
"""


@pytest.mark.parametrize("command", ["sim", "vhdl"])
def test_a_stimulus_that_does_not_end_is_stopped_at_the_memory_limit(
        command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without --ticks the stimulus says how long the run is; a generator that never ended
    ran on, its trace growing until the machine had no memory left. With 2 MiB available
    the counter's trace fits 14 562 ticks: the endless stimulus is refused at the next
    one (exit 2, one line, nothing exported); one of 14 562 ticks runs whole, and the
    endless one runs with --ticks."""
    import sme.host_memory

    (tmp_path / "stim_endless.py").write_text(STIMULI)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sme.host_memory, "available_memory", lambda: 2 << 20)
    out = tmp_path / "out"
    args = [command, "sme.examples.counter:build",
            *(["-q"] if command == "sim" else ["-o", str(out)])]
    assert main([*args, "--stimulus", "stim_endless:forever"]) == 2
    err = capsys.readouterr().err
    assert err == (f"smeflow {command}: error: --stimulus 'stim_endless:forever': still "
                   "giving ticks after 14562, the most whose trace of 3 signals fits in the "
                   "1.0 MiB a run may take (50% of the 2.0 MiB available); give --ticks N "
                   "to run a part of it\n"), err
    assert not out.exists()
    assert main([*args, "--stimulus", "stim_endless:exactly"]) == 0
    if command == "vhdl":
        assert "(14562 ticks, 3 signals" in capsys.readouterr().out
    assert main([*args, "--stimulus", "stim_endless:forever", "--ticks", "100"]) == 0


def test_console_script_exits_non_zero_on_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sme", "sim", "nosuchmodule:build", "--ticks", "1"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert "smeflow sim: error:" in result.stderr


@pytest.mark.parametrize(("given", "expected"), [(None, "system"), ("mimalloc", "mimalloc")])
def test_the_command_line_gives_arrow_malloc_unless_told_otherwise(given: str | None,
                                                                    expected: str) -> None:
    """``main`` sets Arrow's allocator before the commands' modules import pyarrow (its
    mimalloc pool kept freed tables resident in ``smeflow demo``); a value in the
    environment wins."""
    import os

    from sme.cli import ARROW_POOL_VARIABLE

    env = {k: v for k, v in os.environ.items() if k != ARROW_POOL_VARIABLE}
    if given is not None:
        env[ARROW_POOL_VARIABLE] = given
    code = ("import sys\nfrom sme.cli import main\n"
            "assert 'pyarrow' not in sys.modules\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "import pyarrow\nprint(pyarrow.default_memory_pool().backend_name)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300, check=True)
    assert done.stdout.split()[-1] == expected


_IMPORTED = ("import sys\nfrom sme.cli import main\ntry:\n    main(sys.argv[1:])\n"
             "except SystemExit:\n    pass\n"
             "print([m for m in ('dataflow.cli', 'analysis.cli', 'plans.demo', 'fpga.cli', "
             "'plans.qserver.cli') if m in sys.modules])")


@pytest.mark.parametrize(("argv", "imported"), [
    (["proxy", "--help"], []),
    (["--debug", "vhdl", "--help"], ["fpga.cli"]),
    (["--help"], ["dataflow.cli", "analysis.cli", "plans.demo", "fpga.cli",
                  "plans.qserver.cli"]),
])
def test_a_command_imports_only_its_own_modules(argv: list[str], imported: list[str]) -> None:
    """``smeflow COMMAND`` loads that command's entry point alone (importing every one cost
    ``smeflow proxy`` 5 s of CPU and 330 MB); ``smeflow --help`` still lists them all."""
    out = subprocess.run([sys.executable, "-c", _IMPORTED, *argv], capture_output=True,
                         text=True, timeout=300, check=True).stdout
    assert out.splitlines()[-1] == repr(imported), out[-2000:]
    if argv == ["--help"]:
        for command in ("demo", "sim", "vhdl", "catalog", "reduce", "export", "import",
                        "proxy", "queue"):
            assert command in out


def test_an_unknown_command_is_refused_naming_the_commands(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["nosuch", "--ticks", "1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nosuch'" in err and "'catalog'" in err and "'proxy'" in err, err
