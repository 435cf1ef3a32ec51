"""``smeflow vhdl|sim|graph``: finding the design (a module in the current folder, a file
path) and answering every bad input with one line, a non-zero exit status and no
traceback (``--debug`` shows it)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from sme.cli import main

DESIGN = '''
from sme import Bool, Bus, In, Network, Out, Process, UInt, wrap
{imports}

class Ctl(Bus):
    valid: Bool = False


class Count(Bus):
    value: UInt[8] = 0


class Counter(Process):
    ctl: In[Ctl]
    out: Out[Count]
    n: UInt[8] = {start}

    def on_tick(self) -> None:
        if self.ctl.valid:
            self.n = wrap(self.n + 1)
        self.out.value = self.n


def build() -> Network:
    return Network("{name}", [Counter(ctl=Ctl(), out=Count())])


def build_with(n: int) -> Network:
    return build()


def fails() -> Network:
    raise ValueError("no such configuration")


def stimulus():
    for i in range(6):
        yield {{"ctl.valid": i % 2 == 0}}


def rows_not_mappings():
    yield [("ctl.valid", True)]


def bad_generator():
    yield {{"ctl.valid": True}}
    raise RuntimeError("the stimulus generator broke")


def unknown_bus():
    yield {{"nobus.valid": True}}
'''


def write_design(folder: Path, module: str, *, start: str = "0", imports: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}.py"
    path.write_text(DESIGN.format(imports=imports, start=start, name=module))
    return path


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh working folder; ``sys.path`` restored afterwards and the modules loaded from
    the folder forgotten, and the current folder *not* on the path (as under the
    ``smeflow`` console script). (Not a copy of ``sys.modules`` put in its place: a C
    extension imported meanwhile — pandas, through the catalog's commands — registers
    itself in the interpreter's own dict and then cannot find its package.)"""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path
                                      if p not in ("", ".", str(tmp_path))])
    yield tmp_path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def one_error(capsys: pytest.CaptureFixture[str], command: str) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in err and out == "", err
    assert err.startswith(f"smeflow {command}: error: "), err
    assert err.count("\n") == 1, err
    return err


# -- item 8: where designs are found ------------------------------------------------------

def test_module_in_the_current_folder_is_found(isolated: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    write_design(isolated, "cwd_counter_design")
    assert main(["sim", "cwd_counter_design:build", "--stimulus",
                 "cwd_counter_design:stimulus", "-q", "--csv", "t.csv"]) == 0
    rows = (isolated / "t.csv").read_text().splitlines()
    assert [r.split(",")[-1] for r in rows[1:]] == ["0", "1", "1", "2", "2", "3", "3"]


def test_file_path_with_a_sibling_import(isolated: Path) -> None:
    folder = isolated / "work" / "designs"
    folder.mkdir(parents=True)
    (folder / "sibling_consts_mod.py").write_text("START = 5\n")
    path = write_design(folder, "file_counter_design", start="START",
                        imports="from sibling_consts_mod import START")
    out = isolated / "vhdl"
    assert main(["vhdl", f"{path}:build", "-o", str(out), "--ticks", "3"]) == 0
    assert (out / "Counter.vhd").exists()
    relative = path.relative_to(isolated)
    assert main(["graph", f"{relative}:build", "-o", str(isolated / "g.dot")]) == 0
    assert "digraph" in (isolated / "g.dot").read_text()


# -- issue 16 item 7: bad inputs ----------------------------------------------------------

def _files(root: Path) -> dict[str, Path]:
    d = root / "bad"
    write_design(d, "good_lookup_design")
    write_design(d, "missing_dep_design", imports="import no_such_dependency_xyz  # noqa")
    (d / "broken_helper_mod.py").write_text("def helper(:\n    pass\n")
    write_design(d, "imports_broken_design", imports="import broken_helper_mod  # noqa")
    write_design(d, "raises_design", imports="LIMIT = 1 // 0")
    (d / "stim.csv").write_text("ctl.valid,nobus.x\n1,0\n")
    (d / "bad_value.csv").write_text("ctl.valid\n1\n7\n")
    (d / "outfile.txt").write_text("not a folder\n")
    (d / "folder").mkdir()
    return {"d": d}


def _cases(d: Path) -> list[tuple[str, list[str], str]]:
    good = f"{d / 'good_lookup_design.py'}"
    return [
        ("missing dependency", ["sim", f"{d / 'missing_dep_design.py'}:build", "--ticks", "1"],
         f"No module named 'no_such_dependency_xyz' (at {d / 'missing_dep_design.py'}:3)"),
        ("wrong name", ["sim", f"{good}:biuld", "--ticks", "1"],
         "has no 'biuld'; did you mean 'build'?"),
        ("class given", ["graph", f"{good}:Counter", "-o", str(d / "g.dot")],
         "is the class Counter; name a Network, or a function of no arguments"),
        ("function needing arguments", ["sim", f"{good}:build_with", "--ticks", "1"],
         "takes arguments (n: int); name a function that builds the network"),
        ("syntax error in an imported module",
         ["vhdl", f"{d / 'imports_broken_design.py'}:build", "-o", str(d / "o1")],
         f"{d / 'broken_helper_mod.py'}:1: invalid syntax"),
        ("exception while importing", ["sim", f"{d / 'raises_design.py'}:build", "--ticks", "1"],
         f"importing '{d / 'raises_design.py'}' raised ZeroDivisionError: integer division "
         f"or modulo by zero (at {d / 'raises_design.py'}:3)"),
        ("exception while building", ["vhdl", f"{good}:fails", "-o", str(d / "o2")],
         f"building the network raised ValueError: no such configuration (at {good}:"),
        ("CSV stimulus naming an unknown bus",
         ["sim", f"{good}:build", "--stimulus", str(d / "stim.csv")],
         f"{d / 'stim.csv'}:1: column 2 'nobus.x': the network has no bus 'nobus' "
         "(inputs of 'good_lookup_design': ctl.valid)"),
        ("CSV value out of range", ["vhdl", f"{good}:build", "-o", str(d / "o3"),
                                    "--stimulus", str(d / "bad_value.csv")],
         f"{d / 'bad_value.csv'}:3: column ctl.valid: '7' is not a Bool"),
        ("rows that are not mappings",
         ["sim", f"{good}:build", "--stimulus", f"{good}:rows_not_mappings"],
         "item 0 is [('ctl.valid', True)] (a list), not a {'bus.signal': value} mapping"),
        ("stimulus generator raising",
         ["vhdl", f"{good}:build", "-o", str(d / "o4"), "--stimulus", f"{good}:bad_generator"],
         "computing item 1 raised RuntimeError: the stimulus generator broke (at "),
        ("stimulus naming an unknown bus",
         ["sim", f"{good}:build", "--stimulus", f"{good}:unknown_bus"],
         "stimulus 'nobus.valid': network 'good_lookup_design' has no bus 'nobus'"),
        ("--vcd at a folder", ["sim", f"{good}:build", "--ticks", "2", "--vcd",
                               str(d / "folder")],
         f"--vcd {d / 'folder'}: is a folder; give a file name, e.g. "
         f"{d / 'folder' / 'trace.vcd'}"),
        ("--csv under a file", ["sim", f"{good}:build", "--ticks", "2", "--csv",
                                str(d / "outfile.txt" / "t.csv")],
         f"{d / 'outfile.txt'} is a file, not a folder"),
        ("-o at an existing file", ["vhdl", f"{good}:build", "-o", str(d / "outfile.txt")],
         f"-o {d / 'outfile.txt'}: is a file, not a folder"),
        ("graph -o at a folder", ["graph", f"{good}:build", "-o", str(d / "folder")],
         f"-o {d / 'folder'}: is a folder; give a file name"),
        ("missing design file", ["vhdl", f"{d / 'nope.py'}:build", "-o", str(d / "o5")],
         f"{d / 'nope.py'} does not exist; give a Python file"),
    ]


CASE_NAMES = [c[0] for c in _cases(Path("/x"))]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_input_is_one_line_without_traceback(
        isolated: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    d = _files(isolated)["d"]
    _, argv, message = next(c for c in _cases(d) if c[0] == case)
    before = sorted(p.name for p in d.iterdir())
    status = main(argv)
    err = one_error(capsys, argv[0])
    assert status != 0
    assert message in err, err
    # nothing was written: no output folder, no trace file, no drawing
    assert sorted(p.name for p in d.iterdir() if p.suffix != ".pyc"
                  and p.name != "__pycache__") == before


def test_debug_shows_the_traceback_of_the_users_code(
        isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_design(isolated, "debug_lookup_design")
    with pytest.raises(Exception, match="building the network raised ValueError") as info:
        main(["sim", f"{good}:fails", "--ticks", "1", "--debug"])
    cause = info.value.__cause__
    assert isinstance(cause, ValueError) and str(cause) == "no such configuration"


def test_an_exception_in_a_process_body_names_its_line(
        isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = isolated / "body_raises_design.py"
    path.write_text(textwrap.dedent('''
        from sme import Bus, In, Network, Out, Process, UInt

        class A(Bus):
            x: UInt[8] = 0

        class B(Bus):
            y: UInt[8] = 0

        class Div(Process):
            a: In[A]
            b: Out[B]

            def on_tick(self) -> None:
                self.b.y = 100 // self.a.x

        def build() -> Network:
            return Network("div", [Div(a=A(), b=B())])
        '''))
    assert main(["sim", f"{path}:build", "--ticks", "1"]) == 1
    err = one_error(capsys, "sim")
    assert f"ZeroDivisionError: integer division or modulo by zero (at {path}:15)" in err
