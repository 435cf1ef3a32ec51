"""A CSV stimulus cut short — a killed copy, a full disk — reads as the rows it kept
whole, or fails naming file and line: a row cut inside its last cells (``0,1`` cut to
``0,``: an empty cell leaves the signal as it was) used to drive other inputs than the
file's without a word."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sme import Simulator
from sme.cli import main
from sme.loading import CliError, load_network, load_stimulus, read_csv_stimulus


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[dict[str, Any]]]:
    """A trace of the features example (signed, unsigned, enums, arrays) as
    ``smeflow sim --csv`` writes it, and the stimulus read from it whole."""
    network = load_network("sme.examples.features:build")
    sim = Simulator(network)
    stimulus = load_stimulus("sme.examples.features:stimulus", 6, network)
    assert stimulus is not None
    sim.run(stimulus=list(stimulus))
    path = tmp_path_factory.mktemp("stimulus") / "trace.csv"
    sim.trace.write_csv(path)
    return path.read_bytes(), read_csv_stimulus(path, network)


def test_a_cut_file_reads_whole_rows_or_fails_naming_it(
        recorded: tuple[bytes, list[dict[str, Any]]], tmp_path: Path) -> None:
    data, whole = recorded
    assert data.endswith(b"\n") and len(whole) == 6
    network = load_network("sme.examples.features:build")
    path = tmp_path / "cut.csv"
    row_ends = [i + 1 for i, b in enumerate(data) if b == ord("\n")]
    for size in range(row_ends[1], len(data)):  # past the header and the reset row
        path.write_bytes(data[:size])
        try:
            rows = read_csv_stimulus(path, network)
        except CliError as exc:
            assert str(exc).startswith(f"--stimulus {path}:"), exc
            continue
        assert size in row_ends, (size, data[:size][-40:])
        assert rows == whole[:row_ends.index(size) - 1]


def test_the_cli_refuses_a_row_cut_inside_its_cells(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "stim.csv"
    path.write_bytes(b"counter_control.valid,counter_control.reset\n1,0\n1,0\n0,")
    assert main(["sim", "sme.examples.counter:build", "--stimulus", str(path), "-q"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"smeflow sim: error: --stimulus {path}:4: the last row does not end "
                   "with a line break: the file may be cut short inside it (add the line "
                   "break if the row is whole)\n"), err
