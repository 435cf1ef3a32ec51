"""``smeflow vhdl``: export, record the trace, run the testbench / lock-step, PASS or FAIL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import fpga.export
from sme.cli import main


@pytest.mark.ghdl
def test_export_and_run_counter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "counter"
    status = main(["vhdl", "sme.examples.counter:build", "-o", str(out), "--ticks", "300",
                   "--run"])
    text = capsys.readouterr().out
    assert status == 0, text
    assert f"exported 'counter' to {out}" in text
    assert "trace: " in text and "(300 ticks, 3 signals" in text
    assert "testbench: PASS  ticks = 300" in text and "mismatches = 0" in text
    for name in ("counter.vhd", "tb_counter.vhd", "counter_pkg.vhd", "Makefile", "run.sh",
                 "trace.csv"):
        assert (out / name).is_file(), name
    assert len((out / "trace.csv").read_text().splitlines()) == 302  # header + reset + ticks


@pytest.mark.ghdl
def test_stimulus_and_lockstep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["vhdl", "sme.examples.pipeline:build", "-o", str(tmp_path), "--stimulus",
                   "sme.examples.pipeline:stimulus", "--ticks", "500", "--run", "--lockstep"])
    text = capsys.readouterr().out
    assert status == 0, text
    assert "testbench: PASS  ticks = 500" in text
    assert "lock-step: PASS  ticks = 500" in text


def test_export_only_needs_no_ghdl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["vhdl", "sme.examples.counter:build", "-o", str(tmp_path)])
    assert status == 0
    assert "(100 ticks," in capsys.readouterr().out  # DEFAULT_TICKS without stimulus
    assert (tmp_path / "counter.vhd").is_file()


@pytest.mark.ghdl
def test_broken_vhdl_fails_with_tick_and_signal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    real_export = fpga.export.export

    def export_then_break(*args: Any, **kwargs: Any) -> Any:
        written = real_export(*args, **kwargs)
        path = written.out_dir / "Counter_proc.vhd"
        lines = path.read_text().splitlines()
        (i,) = [k for k, ln in enumerate(lines) if ln.rstrip().endswith("counter.py:39")]
        lines[i] = lines[i].replace(" + ", " - ")
        path.write_text("\n".join(lines) + "\n")
        return written

    monkeypatch.setattr(fpga.export, "export", export_then_break)
    status = main(["vhdl", "sme.examples.counter:build", "-o", str(tmp_path), "--stimulus",
                   "sme.examples.counter:stimulus", "--run", "--lockstep"])
    text = capsys.readouterr().out
    assert status == 1
    assert "testbench: FAIL" in text
    assert "tick 1, signal counter_data.value: expected 1, got 255" in text
    assert "lock-step: FAIL  ticks = 1" in text
    assert "first mismatch: tick 1, signal counter_data.value" in text


@pytest.mark.parametrize("spec,message", [
    ("sme.examples.nope:build", r"cannot import module 'sme\.examples\.nope'"),
    ("sme.examples.counter:nope", r"module 'sme\.examples\.counter' has no 'nope'"),
    ("sme.examples.counter", r"expected MODULE:NAME"),
    ("sme.examples.counter:CounterData", r"is the class CounterData; name a Network"),
])
def test_bad_network_is_one_clear_error(
    spec: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["vhdl", spec, "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("smeflow vhdl: error: ")
    assert __import__("re").search(message, err), err
    assert not any(tmp_path.iterdir())


def test_bad_stimulus_and_ticks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vhdl", "sme.examples.counter:build", "-o", str(tmp_path), "--ticks",
                 "-1"]) == 2
    assert "--ticks -1: must be >= 0" in capsys.readouterr().err
    assert main(["vhdl", "sme.examples.counter:build", "-o", str(tmp_path), "--stimulus",
                 "sme.examples.pipeline:EXPECTED_VALID_COUNT"]) == 2
    assert "EXPECTED_VALID_COUNT' is not a function" in capsys.readouterr().err
    # a trace that cannot fit: refused before a tick (it ran on, growing ~72 B a tick)
    assert main(["vhdl", "sme.examples.counter:build", "-o", str(tmp_path), "--ticks",
                 str(10**12)]) == 2
    assert "--ticks 1000000000000: a trace of 1000000000001 rows × 3 signals needs at " \
        "least 67,055.2 GiB of memory" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_trace_over_half_the_available_memory_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """As ``smeflow sim``'s (tests/sme/test_commands.py): with 2 MiB available the
    counter's trace fits 14 562 ticks, not 14 563; nothing is exported."""
    import sme.host_memory

    monkeypatch.setattr(sme.host_memory, "available_memory", lambda: 2 << 20)
    out = tmp_path / "out"
    assert main(["vhdl", "sme.examples.counter:build", "-o", str(out), "--ticks",
                 "14563"]) == 2
    assert "give at most 14562 ticks" in capsys.readouterr().err
    assert not out.exists()
    assert main(["vhdl", "sme.examples.counter:build", "-o", str(out), "--ticks",
                 "14562"]) == 0
    assert "(14562 ticks, 3 signals" in capsys.readouterr().out


@pytest.mark.ghdl
def test_subprocess_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sme", "vhdl", "sme.examples.counter:build", "-o",
         str(tmp_path), "--stimulus", "sme.examples.counter:stimulus", "--run"],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "testbench: PASS  ticks = 12" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "sme", "vhdl", "no_such_module:net", "-o",
                          str(tmp_path / "x")], capture_output=True, text=True, timeout=120,
                         check=False)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "smeflow vhdl: error: 'no_such_module:net': cannot import module 'no_such_module': "
        "no module 'no_such_module' in the current folder ("), lines
