"""Named detectors against pyFAI's own definitions: shape, pixel size, gap mask, dummy."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from geometry import Detector, DetectorError, detector, detector_names

pyFAI = pytest.importorskip("pyFAI")
import pyFAI.detectors as pyfai_detectors  # noqa: E402

logging.getLogger("pyFAI").setLevel(logging.ERROR)

FAMILIES = ("Pilatus", "Eiger", "Perkin", "Rayonix")


def test_every_named_detector_matches_pyfai() -> None:
    names = detector_names()
    assert len(names) >= 50
    for name in names:
        ours = detector(name)
        theirs = pyfai_detectors.detector_factory(name)
        assert ours.name == type(theirs).__name__ == name
        assert ours.shape == tuple(theirs.shape), name
        assert (ours.pixel1, ours.pixel2) == (theirs.pixel1, theirs.pixel2), name
        their_mask = theirs.mask
        expected = (np.zeros(theirs.shape, bool) if their_mask is None
                    else their_mask.astype(bool))
        assert np.array_equal(ours.mask, expected), name
        assert (ours.dummy, ours.delta_dummy) == (theirs.dummy, theirs.delta_dummy), name
        for alias in type(theirs).aliases:
            assert detector(alias).name == name, alias


def test_the_table_covers_pyfai_families() -> None:
    """Every pyFAI Pilatus, Eiger, Perkin-Elmer and Rayonix model with a fixed size."""
    ours = set(detector_names())
    for key, cls in pyfai_detectors.ALL_DETECTORS.items():
        if (cls.__name__.lower() == key and cls.__name__.startswith(FAMILIES)
                and getattr(cls, "MAX_SHAPE", None)):
            assert cls.__name__ in ours


def test_module_gaps_of_a_pilatus_1m_by_hand() -> None:
    det = detector("Pilatus 1M")
    assert det.shape == (5 * 195 + 4 * 17, 2 * 487 + 7)
    assert det.mask[195:212].all() and not det.mask[194, :487].any()
    assert det.mask[:, 487:494].all() and not det.mask[:195, 486].any()
    assert int(det.mask.sum()) == 4 * 17 * 981 + 7 * 1043 - 4 * 17 * 7
    with pytest.raises(ValueError, match="read-only"):
        det.mask[0, 0] = True


@pytest.mark.parametrize(("name", "pixel", "shape"), [
    ("Perkin", 200e-6, (2048, 2048)), ("Perkin", 100e-6, (4096, 4096)),
    ("RayonixMx225", 36.621e-6, (6144, 6144)), ("RayonixMx225", 146.484e-6, (1536, 1536)),
])
def test_pixel_size_selects_the_binning(name: str, pixel: float, shape: tuple[int, int]
                                        ) -> None:
    ours = detector(name, pixel, pixel)
    theirs = pyfai_detectors.detector_factory(name, {"pixel1": pixel, "pixel2": pixel})
    assert ours.shape == shape == tuple(theirs.shape)


def test_names_are_matched_loosely_and_unknown_ones_explained() -> None:
    assert detector("eiger2_4m").name == detector("Eiger2 4M").name == "Eiger2_4M"
    assert detector("PILATUS6M").shape == (2527, 2463)
    with pytest.raises(DetectorError, match=r"unknown detector 'Pilatus 7M'; did you mean"):
        detector("Pilatus 7M")
    with pytest.raises(DetectorError, match=r"pixel size 5e-05 m is none of its binned"):
        detector("Perkin", 50e-6, 50e-6)
    with pytest.raises(DetectorError, match="generic Detector needs pixel1, pixel2"):
        detector("Detector", 1e-4, 1e-4)
    with pytest.raises(DetectorError, match="orientation 7 is not supported"):
        Detector("Detector", 1e-4, 1e-4, (2, 2), orientation=7)
    with pytest.raises(DetectorError, match="shape must be two positive ints"):
        Detector("Detector", 1e-4, 1e-4, (2, 0))


def test_config_is_what_pyfai_writes() -> None:
    assert detector("Pilatus1M").config() == {"pixel1": 172e-6, "pixel2": 172e-6,
                                              "orientation": 3}
    generic = detector("Detector", 1e-4, 2e-4, (10, 20), orientation=2)
    assert generic.config() == {"pixel1": 1e-4, "pixel2": 2e-4, "orientation": 2,
                                "max_shape": [10, 20]}
    theirs = pyfai_detectors.Detector(1e-4, 2e-4, max_shape=(10, 20), orientation=2)
    assert json.dumps(generic.config()) == json.dumps(theirs.get_config())
