"""The acquisition benchmark's command line (``benchmarks/acquisition.py``): ``--only``
picks the parts to measure, so the fly figures can be taken without the step scan, the
ophyd.sim peer and the HDF5 layout; a part it does not know is refused, naming the parts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from acquisition import SECTIONS, parser


def test_only_picks_the_parts_to_measure() -> None:
    assert parser().parse_args([]).only == SECTIONS == ("fly", "breakdown", "peer", "step",
                                                        "h5")
    assert parser().parse_args(["--only", "fly"]).only == ("fly",)
    assert parser().parse_args(["--only", "fly, breakdown"]).only == ("fly", "breakdown")


@pytest.mark.parametrize("value", ["flyy", "fly,", "fly,steps"])
def test_an_unknown_part_is_refused_naming_the_parts(value: str,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["--only", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--only" in err and "choose from fly, breakdown, peer, step, h5" in err
    assert "Traceback" not in err
