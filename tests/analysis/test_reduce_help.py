"""``smeflow reduce --help`` names every radial unit the reduction takes (it named three of
the eight: ``q_A^-1``, pyFAI's usual unit, ran but was not offered)."""

from __future__ import annotations

import pytest

from analysis.cli import main
from analysis.reduce_chunks import AzintParams
from geometry import RADIAL_UNITS


def test_the_help_names_the_units_the_reduction_takes(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for unit in RADIAL_UNITS:
        assert AzintParams(unit=unit).unit == unit  # taken
        assert unit in text, unit  # and offered
