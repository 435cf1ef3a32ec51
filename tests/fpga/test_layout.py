"""Detector layouts: the Pilatus 6M as a facility sizes it, frames cut into modules and
put back together, the ROI cut to each module."""

from __future__ import annotations

import numpy as np
import pytest

from fpga.designs.layout import PILATUS_6M, PILATUS_SENSOR, DetectorLayout, SensorLayer
from fpga.designs.params import ChainParams

SMALL = DetectorLayout(ChainParams(6, 20, 16, binning=False), grid=(2, 3), gap=(3, 2))


def test_pilatus_6m_geometry() -> None:
    """DESIGN.md: 5·487 + 4·7 = 2463 columns, 12·195 + 11·17 = 2527 rows, 60 modules."""
    assert PILATUS_6M.shape == (2527, 2463)
    assert PILATUS_6M.modules == 60
    assert PILATUS_6M.pixels == 60 * 195 * 487
    gaps = PILATUS_6M.gap_mask()
    assert int(gaps.sum()) == 2527 * 2463 - 60 * 195 * 487
    origins = PILATUS_6M.origins()
    assert origins[0] == (0, 0) and origins[1] == (0, 494) and origins[5] == (212, 0)
    assert origins[-1] == (11 * 212, 4 * 494)
    assert not gaps[:195, :487].any() and gaps[195:212, :].all() and gaps[:, 487:494].all()
    m = PILATUS_6M.module
    assert (m.height, m.width, m.lanes, m.binning) == (195, 487, 64, False)
    assert m.pad == 25 and m.words_per_line == 8
    assert PILATUS_6M.sensor == PILATUS_SENSOR == SensorLayer("Si", 450e-6)


def test_a_layout_names_its_sensor() -> None:
    """Silicon 450 µm thick unless told (a PILATUS3 X's); a sensor is a named material of a
    thickness in metres, µm to mm."""
    assert DetectorLayout.single(ChainParams(8, 32, 16)).sensor == PILATUS_SENSOR
    thick = SensorLayer("Si", 1000e-6)
    assert DetectorLayout.single(ChainParams(8, 32, 16), thick).sensor == thick
    for material, thickness, match in (("", 450e-6, "material must be a name"),
                                       ("Si", 450, "thickness must be metres"),
                                       ("Si", 0.0, "thickness must be metres"),
                                       ("Si", True, "thickness must be metres")):
        with pytest.raises(ValueError, match=match):
            SensorLayer(material, thickness)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sensor must be a SensorLayer"):
        DetectorLayout(ChainParams(8, 32, 16), sensor="Si")  # type: ignore[arg-type]


def test_split_and_assemble_round_trip() -> None:
    frame = np.arange(SMALL.shape[0] * SMALL.shape[1]).reshape(SMALL.shape)
    parts = SMALL.split(frame)
    assert len(parts) == 6 and all(p.shape == (6, 20) for p in parts)
    assert parts[4][0, 0] == frame[9, 22]                  # module (1, 1)
    back = SMALL.assemble(parts, dtype=np.int64, fill=-1)
    gaps = SMALL.gap_mask()
    assert np.array_equal(back[~gaps], frame[~gaps]) and (back[gaps] == -1).all()
    with pytest.raises(ValueError, match=r"a frame of this detector is \(15, 64\), got \(15, 63\)"):
        SMALL.split(frame[:, :-1])
    with pytest.raises(ValueError, match="6 module frames make a frame, got 5"):
        SMALL.assemble(parts[:5])
    with pytest.raises(ValueError, match=r"module 2: frame \(6, 19\), a module is \(6, 20\)"):
        SMALL.assemble([*parts[:2], parts[2][:, :-1], *parts[3:]])


def test_assemble_into_a_used_frame_writes_every_pixel() -> None:
    """``out`` may hold anything (a frame whose memory is used again): the modules and
    every gap pixel (gap rows, gap columns, their crossings) are written."""
    frame = np.arange(SMALL.shape[0] * SMALL.shape[1]).reshape(SMALL.shape)
    out = np.full(SMALL.shape, 77, dtype=np.int64)
    back = SMALL.assemble(SMALL.split(frame), fill=-1, out=out)
    gaps = SMALL.gap_mask()
    assert back is out
    assert np.array_equal(out[~gaps], frame[~gaps]) and (out[gaps] == -1).all()
    with pytest.raises(ValueError, match=r"out has shape \(15, 63\), a frame is \(15, 64\)"):
        SMALL.assemble(SMALL.split(frame), out=out[:, :-1])


def test_module_roi_adds_up_to_the_frame_roi() -> None:
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 100, SMALL.shape)
    frame[SMALL.gap_mask()] = 0
    for roi in [(0, 0, 0xFFFF, 0xFFFF), (5, 2, 41, 13), (21, 0, 22, 15), (20, 0, 22, 6)]:
        x0, y0, x1, y1 = roi
        want = int(frame[y0:y1, x0:x1].sum())
        got = 0
        for m, part in enumerate(SMALL.split(frame)):
            a0, b0, a1, b1 = SMALL.module_roi(roi, m)
            got += int(part[b0:b1, a0:a1].sum())
        assert got == want, roi
    assert SMALL.module_roi((20, 0, 22, 6), 0) == (0, 0, 0, 0)   # all in a gap column


def test_layout_checks() -> None:
    with pytest.raises(ValueError, match="built without the binning stage"):
        DetectorLayout(ChainParams(8, 32, 16), grid=(2, 1))
    with pytest.raises(ValueError, match="grid must be two ints >= 1"):
        DetectorLayout(ChainParams(8, 32, 16, binning=False), grid=(0, 1))
    with pytest.raises(ValueError, match="gap must be two ints >= 0"):
        DetectorLayout(ChainParams(8, 32, 16, binning=False), gap=(1, -1))
    assert DetectorLayout.single(ChainParams(8, 32, 16)).shape == (8, 32)


def test_chain_params_padding_and_binning_rules() -> None:
    p = ChainParams(195, 487, 32, binning=False)
    assert (p.line_width, p.pad, p.words_per_frame) == (512, 25, 195 * 16)
    assert p.payload_words(False) == 195 * 16
    with pytest.raises(ValueError, match="built without the 2×2 binning stage"):
        p.out_shape(True)
    with pytest.raises(ValueError, match=r"multiple of 2 \* lanes \(32\) with the binning stage"):
        ChainParams(195, 40, 16)
    with pytest.raises(ValueError, match="must be even with the binning stage"):
        ChainParams(195, 64, 16)
    with pytest.raises(ValueError, match="lanes must be even"):
        ChainParams(8, 40, 17, binning=False)
