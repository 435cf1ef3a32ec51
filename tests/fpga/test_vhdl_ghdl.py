"""The exported VHDL of the examples analyses cleanly in GHDL and passes its trace-replay
testbench; a one-operator edit makes it fail at the right tick and signal."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from fpga.export import export, record_trace
from fpga.ghdl import analyse, run_testbench
from sme.examples import counter, features, pipeline


def source_ref(module: ModuleType, code: str) -> str:
    """``file.py:N`` of the one line of ``module``'s source that holds ``code`` (what the
    VHDL comments cite; computed so that edits of the example do not break the test)."""
    path = Path(str(module.__file__))
    (n,) = [i for i, ln in enumerate(path.read_text().splitlines(), 1) if code in ln]
    return f"{path.name}:{n}"

pytestmark = pytest.mark.ghdl


@pytest.mark.parametrize("example,ticks", [(counter, 2000), (pipeline, 2000), (features, 1500)])
def test_example_passes_its_testbench(example: ModuleType, ticks: int, tmp_path: Path) -> None:
    net = example.build()
    trace = record_trace(net, example.stimulus(ticks))
    export(net, tmp_path, trace)
    a = analyse(tmp_path)
    assert a.ok, a.output
    assert a.warnings == [], a.output
    result = run_testbench(tmp_path)
    assert result.passed, result.output[-3000:]
    assert result.ticks == ticks
    assert result.mismatches == []


def test_edited_operator_fails_at_the_right_tick_and_signal(tmp_path: Path) -> None:
    net = pipeline.build()
    export(net, tmp_path, record_trace(net, pipeline.stimulus(200)))
    scale = tmp_path / "Scale.vhd"
    lines = scale.read_text().splitlines()
    (i,) = [k for k, ln in enumerate(lines) if ln.rstrip().endswith(source_ref(pipeline, "self.inp.x * 3 + 1"))]
    assert lines[i].count(" + ") == 1
    lines[i] = lines[i].replace(" + ", " - ")
    scale.write_text("\n".join(lines) + "\n")
    result = run_testbench(tmp_path)
    assert not result.passed
    assert result.returncode == 1
    first = result.mismatches[0]
    assert (first.tick, first.signal) == (1, "scaled.p1")
    x0, _ = pipeline.sample(0)
    assert (first.expected, first.got) == (str(x0 * 3 + 1), str(x0 * 3 - 1))
    assert "RESULT ticks=200" in result.output


def test_edited_trace_is_reported(tmp_path: Path) -> None:
    net = counter.build()
    export(net, tmp_path, record_trace(net, counter.stimulus(50)))
    rows = (tmp_path / "trace.csv").read_text().splitlines()
    cells = rows[11].split(",")
    cells[-1] = str(int(cells[-1]) + 1)
    rows[11] = ",".join(cells)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(rows) + "\n")
    result = run_testbench(tmp_path, trace=bad)
    assert not result.passed
    assert [(m.tick, m.signal) for m in result.mismatches] == [(10, "counter_data.value")]


def test_generated_files_follow_the_python(tmp_path: Path) -> None:
    net = pipeline.build()
    out = export(net, tmp_path, None)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"pipeline.vhd", "pipeline_pkg.vhd", "tb_pipeline.vhd", "Scale.vhd", "Makefile",
            "run.sh"} <= names
    acc = (tmp_path / "Accumulate.vhd").read_text()
    assert "-- Sums groups of 16 valid samples and flags each completed sum." in acc
    assert f"if cnt = 15 then  -- {source_ref(pipeline, 'self.cnt == GROUP - 1')}" in acc
    top = (tmp_path / "pipeline.vhd").read_text()
    assert "samples_x : in signed(15 downto 0)" in top
    assert "sum_out_sum_out : out unsigned(15 downto 0)" in top
    assert "signal scaled_p1 : signed(18 downto 0)" in top
    for f in out.files:
        text = f.read_text()
        assert "synopsys" not in text.lower() and "std_logic_arith" not in text
        assert len(text.splitlines()) < 800
