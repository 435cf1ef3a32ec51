"""Progress bars: drawn for a person at a terminal, silent otherwise, never in the way."""

from __future__ import annotations

import io
import sys

import pytest

from sme.progress import progress, progress_enabled, stage


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMEFLOW_PROGRESS", raising=False)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert not progress_enabled()
    assert list(progress(range(5), desc="work")) == [0, 1, 2, 3, 4]
    with stage("compiling"):
        pass
    assert err.getvalue() == ""


def test_drawn_at_a_terminal_and_switchable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMEFLOW_PROGRESS", raising=False)
    err = FakeTTY()
    monkeypatch.setattr(sys, "stderr", err)
    assert list(progress([1, 2, 3], desc="reconstructing", unit="chunk")) == [1, 2, 3]
    assert "reconstructing" in err.getvalue() and "/3 " in err.getvalue()  # n of 3 chunks
    with stage("compiling the simulation"):
        pass
    assert "compiling the simulation" in err.getvalue()
    monkeypatch.setenv("SMEFLOW_PROGRESS", "0")
    before = err.getvalue()
    assert list(progress(iter("ab"), desc="x")) == ["a", "b"]
    assert err.getvalue() == before
    monkeypatch.setenv("SMEFLOW_PROGRESS", "1")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress_enabled()


def test_an_error_inside_passes_through_and_closes_the_bar(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMEFLOW_PROGRESS", "1")
    monkeypatch.setattr(sys, "stderr", FakeTTY())
    with pytest.raises(ZeroDivisionError), stage("step"):
        _ = 1 / 0
    with pytest.raises(KeyError):
        for _ in progress([1, 2], desc="loop"):
            raise KeyError("stop")
