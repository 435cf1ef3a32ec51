"""docs/language.md's table of the supported Python subset is true: every example marked
supported runs in the interpreter, the compiled backend and GHDL with equal traces, and
every example marked unsupported is refused at build time by all three, naming file, line
and column. The examples are taken from the document itself, so the two cannot drift."""

from __future__ import annotations

import importlib.util
import re
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from fpga.export import export
from fpga.pytest_plugin import HardwareTester
from fpga.stimulus import random_stimulus
from sme import Network, Simulator
from sme.errors import SmeError
from sme.lower import LoweringError

pytestmark = pytest.mark.ghdl

DOC = Path(__file__).resolve().parents[2] / "docs" / "language.md"
COLUMNS = ["construct", "example", "interp", "compiled", "vhdl"]

ENVIRONMENT = '''
from enum import Enum
from sme import (Array, Bool, Bus, In, Int, Network, Out, Process, UFix, UInt, resize,
                 saturate, wrap)


class Mode(Enum):
    IDLE = 0
    RUN = 4
    DONE = 9


class Ctl(Bus):
    go: Bool = False
    a: UInt[8] = 0
    b: Int[8] = 0
    n: UInt[3] = 0
    mode: Mode = Mode.IDLE
    arr: Array[UInt[4], 4] = [0, 0, 0, 0]
    f: UFix[4, 4] = 0


class Outs(Bus):
    x: UInt[16] = 0
    y: Int[16] = 0
    ok: Bool = False
    m: Mode = Mode.IDLE
    v: Array[UInt[8], 4] = [0, 0, 0, 0]
    g: UFix[8, 8] = 0
    w: UInt[64] = 0


K = 3
TABLE = (1, 2, 3, 5)


def twice(v):
    return v * 2
'''


def rows() -> list[tuple[str, str, list[str]]]:
    """(construct, example code, marks) of every row of the table."""
    text = DOC.read_text()
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| construct |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    assert header == COLUMNS
    found = []
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", ln.strip()[1:-1])]
        assert len(cells) == len(COLUMNS), ln
        example = cells[1]
        assert example.startswith("`") and example.endswith("`"), ln
        code = example[1:-1].replace("\\|", "|")
        found.append((cells[0], "\n".join(part[1:] if part.startswith(" ") else part
                                          for part in code.split("⏎")), cells[2:]))
    return found


ROWS = rows()


def module_of(tmp_path: Path, indexes: list[int]) -> ModuleType:
    """A module holding the environment and one process class ``Row<i>`` per row."""
    src = [ENVIRONMENT]
    for i in indexes:
        body = "\n".join(f"        {ln}" for ln in ROWS[i][1].splitlines())
        src.append(f"\n\nclass Row{i}(Process):\n    ctl: In[Ctl]\n    out: Out[Outs]\n"
                   f"    r: UInt[8] = 0\n    acc: Array[UInt[8], 4] = [0, 0, 0, 0]\n\n"
                   f"    def on_tick(self):\n{body}\n")
    name = f"lang_rows_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.py"
    path.write_text("".join(src))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_table_has_both_kinds_and_marks_are_known() -> None:
    marks = {m for _, _, ms in ROWS for m in ms}
    assert marks == {"✓", "✗"}
    assert sum(ms == ["✓"] * 3 for _, _, ms in ROWS) >= 25
    assert sum(ms == ["✗"] * 3 for _, _, ms in ROWS) >= 10


def test_supported_rows_agree_in_every_backend(tmp_path: Path, sme_hw: HardwareTester) -> None:
    ok = [i for i, (_, _, marks) in enumerate(ROWS) if marks == ["✓"] * 3]
    mod = module_of(tmp_path, ok)
    ctl = mod.Ctl(name="ctl")
    net = Network("lang", [getattr(mod, f"Row{i}")(name=f"row{i}", ctl=ctl,
                                                   out=mod.Outs(name=f"out{i}"))
                           for i in ok], inputs=[ctl])
    sme_hw.all_backends(net, random_stimulus(net, 120, seed=3, hold=0.5))


@pytest.mark.parametrize("index", [i for i, r in enumerate(ROWS) if r[2] == ["✗"] * 3],
                         ids=[r[0] for r in ROWS if r[2] == ["✗"] * 3])
def test_unsupported_rows_are_refused_alike(index: int, tmp_path: Path) -> None:
    mod = module_of(tmp_path, [index])
    net = Network("bad", [getattr(mod, f"Row{index}")(ctl=mod.Ctl(), out=mod.Outs())])
    where = re.escape(f"{Path(mod.__file__ or '').name}:") + r"\d+:\d+: "
    with pytest.raises(LoweringError, match="^" + where) as interp:
        Simulator(net)
    with pytest.raises(SmeError, match=where) as compiled:
        Simulator(net, backend="compiled")
    with pytest.raises(LoweringError, match="^" + where) as vhdl:
        export(net, tmp_path / "out")
    assert str(interp.value) == str(vhdl.value) and str(interp.value) in str(compiled.value)
    assert not (tmp_path / "out").exists()
