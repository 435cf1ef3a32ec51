"""pyFAI's own notebook helpers, ``pyFAI.gui.jupyter.plot1d``/``plot2d``, draw smeflow's
results as pyFAI's documentation calls them (``jupyter.plot1d(res)``): they read the
result's ``unit.label``. Before, ``result.unit`` was a bare str and both raised
``AttributeError: 'str' object has no attribute 'label'``."""

from __future__ import annotations

import logging

import matplotlib
import pytest

from analysis.azint import AzimuthalIntegrator
from tests.analysis.test_pyfai_parity import FRAME, TILTED

matplotlib.use("Agg")
pytest.importorskip("pyFAI")
logging.getLogger("pyFAI").setLevel(logging.ERROR)

UNITS = ["2th_deg", "2th_rad", "q_nm^-1", "q_A^-1", "r_mm", "r_m", "d*2_A^-2", "d*2_nm^-2"]


@pytest.mark.parametrize("unit", UNITS)
def test_pyfai_plot1d_draws_a_pattern_with_its_unit(unit: str) -> None:
    from pyFAI.gui import jupyter

    res = AzimuthalIntegrator(TILTED).integrate1d(FRAME, 50, unit=unit, error_model="poisson")
    assert res.unit == unit and res.unit.name == unit and str(res.unit) == unit
    ax = jupyter.plot1d(res)
    assert ax.get_xlabel() == res.unit.label
    assert res.unit.label.endswith(_suffix(unit))


@pytest.mark.parametrize("azimuthal", ["chi_deg", "chi_rad"])
def test_pyfai_plot2d_draws_a_cake_with_both_units(azimuthal: str) -> None:
    from pyFAI.gui import jupyter

    cake = AzimuthalIntegrator(TILTED).integrate2d(FRAME, 40, 18,
                                                   unit=("2th_deg", azimuthal))
    assert cake.unit == ("2th_deg", azimuthal)
    ax = jupyter.plot2d(cake)
    assert (ax.get_xlabel(), ax.get_ylabel()) == (cake.unit[0].label, cake.unit[1].label)
    assert cake.azimuthal_unit.label.endswith(_suffix(azimuthal))


def test_a_calibrants_peaks_are_drawn_where_pyfai_puts_them() -> None:
    from pyFAI import calibrant
    from pyFAI.gui import jupyter

    ceo2 = calibrant.get_calibrant("CeO2")
    ceo2.wavelength = TILTED.wavelength
    res = AzimuthalIntegrator(TILTED).integrate1d(FRAME, 50, unit="2th_deg")
    ax = jupyter.plot1d(res, calibrant=ceo2)
    drawn = [line.get_xdata()[0] for line in ax.get_lines()[1:]]
    assert drawn and drawn == pytest.approx(list(ceo2.get_peaks("2th_deg")))


def _suffix(unit: str) -> str:
    return {"2th_deg": "(°)", "chi_deg": "(°)", "2th_rad": "(rad)", "chi_rad": "(rad)",
            "q_nm^-1": "(nm⁻¹)", "q_A^-1": "(Å⁻¹)", "r_mm": "(mm)", "r_m": "(m)",
            "d*2_A^-2": "(Å⁻²)", "d*2_nm^-2": "(nm⁻²)"}[unit]


def test_results_copy_and_pickle_with_their_units() -> None:
    """A result (its unit a ``str`` that has pyFAI's ``label``) survives ``copy``,
    ``deepcopy`` and pickle, as pyFAI's results do (review of 0c65d2f: its unit could not
    be rebuilt from its text alone)."""
    import copy
    import pickle

    import numpy as np

    ai = AzimuthalIntegrator(TILTED)
    result = ai.integrate1d(FRAME, 50, unit="q_nm^-1")
    cake = ai.integrate2d(FRAME, 30, 12, unit=("2th_deg", "chi_deg"))
    for again in (copy.copy(result), copy.deepcopy(result),
                  pickle.loads(pickle.dumps(result))):
        assert again.unit == "q_nm^-1" and again.unit.label == result.unit.label
        assert again.unit.scale == result.unit.scale
        np.testing.assert_array_equal(again.intensity, result.intensity)
    back = pickle.loads(pickle.dumps(cake))
    assert back.unit == cake.unit and back.unit[1].label == cake.unit[1].label
