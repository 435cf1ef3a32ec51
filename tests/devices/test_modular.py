"""A detector of several modules: every module its own firmware board, simulated on
several threads; the assembled frames are the modules' reference frames put together,
the same for any number of threads; a module's lost packet loses the frame."""

from __future__ import annotations

import numpy as np
import pytest

from devices.firmware import FirmwareError
from devices.modular import ModularFirmware
from fpga.designs.layout import PILATUS_6M, DetectorLayout
from fpga.designs.reference import ChainConfig, ChainTables, reference_frame

# six Pilatus modules (the P6M's chain: compiled once for every test that uses it)
LAYOUT = DetectorLayout(PILATUS_6M.module, grid=(2, 3), gap=(17, 7))
CONFIG = ChainConfig(threshold=2, roi=(300, 100, 1200, 300))


def _counts(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.poisson(500.0, LAYOUT.shape).astype(np.uint32) for _ in range(n)]


def _tables(seed: int = 1) -> ChainTables:
    rng = np.random.default_rng(seed)
    shape = LAYOUT.shape
    return ChainTables(rng.integers(0, 20, shape), rng.integers(15_000, 18_000, shape),
                       rng.random(shape) < 0.01)


def test_modules_assemble_the_reference_frames_on_any_number_of_threads() -> None:
    counts = _counts(3)
    tables = _tables()
    results = []
    for workers in (1, 2, 3):
        fw = ModularFirmware(LAYOUT, "compiled", workers=workers)
        fw.configure(CONFIG, tables)
        frames = fw.acquire(counts[:1]) + fw.acquire(counts[1:], links=[fw.link(counts[1:])])
        fw.close()
        results.append(frames)
        assert [f.frame_number for f in frames] == [0, 1, 2]
        assert fw.report()["good"] == 3 and fw.report()["modules"] == 6
    for frames in results[1:]:   # bit for bit the single-threaded run
        for a, b in zip(results[0], frames, strict=True):
            assert np.array_equal(a.image, b.image) and a.roi_sum == b.roi_sum
            assert np.array_equal(a.histogram, b.histogram)
    gaps = LAYOUT.gap_mask()
    dark, gain, mask = (LAYOUT.split(t) for t in (tables.dark, tables.gain, tables.mask))
    for raw, got in zip(counts, results[0], strict=True):
        parts = []
        roi = hist = 0
        for m, part in enumerate(LAYOUT.split(raw)):
            cfg = ChainConfig(CONFIG.threshold, LAYOUT.module_roi(CONFIG.roi, m))
            want = reference_frame(part, LAYOUT.module, cfg,
                                   ChainTables(dark[m], gain[m], mask[m]))
            parts.append(want.image)
            roi += want.roi_sum
            hist = hist + want.histogram
        assert np.array_equal(got.image, LAYOUT.assemble(parts))
        assert not got.image[gaps].any()
        assert got.roi_sum == roi and np.array_equal(got.histogram, hist)


def test_a_lost_module_packet_loses_the_frame() -> None:
    fw = ModularFirmware(LAYOUT, "compiled", workers=2)
    fw.configure(ChainConfig())
    fw.inject_fault("flip")
    counts = _counts(2, seed=4)
    with pytest.raises(FirmwareError, match=r"6 modules\) delivered 1 of 2 frames: module 0: "):
        fw.acquire(counts)
    assert fw.report()["corrupt"] == 1
    assert fw.readout.corrupt == 1 and "module 0" in fw.readout.errors[-1].message
    (frame,) = fw.acquire(counts[:1], allow_loss=True)
    assert frame.frame_number == 2 and frame.lost_before == 0


def test_modular_firmware_checks() -> None:
    with pytest.raises(ValueError, match="multi-module detector's modules do not bin"):
        ModularFirmware(LAYOUT, "compiled", workers=1).configure(ChainConfig(binning=True))
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        ModularFirmware(LAYOUT, "compiled", workers=0)
    with pytest.raises(ValueError, match="layout must be a DetectorLayout"):
        ModularFirmware(LAYOUT.module, "compiled")  # type: ignore[arg-type]
    fw = ModularFirmware(LAYOUT, "compiled", workers=1)
    with pytest.raises(ValueError, match=r"tables have shape \(195, 487\), the detector is"):
        fw.configure(ChainConfig(), ChainTables.reset(LAYOUT.module))
