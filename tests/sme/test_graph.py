"""Graphviz drawings of networks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sme import Bool, Bus, In, Network, Out, Process
from sme.examples import pipeline
from sme.graph import GraphError, to_dot, write_graph


class A(Bus):
    a: Bool = False


class B(Bus):
    b: Bool = False


class Reg(Process):
    inp: In[A]
    out: Out[B]

    def on_tick(self) -> None:
        self.out.b = self.inp.a


class Comb(Process, combinational=True):
    inp: In[B]
    out: Out[A]

    def on_tick(self) -> None:
        self.out.a = not self.inp.b


def test_dot_shows_processes_buses_and_kinds() -> None:
    a, b = A(), B()
    dot = to_dot(Network("loop", [Reg(inp=a, out=b), Comb(inp=b, out=a)]))
    assert '"p:reg" [shape=box, style=solid' in dot
    assert '"p:comb" [shape=box, style="rounded,dashed"' in dot
    # the bus written by the clocked process is a solid edge, the combinational one dashed
    assert '"p:reg" -> "p:comb"' in dot and "style=solid]" in dot
    assert '"p:comb" -> "p:reg"' in dot and "style=dashed]" in dot


def test_dot_marks_top_level_inputs_and_outputs() -> None:
    dot = to_dot(pipeline.build())
    assert '"in:samples" [shape=cds' in dot
    assert '"p:output" -> "out:sum_out"' in dot
    assert "x: Int[16], x_valid: Bool" in dot


def test_svg_is_rendered_by_dot(tmp_path: Path) -> None:
    assert shutil.which("dot"), "Graphviz is installed by the Makefile"
    out = write_graph(pipeline.build(), tmp_path / "p.svg")
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "accumulate" in text


def test_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match=r"p\.bmp: unknown drawing format 'bmp'"):
        write_graph(pipeline.build(), tmp_path / "p.bmp")


def test_missing_dot_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(GraphError, match="apt-get install -y graphviz"):
        write_graph(pipeline.build(), tmp_path / "p.svg")
    assert not (tmp_path / "p.svg").exists()
