"""Damaged run journals and spool files (``[name, doc]`` JSON lines, ``dataflow.spool_files``):
a line cut short at the end of the file — the process died writing it — is dropped with a
warning naming file and line; any other damage is one ``SpoolError`` naming file and line,
never a document dropped without a word.

``smeflow catalog repair`` reads a killed run's journal this way; a damaged one is one
line on stderr naming the file, exit status 1, and the journal is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from event_model import compose_run

from dataflow.catalog import Catalog
from dataflow.cli import main
from dataflow.journal import JOURNAL_DIR, JournalingWriter, journal_of
from dataflow.spool_files import SpoolError, encode_document, read_spool


def _lines() -> list[bytes]:
    bundle = compose_run(metadata={"plan_name": "count", "sample": "Å-42"})  # (as \u00c5)
    desc = bundle.compose_descriptor(name="primary", data_keys={
        "x": {"source": "s", "dtype": "number", "shape": []}})
    docs = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
    docs += [("event", desc.compose_event(data={"x": float(i)}, timestamps={"x": 0.0},
                                          seq_num=i + 1)) for i in range(3)]
    return [encode_document(n, d).encode() + b"\n" for n, d in docs]


LINES = _lines()
GOOD = b"".join(LINES)


def _flip(line: int, at: int = 30) -> bytes:
    """GOOD with one byte of ``line`` (1-based) flipped: never valid UTF-8 after it."""
    offset = sum(len(x) for x in LINES[:line - 1]) + at
    data = bytearray(GOOD)
    data[offset] ^= 0xFF
    return bytes(data)


# (file contents, documents read back or the error naming the line)
DAMAGE: dict[str, tuple[bytes, int | str]] = {
    "intact": (GOOD, 5),
    "last line cut": (GOOD[:-20], 4),
    "one byte short": (GOOD[:-1], 5),  # only the newline is missing: the line is whole
    "NUL tail of a power cut": (GOOD + b"\x00" * 4096, 5),
    "byte flipped, line 2": (_flip(2), r":2: not a spooled document \(not UTF-8"),
    "byte flipped, whole last line": (_flip(5), r":5: not a spooled document \(not UTF-8"),
    "brace lost, whole last line": (GOOD[:-2] + b"\n",
                                    r":5: not a spooled document \(.*delimiter"),
    "edited in Latin-1": (GOOD.replace(b"count", "cöunt".encode("latin-1")),
                          r":1: not a spooled document \(not UTF-8"),
    "UTF-16": (GOOD.decode().encode("utf-16"), r":1: not a spooled document \(not UTF-8"),
    "empty": (b"", ": does not begin with a start document"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_spool_file_is_read_whole_or_refused_naming_the_line(
        tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture) -> None:
    data, expect = DAMAGE[case]
    path = tmp_path / "run.jsonl"
    path.write_bytes(data)
    if isinstance(expect, str):
        with pytest.raises(SpoolError, match=rf"^{path}{expect}"):
            read_spool(path)
        return
    with caplog.at_level(logging.WARNING, logger="dataflow.spool_files"):
        docs = read_spool(path)
    assert [n for n, _ in docs] == ["start", "descriptor", "event", "event", "event"][:expect]
    assert docs[0][1]["sample"] == "Å-42"
    dropped = [r.getMessage() for r in caplog.records]
    assert dropped == ([] if expect == 5 and "NUL" not in case
                       else [f"{path}:{expect + 1}: incomplete last line dropped"])


@pytest.fixture(scope="module")
def killed(catalog: Catalog) -> tuple[str, Path]:
    """A run whose process 'died' after three events: its journal is left."""
    writer = JournalingWriter(catalog.writer(batch_size=1), catalog.root / JOURNAL_DIR)
    bundle = compose_run(metadata={"plan_name": "count"})
    desc = bundle.compose_descriptor(name="primary", data_keys={
        "x": {"source": "s", "dtype": "number", "shape": []}})
    writer("start", bundle.start_doc)
    writer("descriptor", desc.descriptor_doc)
    for i in range(3):
        writer("event", desc.compose_event(data={"x": float(i)}, timestamps={"x": 0.0},
                                           seq_num=i + 1))
    uid = bundle.start_doc["uid"]
    journal = journal_of(catalog.root / JOURNAL_DIR, uid)
    assert journal is not None
    return uid, journal


@pytest.mark.parametrize("damage", [
    lambda b: b[:40] + bytes([b[40] ^ 0xFF]) + b[41:],
    lambda b: b.decode().encode("utf-16"),
], ids=["byte flipped", "UTF-16"])
def test_repair_refuses_a_damaged_journal_naming_it(
        catalog: Catalog, killed: tuple[str, Path], damage: Callable[[bytes], bytes],
        capsys: pytest.CaptureFixture[str]) -> None:
    uid, journal = killed
    good = journal.read_bytes()
    journal.write_bytes(damage(good))
    try:
        status = main(["repair", uid, "--data", str(catalog.root)])
        out, err = capsys.readouterr()
        assert (status, out) == (1, "")
        assert err.startswith(f"smeflow catalog: error: {journal}:1: not a spooled "
                              "document (not UTF-8"), err
        assert err.count("\n") == 1, err
        assert journal.read_bytes() == damage(good)  # kept for another try
    finally:
        journal.write_bytes(good)
