"""Files replaced whole or not at all (sme.atomic_file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sme.atomic_file import atomic_write, write_text_atomic


def test_the_new_content_replaces_the_old_at_once(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old\n")
    write_text_atomic(target, "new ✓\n")
    assert target.read_text(encoding="utf-8") == "new ✓\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_an_error_while_writing_keeps_the_old_file_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="half-way"), atomic_write(target) as fh:
        fh.write("half a new file")
        raise RuntimeError("half-way")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_a_new_file_appears_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "g.csv"
    with atomic_write(target, newline="", fsync=True) as fh:
        fh.write("a,b\r\n")
        assert not target.exists()
    assert target.read_bytes() == b"a,b\r\n"
