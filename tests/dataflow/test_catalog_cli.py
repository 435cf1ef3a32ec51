"""``smeflow catalog search`` / ``show``: output, empty results and one-line errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from bluesky import RunEngine
from bluesky.plans import count, scan
from ophyd.sim import det, motor

from dataflow.catalog import Catalog
from dataflow.cli import main, parse_criteria
from sme.cli import main as smeflow_main


@pytest.fixture(scope="module")
def runs(catalog: Catalog, frame_cam: Any) -> dict[str, Any]:
    """Two runs in the module's catalog: a count with frames and a scan."""
    RE = RunEngine()
    catalog.subscribe(RE)
    cam = frame_cam(name="cam", folder=catalog.raw_dir)
    (count_uid,) = RE(count([cam, det], 3), sample="CeO2 standard")
    (scan_uid,) = RE(scan([det], motor, 0, 1, 4), sample="Si wafer")
    return {"count": count_uid, "scan": scan_uid, "data": str(catalog.root)}


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_search_prints_a_table(runs: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(capsys, "search", "plan_name=count", "--data", runs["data"])
    assert status == 0 and err == ""
    header, rule, row, total = out.strip().splitlines()
    assert header.split() == ["scan_id", "uid", "plan_name", "time", "exit_status",
                              "num_points"]
    assert set(rule) <= {"-", " "}
    assert row.split()[:3] == ["1", runs["count"][:8], "count"]
    assert row.split()[-2:] == ["success", "3"]
    assert total == "1 run"


def test_search_values_are_json_and_all_criteria_must_match(
        runs: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "search", "scan_id=2", "--data", runs["data"])
    assert status == 0 and runs["scan"][:8] in out and runs["count"][:8] not in out
    status, out, _ = cli(capsys, "search", "--data", runs["data"])
    assert status == 0 and out.strip().endswith("2 runs")
    status, out, _ = cli(capsys, "search", "plan_name=scan", 'sample="Si wafer"',
                         "--data", runs["data"])
    assert status == 0 and out.strip().endswith("1 run")
    assert parse_criteria(["scan_id=3", "ok=true", "s=Si", 't="3"', "x=a=b"]) == {
        "scan_id": 3, "ok": True, "s": "Si", "t": "3", "x": "a=b"}


def uids_in(out: str) -> set[str]:
    """The uid column (8 characters) of a search's table."""
    return {line.split()[1] for line in out.strip().splitlines()[2:-1]}


def test_search_list_membership_in_and_contains(
        runs: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    count8, scan8, data = runs["count"][:8], runs["scan"][:8], runs["data"]
    # KEY=VALUE: equal, or a list holding the value (detectors: ["cam", "det"] / ["det"])
    _, out, _ = cli(capsys, "search", "detectors=det", "--data", data)
    assert uids_in(out) == {count8, scan8}
    _, out, _ = cli(capsys, "search", "detectors=cam", "--data", data)
    assert uids_in(out) == {count8}
    _, out, _ = cli(capsys, "search", "motors=motor", "plan_name=scan", "--data", data)
    assert uids_in(out) == {scan8}
    # --in: one of the values, as a comma list or a JSON list; repeatable
    _, out, _ = cli(capsys, "search", "--in", "plan_name=scan,count", "--data", data)
    assert uids_in(out) == {count8, scan8}
    _, out, _ = cli(capsys, "search", "--in", "scan_id=[2, 7]", "--data", data)
    assert uids_in(out) == {scan8}
    _, out, _ = cli(capsys, "search", "--in", "plan_name=scan,count", "--in",
                    'sample=CeO2 standard,"Ti foil"', "--data", data)
    assert uids_in(out) == {count8}
    # --contains: only lists holding the value
    _, out, _ = cli(capsys, "search", "--contains", "detectors=cam", "--data", data)
    assert uids_in(out) == {count8}
    status, out, _ = cli(capsys, "search", "--contains", "motors=det", "--data", data)
    assert status == 0 and out.startswith("no runs match --contains motors=det")
    # bad items: one line, status 2
    for argv, message in [(["--in", "plan_name="], "--in 'plan_name=': no values"),
                          (["--in", "scan_id=[1,"], "is not a JSON list"),
                          (["--contains", "motors"], "--contains 'motors': expected KEY=VALUE")]:
        status, out, err = cli(capsys, "search", *argv, "--data", data)
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_search_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    out = capsys.readouterr().out
    assert "motors=sample_x" in out and "--in plan_name=scan,count" in out
    assert "--contains detectors=det" in out


def test_search_by_time_and_text(runs: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    today = time.strftime("%Y-%m-%d")
    status, out, _ = cli(capsys, "search", "--since", "2000-01-01", "--text", "CeO2",
                         "--data", runs["data"])
    assert status == 0 and runs["count"][:8] in out and out.strip().endswith("1 run")
    status, out, _ = cli(capsys, "search", "--until", "2000-01-01 12:00", "--data",
                         runs["data"])
    assert status == 0 and out.startswith("no runs match --until '2000-01-01 12:00'")
    status, out, _ = cli(capsys, "search", "--since", today, "--data", runs["data"])
    assert status == 0 and "2 runs" in out


def test_search_matching_nothing_says_so(runs: dict[str, Any],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(capsys, "search", "no_such_key=1", "--data", runs["data"])
    assert (status, err) == (0, "")
    assert out == "no runs match no_such_key=1\n"


def test_show_lists_metadata_streams_and_shapes(runs: dict[str, Any],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(capsys, "show", "1", "--data", runs["data"])
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"run {runs['count']}  scan_id 1  plan count"
    assert "exit_status  success" in lines
    assert '  sample: "CeO2 standard"' in lines
    assert "  primary (3 events)" in lines
    image = next(line for line in lines if "cam_image" in line)
    assert "shape (3, 40, 24)" in image and "dtype <u2" in image and "external" in image
    assert any("det " in line and "shape (3,)" in line for line in lines)
    status, out2, _ = cli(capsys, "show", runs["count"][:6], "--data", runs["data"])
    assert status == 0 and out2 == out


@pytest.mark.parametrize(("argv", "message"), [
    (["show", "not-a-uid!"], "run 'not-a-uid!': not a uid"),
    (["show", "42"], "no run with scan number 42"),
    (["show", "abcdef12"], "no run whose uid starts with 'abcdef12'"),
])
def test_errors_are_one_line_with_status_1(runs: dict[str, Any], argv: list[str], message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(capsys, *argv, "--data", runs["data"])
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("smeflow catalog: error: ") and message in err


@pytest.mark.parametrize(("argv", "message"), [
    (["search", "--since", "yesterday"], "--since 'yesterday': not a date"),
    (["search", "--until", "tomorrow 9:00"], "--until 'tomorrow 9:00': not a date"),
    (["search", "--since", "2030-01-01", "--until", "2020-01-01"],
     "--since '2030-01-01' is after --until '2020-01-01'"),
])
def test_bad_dates_are_usage_errors(runs: dict[str, Any], argv: list[str], message: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(capsys, *argv, "--data", runs["data"])
    assert (status, out) == (2, "")
    assert err.startswith("smeflow catalog: error: ") and err.count("\n") == 1
    assert message in err, err


def test_search_text_is_words_not_query_syntax(runs: dict[str, Any],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(capsys, "search", "--text", '"CeO2', "--data", runs["data"])
    assert (status, err) == (0, "") and out.strip().endswith("1 run")
    assert runs["count"][:8] in out
    status, out, err = cli(capsys, "search", "--text", "standard, ceo2!", "--data",
                           runs["data"])
    assert (status, err) == (0, "") and out.strip().endswith("1 run")
    # an operator is a word like any other: no run mentions "or"
    status, out, err = cli(capsys, "search", "--text", "CeO2 OR wafer", "--data", runs["data"])
    assert (status, err) == (0, "") and out == "no runs match --text 'CeO2 OR wafer'\n"


def test_malformed_criterion_is_a_usage_error(runs: dict[str, Any],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(capsys, "search", "plan_name", "--data", runs["data"])
    assert status == 2 and out == ""
    assert err == "smeflow catalog: error: 'plan_name': expected KEY=VALUE, e.g. plan_name=count\n"


def test_missing_catalog_is_reported_not_created(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = cli(capsys, "search", "--data", str(tmp_path / "nothing"))
    assert status == 1 and "no catalog in" in err and "nothing" in err
    assert not (tmp_path / "nothing").exists()


def test_smeflow_command_uses_smeflow_data(runs: dict[str, Any], tmp_path: Path) -> None:
    exe = shutil.which("smeflow", path=str(Path(sys.executable).parent))
    assert exe, "the smeflow console script is not installed in this environment"
    env = {**os.environ, "SMEFLOW_DATA": runs["data"]}
    done = subprocess.run([exe, "catalog", "search", "plan_name=scan"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert runs["scan"][:8] in done.stdout and done.stdout.strip().endswith("1 run")
    assert done.stderr == ""


def test_errors_through_the_smeflow_entry_point(runs: dict[str, Any],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    status = smeflow_main(["catalog", "show", "zz", "--data", runs["data"]])
    _, err = capsys.readouterr()
    assert status == 1 and "Traceback" not in err
    assert err == ("smeflow catalog: error: run 'zz': not a uid (hex digits and dashes, at "
                   "least 5 characters, e.g. 3f2a9c1e) nor a scan number\n")
