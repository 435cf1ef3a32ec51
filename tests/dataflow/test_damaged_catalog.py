"""A catalog folder whose ``catalog.db`` was damaged — cut short by a full disk or a killed
copy, bytes flipped, a folder or a symlink loop in its place: one line naming the file
and what is wrong, exit status 1, and the damaged file left as it was for recovery.

Never a catalog that answers as if fewer runs (or none) were stored: an empty
``catalog.db`` used to be set up afresh as a new, empty catalog (``no runs match``, exit
0), and a cut one gave Tiled's initialization traceback.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from dataflow.catalog import Catalog
from dataflow.cli import main
from dataflow.errors import CatalogError
from dataflow.synthetic_run import write_frames_run


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed catalog folder with two runs."""
    folder = tmp_path_factory.mktemp("damaged") / "good"
    frames = np.zeros((2, 4, 32), np.uint16)
    with Catalog(folder) as catalog:
        for _ in range(2):
            write_frames_run(catalog, {"plan_name": "count"}, {"primary": frames},
                             source="test")
    assert not (folder / "catalog.db-wal").exists()  # closed: everything in catalog.db
    return folder


def _cut(size: int) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        os.truncate(db, size if size >= 0 else db.stat().st_size + size)
    return damage


def _flip(offset: int) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        data = bytearray(db.read_bytes())
        data[offset] ^= 0xFF
        db.write_bytes(bytes(data))
    return damage


def _flip_in(text: bytes, at: int, bits: int) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        data = bytearray(db.read_bytes())
        data[data.index(text) + at] ^= bits
        db.write_bytes(bytes(data))
    return damage


def _folder(db: Path) -> None:
    db.unlink()
    db.mkdir()


def _loop(db: Path) -> None:
    db.unlink()
    db.symlink_to(db)


DAMAGE = {
    "empty": (_cut(0), "is empty (0 bytes)"),
    "header only": (_cut(100), "is cut short: 100 bytes of the"),
    "first page": (_cut(4096), "is cut short: 4096 bytes of the"),
    "mid-record": (_cut(10_000), "is cut short: 10000 bytes of the"),
    "one page short": (_cut(-4096), "is cut short"),
    "one byte short": (_cut(-1), "is cut short"),
    "signature": (_flip(0), "is not an SQLite database"),
    "header field": (_flip(20), "is damaged (SQLite: database disk image is malformed)"),
    "schema text": (_flip_in(b"CREATE TABLE nodes", 2, 0x01),  # a rich traceback, 499 lines
                    'is damaged (SQLite: malformed database schema (nodes) - near "CRDATE"'),
    "a folder": (_folder, "is not a file"),
    "symlink loop": (_loop, "cannot be opened"),
}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "-"


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_catalog_database_is_one_error_naming_it(
        good: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    damage, message = DAMAGE[case]
    folder = tmp_path / "data"
    shutil.copytree(good, folder, symlinks=True)
    db = folder / "catalog.db"
    damage(db)
    before = _digest(db)
    status = main(["search", "--data", str(folder)])
    out, err = capsys.readouterr()
    assert (status, out) == (1, ""), (status, out, err)
    assert err.startswith(f"smeflow catalog: error: {db}: {message}"), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    with pytest.raises(CatalogError, match=re.escape(f"{db}: {message}")):
        Catalog(folder)
    assert _digest(db) == before  # left as it was: never set up afresh or rewritten
    wal = folder / "catalog.db-wal"  # (SQLite may leave an empty one)
    assert not wal.exists() or wal.stat().st_size == 0


@pytest.mark.parametrize("case", ["header only", "one page short", "signature", "a folder"])
def test_a_damaged_table_store_is_one_error_naming_it(
        good: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``tables.db`` (the event columns): a cut one gave SQLite's 'malformed' from deep
    inside a reduction ('internal error', several lines)."""
    damage, message = DAMAGE[case]
    folder = tmp_path / "data"
    shutil.copytree(good, folder)
    db = folder / "tables.db"
    if case == "header only":
        damage = _cut(100)
    damage(db)
    before = _digest(db)
    with pytest.raises(CatalogError, match=re.escape(f"{db}: {message}")):
        Catalog(folder)
    assert main(["search", "--data", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"smeflow catalog: error: {db}: {message}"), err
    assert _digest(db) == before


def test_the_good_catalog_lists_its_runs(good: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The damage above is the only difference (else the test above tests nothing)."""
    folder = tmp_path / "data"
    shutil.copytree(good, folder)
    assert main(["search", "--data", str(folder)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("2 runs")


def _root_text(text: str) -> Callable[[str], str]:
    return lambda _: text


ROOT_DAMAGE: dict[str, tuple[Callable[[str], str], str]] = {
    "empty": (_root_text(""), "is empty (0 bytes)"),
    "cut mid-path": (lambda t: t[:len(t) // 2], "is not JSON (Unterminated string"),
    "cut after a line": (lambda t: t[:t.index("\n", t.index('"root"')) + 1],
                         "is not JSON (Expecting"),
    "a byte not UTF-8": (lambda t: t.replace('"root"', '"r\udcffot"'), "is not UTF-8 text"),
    "a list": (_root_text('["/somewhere"]\n'), "holds a JSON list, not an object"),
    "a key edited": (lambda t: t.replace('"previous"', '"prevjous"'),
                     "'previous' is None, not a list of absolute paths"),
    "a relative root": (_root_text('{"root": "data", "previous": []}\n'),
                        "'root' is 'data', not an absolute path"),
}


@pytest.mark.parametrize("case", list(ROOT_DAMAGE))
def test_a_damaged_root_file_is_one_error_naming_it(
        good: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``catalog-root.json`` (where the folder was before, for ``verify``): a damaged one
    was rebuilt silently when the folder was opened, with the present place only, or
    after a move with the last place only — every earlier location lost, exit 0."""
    from dataflow.relocate import ROOT_FILE
    from dataflow.server import ServerConfigError, catalog_adapter

    damage, message = ROOT_DAMAGE[case]
    folder = tmp_path / "moved" / "data"  # (moved: opening it would rebase its assets)
    shutil.copytree(good, folder)
    root_file = folder / ROOT_FILE
    text = damage(root_file.read_text(encoding="utf-8"))
    root_file.write_bytes(text.encode("utf-8", "surrogateescape"))
    before = {p.name: _digest(p) for p in folder.iterdir()}
    status = main(["search", "--data", str(folder)])
    out, err = capsys.readouterr()
    assert (status, out) == (1, ""), (status, out, err)
    assert err.startswith(f"smeflow catalog: error: {root_file}: {message}"), err
    assert "it is not rebuilt" in err and err.count("\n") == 1, err
    with pytest.raises(CatalogError, match=re.escape(f"{root_file}: {message}")):
        Catalog(folder)
    with pytest.raises(ServerConfigError, match=f"^{re.escape(f'{root_file}: {message}')}"):
        catalog_adapter(folder, f"sqlite:///{folder / 'catalog.db'}", [])
    assert {p.name: _digest(p) for p in folder.iterdir()
            if p.name not in ("catalog.db-wal", "catalog.db-shm")} == before


def test_a_moved_catalog_keeps_every_earlier_root(good: Path, tmp_path: Path) -> None:
    """The good file, moved twice: both earlier places are kept (what the damage above
    would lose)."""
    import json

    from dataflow.relocate import ROOT_FILE, previous_roots

    first, second = tmp_path / "a" / "data", tmp_path / "b" / "data"
    shutil.copytree(good, first)
    Catalog(first).close()
    second.parent.mkdir()
    shutil.move(first, second)
    Catalog(second).close()
    assert previous_roots(second) == [first.resolve(), good.resolve()]
    assert json.loads((second / ROOT_FILE).read_text())["root"] == str(second.resolve())


def _index_page_header(db: Path) -> int:
    """The cell count of an index no search reads (Tiled's webhooks) changed: SQLite
    answers every query until one meets the page."""
    with closing(sqlite3.connect(db)) as con:
        (root,) = con.execute("SELECT rootpage FROM sqlite_master "
                              "WHERE name = 'ix_webhooks_node_id'").fetchone()
        (page_size,) = con.execute("PRAGMA page_size").fetchone()
    data = bytearray(db.read_bytes())
    data[(root - 1) * page_size + 3] ^= 0x7F
    db.write_bytes(bytes(data))
    return int(root)


def test_a_damaged_page_no_search_meets_is_found_by_verify(
        good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Opening a catalog checks its databases' headers only (SQLite's quick_check reads
    every page: 78 ms for 10^4 runs, 0.8-1.9 s for 10^5); ``catalog verify`` runs it,
    and before it passed such a catalog."""
    folder = tmp_path / "data"
    shutil.copytree(good, folder)
    db = folder / "catalog.db"
    page = _index_page_header(db)
    assert main(["search", "--data", str(folder)]) == 0  # what the open does not see
    assert capsys.readouterr().out.rstrip().endswith("2 runs")
    before = _digest(db)  # (after the open that rebased the copy's assets)
    status = main(["verify", "1", "--data", str(folder)])
    out, err = capsys.readouterr()
    assert (status, out) == (1, ""), (status, out, err)
    assert err == (f"smeflow catalog: error: {db}: is damaged (SQLite's quick_check: *** in "
                   f"database main *** Page {page}: btreeInitPage() returns error code 11); left "
                   "as it is: restore it from a backup (the runs it lists are not found "
                   "without it)\n")
    assert _digest(db) == before


RECORD_DAMAGE = {  # one byte of the second run's start document, inside its 'metadata'
    "not UTF-8": (2, 0x80, "is not UTF-8 text (byte 0xec at {plan})"),  # 'l' ^ 0x80
    "not JSON": (0, 0x01, "is not JSON (Expecting property name enclosed in double quotes: "
                          "line 1 column {column} (char {char}))"),  # '"' -> '#'
}


@pytest.mark.parametrize("case", list(RECORD_DAMAGE))
def test_a_damaged_record_is_one_error_naming_the_file_and_the_run(
        good: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A byte flipped inside a run's metadata (SQLite keeps no checksums: the pages pass
    quick_check) gave 'internal error: OperationalError: ... Could not decode to UTF-8
    column 'metadata' ...' (or a bare JSON decoding error) naming no file."""
    at, bits, message = RECORD_DAMAGE[case]
    folder = tmp_path / "data"
    shutil.copytree(good, folder)
    db = folder / "catalog.db"
    with closing(sqlite3.connect(db)) as con:
        (uid,) = con.execute("SELECT key FROM nodes WHERE parent = (SELECT id FROM nodes "
                             "WHERE key = 'raw' AND parent = 0) ORDER BY id DESC").fetchone()
    _flip_in(b'"plan_name":"count"},"stop":{', at, bits)(db)
    with closing(sqlite3.connect(db)) as con:  # (the flip is in that run's record)
        con.text_factory = bytes
        (blob,) = con.execute("SELECT metadata FROM nodes WHERE key = ?", (uid,)).fetchone()
    assert blob.startswith(b'{"start":{"uid":"%s"' % uid.encode())
    char = blob.index(b'an_name"') - 3  # where '"plan_name"' begins
    message = message.format(plan=char + 2, column=char + 1, char=char)
    expected = f"{db}: is damaged: the metadata of raw/{uid} {message}"
    before: str | None = None
    for command in (["search"], ["show", uid[:8]]):
        status = main([*command, "--data", str(folder)])
        out, err = capsys.readouterr()
        assert (status, out) == (1, ""), (command, status, out, err)
        assert err.startswith(f"smeflow catalog: error: {expected}; left as it is"), err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        before = before or _digest(db)  # (after the first open rebased the copy's assets)
    with Catalog(folder) as catalog:
        for call in (catalog.runs, lambda: catalog.run(uid[:8]),
                     lambda: catalog.client[uid]):
            with pytest.raises(CatalogError, match=f"^{re.escape(expected)}"):
                call()
    assert _digest(db) == before


def test_verify_of_any_run_finds_a_record_a_search_misses(
        good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A byte flipped inside the searched key of the second run ('plan_name' -> 'p\\xecan_name',
    not UTF-8) makes a search for plan_name miss that run without an error: SQLite's JSON
    functions read the record, the key no longer matches (docs/catalog.md says why the
    search does not check). ``catalog verify`` of the first run passed such a catalog
    (quick_check sees pages, not values); it now reads every run's record and names it."""
    folder = tmp_path / "data"
    shutil.copytree(good, folder)
    db = folder / "catalog.db"
    with closing(sqlite3.connect(db)) as con:
        first, second = [key for (key,) in con.execute(
            "SELECT key FROM nodes WHERE parent = (SELECT id FROM nodes WHERE key = 'raw' "
            "AND parent = 0) ORDER BY id")]
    _flip_in(b'"plan_name":"count"},"stop":{', 2, 0x80)(db)
    with Catalog(folder) as catalog:  # the short answer the docs describe
        assert list(catalog.search(plan_name="count")) == [first]
    before = _digest(db)
    status = main(["verify", first[:8], "--data", str(folder)])
    out, err = capsys.readouterr()
    assert (status, out) == (1, ""), (status, out, err)
    assert err.startswith(f"smeflow catalog: error: {db}: is damaged: the metadata of "
                          f"raw/{second} is not UTF-8 text (byte 0xec at "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert _digest(db) == before
