"""cocotb lock-step co-simulation: the exported VHDL in GHDL beside the Python model.

Both examples pass 10,000 random-stimulus ticks; a one-operator edit of the exported VHDL
fails at the right tick and signal with both values; missing tools are errors, not skips.
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fpga.cosim import LockstepError, LockstepMismatch, TopLevel, run_lockstep
from fpga.export import export
from fpga.pytest_plugin import HardwareTester
from fpga.stimulus import random_stimulus
from sme import Array, Bus, Fixed, In, Network, Out, Process, UInt, wrap
from sme.examples import counter, features, pipeline
from sme.trace import UNDEFINED


def source_ref(module: Any, code: str) -> str:
    """``file.py:N`` of the one line of ``module``'s source that holds ``code`` (what the
    VHDL comments cite; computed so that edits of the example do not break the test)."""
    path = Path(str(module.__file__))
    (n,) = [i for i, ln in enumerate(path.read_text().splitlines(), 1) if code in ln]
    return f"{path.name}:{n}"

RANDOM_TICKS = 10_000


def counter_random(ticks: int, seed: int) -> Iterator[dict[str, Any]]:
    """Random counter stimulus with rare resets, so the count wraps around 255."""
    rng = random.Random(seed)
    for _ in range(ticks):
        yield {"counter_control.valid": rng.random() < 0.8,
               "counter_control.reset": rng.random() < 0.002}


def plant(folder: Path, vhd: str, marker: str, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` on the one line of ``vhd`` that ends with ``marker``."""
    path = folder / vhd
    lines = path.read_text().splitlines()
    (i,) = [k for k, ln in enumerate(lines) if ln.rstrip().endswith(marker)]
    assert lines[i].count(old) == 1, lines[i]
    lines[i] = lines[i].replace(old, new)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.ghdl
def test_counter_lockstep_10000_random_ticks(cocotb_lockstep: Any) -> None:
    net = counter.build()
    result = cocotb_lockstep(net, counter_random(RANDOM_TICKS, seed=3), trace=True)
    assert result.passed and result.ticks == RANDOM_TICKS
    values = result.trace.column("counter_data.value")
    assert max(values) == 255 and values.count(0) > 1  # wrapped around, and was reset


@pytest.mark.ghdl
def test_pipeline_lockstep_10000_random_ticks(sme_hw: HardwareTester) -> None:
    net = pipeline.build()
    result = sme_hw.lockstep(net, random_stimulus(net, RANDOM_TICKS, seed=5), trace=True)
    assert result.passed and result.ticks == RANDOM_TICKS
    assert sum(result.trace.column("sum_out.sum_valid")) > 100


@pytest.mark.ghdl
def test_pipeline_lockstep_design_stimulus(sme_hw: HardwareTester) -> None:
    """The DESIGN.md stimulus, given as a lazily consumed iterator, one tick per message."""
    net = pipeline.build()
    result = sme_hw.lockstep(net, pipeline.stimulus(300), chunk=1)
    assert result.ticks == 300


@pytest.mark.ghdl
def test_features_lockstep_random_ticks(sme_hw: HardwareTester) -> None:
    """Enums (by position), fixed point (raw), arrays and a combinational process."""
    net = features.build()
    top = TopLevel.of(net)
    assert top.outputs, "features has top-level outputs"
    result = sme_hw.lockstep(net, random_stimulus(net, 3000, seed=11, hold=0.5))
    assert result.passed and result.ticks == 3000


@pytest.mark.ghdl
def test_planted_counter_fault_names_tick_signal_and_values(tmp_path: Path) -> None:
    net = counter.build()
    export(net, tmp_path)
    plant(tmp_path, "Counter_proc.vhd", "counter.py:39", " + ", " - ")
    result = run_lockstep(net, tmp_path, counter.stimulus(12))
    assert not result.passed
    m = result.mismatch
    assert m is not None
    assert (m.tick, m.signal, m.port, m.expected, m.got) == (
        1, "counter_data.value", "counter_data_value", 1, 255)
    assert result.ticks == 1
    with pytest.raises(LockstepMismatch, match=r"tick 1, signal counter_data\.value "
                       r"\(port counter_data_value\): expected 1, got 255"):
        result.check()


class MutantAccumulate(pipeline.Accumulate, simulation_only=True):
    """The Python twin of the planted VHDL fault: ``acc - c2`` instead of ``acc + c2``."""

    def on_tick(self) -> None:
        if self.inp.v2 and self.cnt == pipeline.GROUP - 1:
            self.out.s3 = wrap(self.acc - self.inp.c2)
            self.out.v3 = True
            self.acc = 0
            self.cnt = 0
        else:
            super().on_tick()


def mutant_pipeline() -> Network:
    samples, scaled, clamped = pipeline.Samples(), pipeline.Scaled(), pipeline.Clamped()
    sums, out = pipeline.GroupSum(), pipeline.SumOut()
    return Network("pipeline", [pipeline.Scale(inp=samples, out=scaled),
                                pipeline.Clamp(inp=scaled, out=clamped),
                                MutantAccumulate(inp=clamped, out=sums),
                                pipeline.Output(inp=sums, out=out)])


@pytest.mark.ghdl
def test_planted_pipeline_fault_stops_at_first_difference(tmp_path: Path) -> None:
    net = pipeline.build()
    export(net, tmp_path)
    plant(tmp_path, "Accumulate.vhd", source_ref(pipeline, "self.out.s3 = self.acc"), " + ", " - ")
    result = run_lockstep(net, tmp_path, pipeline.stimulus(400), trace=True)
    m = result.mismatch
    assert m is not None and result.trace is not None
    # where the faulty design first differs from the right one on a top-level output
    mutant = HardwareTester(tmp_path).simulate(mutant_pipeline(), pipeline.stimulus(400))
    want = next(d for d in result.trace.differences(mutant, limit=10_000)
                if d.signal.startswith("sum_out."))
    assert (m.tick, m.signal, m.expected, m.got) == (want.tick, want.signal, want.expected,
                                                     want.got)
    assert result.ticks == m.tick


@pytest.mark.ghdl
def test_vhdl_that_does_not_build_is_a_lockstep_error(tmp_path: Path) -> None:
    net = counter.build()
    export(net, tmp_path)
    plant(tmp_path, "Counter_proc.vhd", "counter.py:39", " + ", " +* ")
    with pytest.raises(LockstepError, match=r"GHDL could not build the VHDL of 'counter'"):
        run_lockstep(net, tmp_path, ticks=5)


@pytest.mark.ghdl
def test_python_model_error_is_raised_as_is(tmp_path: Path) -> None:
    from sme.errors import SignalValueError

    net = counter.build()
    export(net, tmp_path)
    bad = [{"counter_control.valid": True}] * 3 + [{"counter_control.valid": 7}]
    with pytest.raises(SignalValueError, match=r"counter_control\.valid"):
        run_lockstep(net, tmp_path, bad)


class _Ask(Bus):
    a: UInt[8] = 0


class _Got(Bus):
    y: UInt[8] = 0


class RegNeg(Process):
    """Reads ``buf[a - 3]``: index -3 while a = 0 (the VHDL starts with a = 0)."""

    inp: In[_Ask]
    out: Out[_Got]
    buf: Array[UInt[8], 7] = [1, 2, 3, 4, 5, 6, 7]

    def on_tick(self) -> None:
        self.out.y = self.buf[self.inp.a - 3]


def _regneg(cls: type[Process]) -> Network:
    inp, out = _Ask("inp"), _Got("out")
    return Network("negidx", [cls(name="p", inp=inp, out=out)], inputs=[inp])


@pytest.mark.ghdl
def test_a_ghdl_run_time_stop_is_named_in_the_lockstep_error(tmp_path: Path) -> None:
    """GHDL stops on an index out of bounds; its own report line is the error's first line,
    not left in the log (where cocotb's shutdown report follows it). The Python model of
    the same design refuses the index too (tests/sme/test_array_indexes.py), so the model
    here reads within bounds: GHDL is the one that stops."""
    export(_regneg(RegNeg), tmp_path)

    class InBounds(RegNeg):
        def on_tick(self) -> None:
            self.out.y = self.buf[(self.inp.a + 4) % 7]

    InBounds.__name__ = "RegNeg"
    with pytest.raises(LockstepError) as info:
        run_lockstep(_regneg(InBounds), tmp_path, [{"inp.a": 0}, {"inp.a": 1}])
    head = str(info.value).splitlines()[0]
    assert re.fullmatch(r"lock-step co-simulation of 'negidx' failed to run: GHDL stopped: "
                        r"index \(-3\) out of bounds \(0 to 6\) at \S*RegNeg\.vhd:\d+", head), head


# -- without GHDL ---------------------------------------------------------------------------

def test_missing_ghdl_is_an_error_not_a_skip(tmp_path: Path, monkeypatch: Any) -> None:
    net = counter.build()
    (tmp_path / "counter.vhd").write_text("-- placeholder design file\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(LockstepError, match=r"GHDL is not available.*apt-get install ghdl"):
        run_lockstep(net, tmp_path, ticks=1)


def test_missing_cocotb_is_an_error_not_a_skip(tmp_path: Path, monkeypatch: Any) -> None:
    net = counter.build()
    (tmp_path / "counter.vhd").write_text("-- placeholder design file\n")
    monkeypatch.setitem(sys.modules, "cocotb_tools.runner", None)
    with pytest.raises(LockstepError, match=r"cocotb is not installed.*pip install cocotb"):
        run_lockstep(net, tmp_path, ticks=1)


def test_arguments_are_checked(tmp_path: Path) -> None:
    net = counter.build()
    with pytest.raises(LockstepError, match="needs ticks= or stimulus="):
        run_lockstep(net, tmp_path)
    with pytest.raises(LockstepError, match="no VHDL design files"):
        run_lockstep(net, tmp_path, ticks=1)


def test_top_level_ports_and_raw_values() -> None:
    net: Network = features.build()
    top = TopLevel.of(net)
    names = {p.signal: p for p in (*top.inputs, *top.outputs)}
    assert all(p.name == p.signal.replace(".", "_") for p in names.values())
    for p in names.values():
        t = p.type
        if repr(t).startswith("SFix"):
            v = Fixed(-5, t.frac_bits)  # type: ignore[attr-defined]
            assert p.to_raw(v) == -5 and p.signed
            assert p.from_raw(-5).raw == -5
        if hasattr(t, "members"):
            last = t.members[-1]
            assert p.to_raw(last) == len(t.members) - 1
            assert p.from_raw(len(t.members) - 1) is last
        if p.length is not None:
            assert p.to_raw([1] * p.length) == [1] * p.length
    any_port = next(iter(names.values()))
    assert any_port.to_raw(UNDEFINED) is None
    assert any_port.from_raw("UUUU") == "UUUU"


@pytest.mark.ghdl
def test_the_bench_inside_ghdl_loads_no_pytest_plugin(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """cocotb's pytest inside GHDL (for the bench's asserts) loads no installed pytest
    plugin: each co-simulation imported zarr's, xdist's, hypothesis'... (1-8 s of CPU,
    with smeflow's own, devices/__init__.py, the whole beamline). Seen from Python's own
    import log of the run (``PYTHONPROFILEIMPORTTIME``, written into cocotb's log)."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    net = counter.build()
    export(net, tmp_path)
    result = run_lockstep(net, tmp_path, counter.stimulus(12), build_dir=tmp_path / "build")
    assert result.passed and result.ticks == 12
    log = (tmp_path / "build" / "lockstep.log").read_text()
    imported = {line.rsplit("|", 1)[1].strip() for line in log.splitlines()
                if line.startswith("import time:")}
    # (what a plugin imports: the plugins themselves are loaded through importlib, which
    # Python's import log does not list)
    assert {"fpga.cosim._lockstep", "_pytest.assertion.rewrite"} <= imported
    plugins = ("zarr", "xdist", "execnet", "_hypothesis_globals", "anyio", "platformdirs",
               "devices")
    assert sorted(m for m in imported if m.split(".")[0] in plugins) == []
