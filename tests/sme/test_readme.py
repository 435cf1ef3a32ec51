"""Every example is a test: the README's counter runs as printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest


def _python_blocks(readme: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)


def test_readme_counter_runs_as_shown(
    repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocks = _python_blocks(repo_root / "README.md")
    assert blocks, "the README shows the counter example"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(blocks[0], "README.md", "exec", dont_inherit=True), namespace)
    printed = [tuple(map(int, line.split())) for line in capsys.readouterr().out.splitlines()]
    assert printed == [(0, 1), (1, 2), (2, 3), (3, 3), (4, 4), (5, 5), (6, 6), (7, 6),
                       (8, 0), (9, 1), (10, 2), (11, 2)]
    assert (tmp_path / "counter.csv").read_text().splitlines()[1] == "0,0,0"


@pytest.mark.ghdl
def test_readme_vhdl_export_runs_as_shown(
    repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    block = next(b for b in _python_blocks(repo_root / "README.md") if "fpga.export" in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec", dont_inherit=True), {"__name__": "readme_vhdl"})
    assert capsys.readouterr().out.startswith("PASS: 12 ticks, 0 mismatches")
    assert (tmp_path / "out/counter/tb_counter.vhd").exists()
