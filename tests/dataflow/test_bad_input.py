"""``smeflow catalog`` with bad input: one line on stderr naming the bad argument, a
non-zero exit status, nothing on stdout and nothing written.

Decisions: a key no run has is a correct empty answer (exit 0; see test_catalog_cli.py);
a key that cannot be a Tiled key path (an empty name: ``.x``, ``a..b``, ``x.``; control
characters) is a usage error. Inner spaces are allowed, since metadata keys such as
``sample name`` have them and Tiled matches them. Values must be something Tiled can
compare: numbers within 64 bits, finite floats, true/false or text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bluesky import RunEngine
from bluesky.plans import count
from ophyd.sim import det

from dataflow.catalog import Catalog
from dataflow.cli import main


@pytest.fixture(scope="module")
def data(catalog: Catalog) -> str:
    RE = RunEngine()
    catalog.subscribe(RE)
    RE(count([det], 1), **{"sample name": "Si wafer"})
    return str(catalog.root)


def listing(folder: str) -> set[tuple[str, int]]:
    """Files and sizes, leaving out SQLite's databases and their journals (opening the
    catalog to answer may touch those)."""
    return {(str(p), p.stat().st_size) for p in Path(folder).rglob("*")
            if p.is_file() and not p.name.endswith((".db", "-wal", "-shm", "-journal"))}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(("argv", "status", "message"), [
    (["show", "0"], 1, "scan number 0: must be >= 1"),
    (["show", "1" * 40], 1, "scan number 11111111111111111111...: too large"),
    (["show", "1" * 30], 1, "no run with scan number 111111111111111111111111111111 nor a uid "
                            "starting with '111111111111111111111111111111'"),
    (["show", "٣"], 1, "run '٣': not a uid"),
    (["search", "=x"], 2, "'=x': expected KEY=VALUE"),
    (["search", ".plan_name=count"], 2, "'.plan_name=count': key '.plan_name' is not a key "
                                        "path"),
    (["search", "start..plan_name=count"], 2, "key 'start..plan_name' is not a key path"),
    (["search", "plan_name.=count"], 2, "key 'plan_name.' is not a key path"),
    (["search", "plan\tname=count"], 2, "is not a key path"),
    (["search", "plan_name=null"], 2, "only numbers, text and true/false can be matched"),
    (["search", "plan_name=[1, 2]"], 2, "only numbers, text and true/false can be matched"),
    (["search", "scan_id=NaN"], 2, "'NaN' is not a finite number"),
    (["search", "scan_id=1e999"], 2, "'1e999' is not a finite number"),
    (["search", f"scan_id={2**64}"], 2, f"'{2**64}' does not fit a 64-bit integer"),
    (["search", "sample=\udcff"], 2, "has control characters or bytes that are not UTF-8"),
    (["search", "x=" + "[" * 5000], 2, "value nested too deeply"),
    (["search", "--since", "yesterday-ish"], 2, "--since 'yesterday-ish': not a date"),
    (["search", "--since", "nan"], 2, "--since 'nan': not a time this machine can convert"),
    (["search", "--until", "0001-01-01"], 2, "--until '0001-01-01': not a time"),
    (["search", "--since", "2030-01-01", "--until", "2020-01-01"], 2,
     "--since '2030-01-01' is after --until '2020-01-01'"),
    (["search", "--text", '"'], 2, "--text '\"': no words to search for"),
    (["search", "--text", "*:^-"], 2, "--text '*:^-': no words to search for"),
    (["search", "--text", ""], 2, "--text '': no words to search for"),
])
def test_bad_arguments_are_one_line(data: str, argv: list[str], status: int, message: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    before = listing(data)
    got, out, err = run_cli(capsys, *argv, "--data", data)
    assert (got, out) == (status, "")
    assert err.startswith("smeflow catalog: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert listing(data) == before


def test_keys_with_inner_spaces_are_metadata_keys(data: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(capsys, "search", 'sample name="Si wafer"', "--data", data)
    assert status == 0 and err == "" and out.strip().endswith("1 run")


@pytest.mark.parametrize("text", ['"', "AND", "OR", "NOT", "NEAR(Si wafer)", "wafer*", 'Si"wafer',
                                  "col:wafer", "^Si", "Si + wafer", "'); DROP TABLE nodes; --"])
def test_any_text_is_searched_as_plain_words(data: str, text: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Full-text syntax (quotes, operators, prefixes, columns) is not interpreted: the
    words are searched, all of them; punctuation only separates words."""
    status, out, err = run_cli(capsys, "search", "--text", text, "--data", data)
    if status == 2:  # no word at all
        assert not any(c.isalnum() for c in text) and "no words to search for" in err
        return
    assert (status, err) == (0, ""), err
    words = {w.lower() for w in "".join(c if c.isalnum() else " " for c in text).split()}
    expected = "1 run" if words <= {"si", "wafer"} else "no runs match"
    assert expected in out, out


def test_data_pointing_at_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("not a catalog")
    for argv in (["search"], ["show", "1"]):
        status, out, err = run_cli(capsys, *argv, "--data", str(file))
        assert (status, out) == (1, "")
        assert err == f"smeflow catalog: error: no catalog in {file} (give --data DIR or " \
                      "set SMEFLOW_DATA; a catalog is created by the first run written)\n"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert file.read_text() == "not a catalog"


def test_run_references_through_the_api(catalog: Catalog, data: str) -> None:
    from dataflow.catalog import MalformedUidError

    with pytest.raises(MalformedUidError, match=r"^scan number \(more than 64 bits\): too"):
        catalog.run(10**30)
    with pytest.raises(MalformedUidError, match=r"^scan number -3: must be >= 1"):
        catalog.run(-3)
    run: Any = catalog.run(1)
    assert run.metadata["start"]["sample name"] == "Si wafer"
