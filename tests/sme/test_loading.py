"""CSV stimulus (``sme.loading.read_csv_stimulus``): a trace written by
``smeflow sim --csv`` replays its inputs tick for tick (its first row is the reset
state, ``sme.trace``), and a stimulus of input columns only starts at tick 0.

Review U11: the trace's reset row was taken as the stimulus of tick 0, so every input
arrived one tick late and the replay's outputs differed from the recording's."""

from __future__ import annotations

from pathlib import Path

import pytest

from sme import Simulator
from sme.cli import main
from sme.loading import CliError, load_network, load_stimulus, read_csv_stimulus

EXAMPLES = ["sme.examples.counter", "sme.examples.features", "sme.examples.colorbin",
            "sme.examples.fifo"]


def test_replaying_a_recorded_trace_gives_the_same_trace(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """The review's reproduction, through the CLI."""
    monkeypatch.chdir(tmp_path)
    assert main(["sim", "sme.examples.counter:build", "--stimulus",
                 "sme.examples.counter:stimulus", "--csv", "first.csv", "-q"]) == 0
    assert main(["sim", "sme.examples.counter:build", "--stimulus", "first.csv",
                 "--csv", "again.csv", "-q"]) == 0
    first = Path("first.csv").read_text().splitlines()
    again = Path("again.csv").read_text().splitlines()
    assert again == first, f"{len(first)} rows recorded, {len(again)} replayed"


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_examples_trace_replays_to_itself(tmp_path: Path, example: str) -> None:
    """Bools, signed and unsigned numbers, enums, arrays, registered outputs: the
    replayed trace equals the recorded one, row for row."""
    network = load_network(f"{example}:build")
    sim = Simulator(network)
    stimulus = load_stimulus(f"{example}:stimulus", 200, network)
    assert stimulus is not None
    sim.run(stimulus=list(stimulus))
    sim.trace.write_csv(tmp_path / "first.csv")
    again = Simulator(load_network(f"{example}:build"))
    again.run(stimulus=read_csv_stimulus(tmp_path / "first.csv", again.network))
    assert again.trace.ticks == sim.trace.ticks
    assert again.trace == sim.trace, again.trace.first_difference(sim.trace)


def test_a_stimulus_of_input_columns_starts_at_tick_0(tmp_path: Path) -> None:
    network = load_network("sme.examples.counter:build")
    path = tmp_path / "inputs.csv"
    path.write_text("counter_control.valid,counter_control.reset\n1,0\n1,0\n0,1\n")
    rows = read_csv_stimulus(path, network)
    assert [r["counter_control.valid"] for r in rows] == [True, True, False]


def test_a_stimulus_saved_by_excel_reads_as_the_same_rows(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts the file with a byte order mark and ends lines with
    CRLF (what Python's csv module writes with ``encoding="utf-8-sig"``, the encoding
    its documentation gives for Excel): the same rows as the plain file. The mark was
    read as part of the first column's name: "no bus '\\ufeffcounter_control'"."""
    import csv

    network = load_network("sme.examples.counter:build")
    rows = [["counter_control.valid", "counter_control.reset"], ["1", "0"], ["0", "1"]]
    plain, excel = tmp_path / "plain.csv", tmp_path / "excel.csv"
    plain.write_text("".join(",".join(r) + "\n" for r in rows))
    with excel.open("w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f, dialect="excel").writerows(rows)
    assert excel.read_bytes().startswith(b"\xef\xbb\xbfcounter_control.valid,")
    assert b"\r\n" in excel.read_bytes()
    assert read_csv_stimulus(excel, network) == read_csv_stimulus(plain, network)


def test_a_whole_trace_header_over_a_row_that_is_no_reset_state_is_refused(
        tmp_path: Path) -> None:
    """A file with every signal's column reads as a trace: a first row whose inputs
    are not their initial values is an error naming the line and column, never a
    stimulus shifted by one tick."""
    network = load_network("sme.examples.counter:build")
    path = tmp_path / "not_a_trace.csv"
    path.write_text("counter_control.valid,counter_control.reset,counter_data.value\n"
                    "1,0,0\n1,0,1\n")
    with pytest.raises(CliError, match=r"not_a_trace\.csv:2: column counter_control\.valid "
                                       r"is '1', not its initial value '0'"):
        read_csv_stimulus(path, network)
