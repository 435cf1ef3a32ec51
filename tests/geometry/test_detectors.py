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


def _binned_by_hand(full: np.ndarray, binning: tuple[int, int]) -> np.ndarray:
    """A binned pixel is masked when any pixel it sums is (pyFAI bins masks by summing);
    rows and columns left over by the binning are dropped, as the binned shape drops them."""
    (b0, b1), (n0, n1) = binning, (full.shape[0] // binning[0], full.shape[1] // binning[1])
    return full[:n0 * b0, :n1 * b1].reshape(n0, b0, n1, b1).any(axis=(1, 3))


@pytest.mark.parametrize("binning", [(2, 2), (2, 1), (1, 4)])
def test_binned_detectors_match_pyfai(binning: tuple[int, int]) -> None:
    """Every named detector binned as pyFAI bins it, by pixel size (what a binned
    detector's .poni holds) and by pyFAI's ``binning`` key: shape, pixel size and mask."""
    compared = by_hand = 0
    for name in detector_names():
        base = detector(name)
        try:
            ours = detector(name, binning=binning)
        except DetectorError as exc:  # a binnable sensor without that binning
            assert "is none of its binnings" in str(exc), name
            assert name.startswith(("Perkin", "Rayonix")), name
            continue
        theirs = pyfai_detectors.detector_factory(name, {"binning": list(binning)})
        assert ours.shape == tuple(theirs.shape), name
        assert (ours.pixel1, ours.pixel2) == pytest.approx((theirs.pixel1, theirs.pixel2),
                                                           rel=1e-12), name
        assert ours.binning == tuple(theirs.binning) and ours.max_shape == theirs.max_shape
        if name.startswith(("Pilatus", "Eiger")):
            by_pixel = detector(name, ours.pixel1, ours.pixel2)
            assert by_pixel == ours, name
        try:
            their_mask = theirs.mask
        except RuntimeError:  # pyFAI cannot bin a mask whose shape the binning leaves over
            assert ours.max_shape[0] % binning[0] or ours.max_shape[1] % binning[1]
            full = detector(name, shape=ours.max_shape) if base.binning == (1, 1) else None
            if full is not None:
                assert np.array_equal(ours.mask, _binned_by_hand(full.mask, binning)), name
                by_hand += 1
            continue
        expected = np.zeros(theirs.shape, bool) if their_mask is None else \
            their_mask.astype(bool)
        assert np.array_equal(ours.mask, expected), name
        compared += 1
    assert compared >= 10 and by_hand >= 5


def test_a_binned_pilatus_by_hand() -> None:
    """The Pilatus 1M binned 2 x 2 of user report U1: 521 x 490 pixels of 344 µm; the gap
    rows 195-211 of the full detector are binned rows 97 (195 with 194) to 105 (210-211)."""
    det = detector("Pilatus1M", 344e-6, 344e-6)
    assert (det.shape, det.binning, det.max_shape) == ((521, 490), (2, 2), (1043, 981))
    assert det.mask[97:106].all() and not det.mask[96, :243].any() \
        and not det.mask[106, :243].any()
    assert det.mask[:, 243:247].all() and not det.mask[:97, 242].any()
    assert det.config() == {"pixel1": 344e-6, "pixel2": 344e-6, "orientation": 3}
    assert detector("Pilatus1M", binning=[2, 2]) == det
    assert detector("Pilatus1M", 172e-6, 172e-6, binning=2) == det  # pyFAI: pixel grows


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(pixel1=258e-6, pixel2=258e-6),  # pyFAI keeps 258 µm pixels on 1043 x 981
     r"pixel1 0.000258 m is neither its pixel size 0.000172 m nor an integer multiple"),
    (dict(pixel1=100e-6, pixel2=100e-6), r"pixel1 0.0001 m is neither its pixel size"),
    (dict(pixel1=344e-6, pixel2=344e-6, binning=4),  # pyFAI: 688 µm, the binning wins
     r"pixel1 0.000344 m contradicts binning 4 \(pixel size 0.000688 m\)"),
    (dict(binning=0), r"binning must be a positive int or two \(rows, cols\), got 0"),
    (dict(binning=(2, 2, 2)), r"binning must be a positive int or two"),
    (dict(binning=True), r"binning must be a positive int or two"),
])
def test_pixel_sizes_that_are_no_binning_are_refused(kwargs: dict[str, object],
                                                     message: str) -> None:
    with pytest.raises(DetectorError, match=message):
        detector("Pilatus1M", **kwargs)  # type: ignore[arg-type]
