"""``smeflow vhdl`` / ``sim`` / ``graph`` on design files that break a rule: one clear
message naming file, line and bus or construct, a non-zero exit status, and no output
folder or file left behind."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sme.cli import main

DESIGN = '''
from sme import Bool, Bus, In, Network, Out, Process, UInt


class Data(Bus):
    value: UInt[8] = 0


class Ctl(Bus):
    go: Bool = False


class Writer(Process):
    ctl: In[Ctl]
    data: Out[Data]

    def on_tick(self) -> None:
        self.data.value = 1


class Sneaky(Process):
    ctl: In[Ctl]
    data: In[Data]

    def on_tick(self) -> None:
        self.data.value = 2


class Unsynth(Process):
    ctl: In[Ctl]
    data: Out[Data]

    def on_tick(self) -> None:
        try:
            self.data.value = 1
        except ValueError:
            pass


def two_writers() -> Network:
    d, c = Data(), Ctl()
    return Network("two", [Writer(ctl=c, data=d), Writer(ctl=c, data=d)])


def writes_its_input() -> Network:
    d, c = Data(), Ctl()
    return Network("sneaky", [Writer(ctl=c, data=d), Sneaky(ctl=c, data=d)])


def unsynthesisable() -> Network:
    return Network("unsynth", [Unsynth(ctl=Ctl(), data=Data())])
'''


@pytest.fixture
def designs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on ``sys.path`` holding the design modules (unique names per test)."""
    folder = tmp_path / "designs"
    folder.mkdir()
    (folder / "bad_rules.py").write_text(DESIGN)
    (folder / "bad_syntax.py").write_text("from sme import Network\n\ndef build(:\n    pass\n")
    (folder / "bad_width.py").write_text(textwrap.dedent("""
        from sme import Bus, UInt

        class Wide(Bus):
            value: UInt[0] = 0
        """))
    monkeypatch.syspath_prepend(str(folder))
    for name in ("bad_rules", "bad_syntax", "bad_width"):
        monkeypatch.delitem(__import__("sys").modules, name, raising=False)
    return folder


def one_error(capsys: pytest.CaptureFixture[str], command: str) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in err and out == ""
    assert err.startswith(f"smeflow {command}: error: "), err
    return err


@pytest.mark.parametrize("command", ["vhdl", "sim", "graph"])
def test_two_writers_name_the_bus_and_both_processes(
        designs: Path, tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    extra = {"vhdl": ["-o", str(out)], "sim": ["--ticks", "3"], "graph": ["-o", str(out)]}
    assert main([command, "bad_rules:two_writers", *extra[command]]) == 1
    err = one_error(capsys, command)
    file = designs / "bad_rules.py"
    assert f"bus 'data' (Data, created at {file}:" in err and "has two writers" in err
    assert err.count(f"(created at {file}:") == 2
    assert not out.exists()


@pytest.mark.parametrize("command", ["vhdl", "sim"])
def test_writing_a_bus_it_only_reads_names_process_and_signal(
        designs: Path, tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    extra = {"vhdl": ["-o", str(out)], "sim": ["--ticks", "3", "--csv", str(out / "t.csv")]}
    assert main([command, "bad_rules:writes_its_input", *extra[command]]) == 1
    err = one_error(capsys, command)  # refused when the network is built, at the line
    lineno = DESIGN.splitlines().index("        self.data.value = 2") + 1
    assert err == (f"smeflow {command}: error: bad_rules.py:{lineno}:8: Sneaky cannot write "
                   "self.data.value: port 'data' is an In port (a process writes only its "
                   "Out[...] buses)\n")
    assert not out.exists()


def test_unsupported_python_names_file_line_and_construct_and_writes_nothing(
        designs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["vhdl", "bad_rules:unsynthesisable", "-o", str(out)]) == 1
    err = one_error(capsys, "vhdl")
    lineno = DESIGN.splitlines().index("        try:") + 1
    assert err == (f"smeflow vhdl: error: bad_rules.py:{lineno}:8: try/except is not "
                   "supported in on_tick\n")
    assert not out.exists()  # the folder is made only once everything is generated


def test_syntax_error_in_the_design_file_names_file_and_line(
        designs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vhdl", "bad_syntax:build", "-o", str(tmp_path / "out")]) == 2
    err = one_error(capsys, "vhdl")
    assert err == (f"smeflow vhdl: error: 'bad_syntax:build': {designs / 'bad_syntax.py'}:3: "
                   "invalid syntax\n")
    assert not (tmp_path / "out").exists()


def test_bad_declaration_at_import_is_one_error(
        designs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "bad_width:build", "--ticks", "1"]) == 1
    err = one_error(capsys, "sim")
    assert "UInt[0]: width must be an int in 1.." in err and err.count("\n") == 1


@pytest.mark.parametrize(("spec", "message"), [
    (".bad_rules:two_writers", "module '.bad_rules' is relative; give its full dotted name"),
    ("missing_design:build", "cannot import module 'missing_design'"),
])
def test_missing_or_relative_design_module(designs: Path, tmp_path: Path, spec: str,
                                           message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vhdl", spec, "-o", str(tmp_path / "out")]) == 2
    err = one_error(capsys, "vhdl")
    assert err.startswith(f"smeflow vhdl: error: {spec!r}: {message}") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
