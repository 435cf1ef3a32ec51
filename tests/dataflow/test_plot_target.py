"""``smeflow catalog show RUN --plot PATH`` writes the picture to PATH itself, and a PATH
it cannot write is refused before anything is shown (new-user review N2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from event_model import compose_run

from dataflow.catalog import Catalog
from dataflow.cli import main as catalog_main
from dataflow.plot import plot_run


def scalar_run(folder: Path) -> str:
    """A catalog in ``folder`` with one run of three scalar events; its uid."""
    with Catalog(folder) as catalog:
        writer = catalog.writer()
        bundle = compose_run(metadata={"plan_name": "count", "scan_id": 1})
        writer("start", bundle.start_doc)
        desc = bundle.compose_descriptor(name="primary", data_keys={
            "x": {"source": "test", "dtype": "number", "shape": []}})
        writer("descriptor", desc.descriptor_doc)
        for i in range(3):
            writer("event", desc.compose_event(data={"x": float(i)}, timestamps={"x": 0.0}))
        writer("stop", bundle.compose_stop())
        return str(bundle.start_doc["uid"])


@pytest.fixture
def data(tmp_path: Path) -> Path:
    scalar_run(tmp_path / "data")
    return tmp_path / "data"


def test_a_path_without_suffix_is_written_as_png_under_that_very_name(
        data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "picture"
    assert catalog_main(["show", "1", "--data", str(data), "--plot", str(target)]) == 0
    assert f"picture: {target}\n" in capsys.readouterr().out
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # matplotlib added ".png" before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "picture"]
    with Catalog(data) as catalog:  # the Python call alike; a suffix chooses the format
        assert plot_run(catalog.run(1), tmp_path / "p") == tmp_path / "p"
        assert (tmp_path / "p").read_bytes()[:4] == b"\x89PNG"
        plot_run(catalog.run(1), tmp_path / "p.SVG")
        assert b"<svg" in (tmp_path / "p.SVG").read_bytes()[:400]


@pytest.mark.parametrize(("name", "message"), [
    ("p.v2", "--plot {T}: format 'v2' is not one matplotlib writes (png, "),
    ("none/p.png", "--plot {T}: folder {tmp}/none does not exist"),
    ("", "--plot {T}: is a folder; give a file name"),
])
def test_a_path_that_cannot_be_written_is_refused_before_the_run_is_shown(
        data: Path, tmp_path: Path, name: str, message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    target = str(tmp_path / name) if name else str(tmp_path)
    assert catalog_main(["show", "1", "--data", str(data), "--plot", target]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # the run's details used to be printed, then the error
    (line,) = err.strip().splitlines()
    assert message.format(T=target, tmp=tmp_path) in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    with Catalog(data) as catalog, pytest.raises(ValueError, match=r"format|folder"):
        plot_run(catalog.run(1), target)
