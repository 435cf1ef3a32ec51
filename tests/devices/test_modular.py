"""A detector of several modules: every module its own firmware board, simulated on
several threads; the assembled frames are the modules' reference frames put together,
the same for any number of threads; a module's lost packet loses the frame."""

from __future__ import annotations

import numpy as np
import pytest

from devices.firmware import Firmware, FirmwareError
from devices.modular import ModularFirmware
from devices.sensor import link_stream
from fpga.designs.layout import PILATUS_6M, DetectorLayout
from fpga.designs.params import PIXEL_MAX
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


def test_each_module_is_its_own_board_on_its_own_data() -> None:
    """The detector's modules (different counts, tables and ROI parts; one module all
    saturated at the 20-bit maximum) give the packets, bit for bit, of independent
    single-module boards; counts beyond 20 bits in one module are an error naming it that
    runs no board (the frame counters stay in step: the next frames still assemble)."""
    counts = _counts(2, seed=7)
    origins = LAYOUT.origins()
    h, w = LAYOUT.module.height, LAYOUT.module.width
    y0, x0 = origins[4]
    counts[0][y0:y0 + h, x0:x0 + w] = PIXEL_MAX
    y0, x0 = origins[1]
    counts[1][y0:y0 + 9, x0:x0 + w] = PIXEL_MAX  # some lines saturated
    tables = _tables(2)
    fw = ModularFirmware(LAYOUT, "compiled", workers=2)
    fw.configure(CONFIG, tables)
    links = fw.link(counts)
    assert links is not None
    outputs = fw.simulate(links)
    dark, gain, mask = (LAYOUT.split(t) for t in (tables.dark, tables.gain, tables.mask))
    for m in range(LAYOUT.modules):
        board = Firmware(LAYOUT.module, "compiled")
        board.configure(ChainConfig(CONFIG.threshold, LAYOUT.module_roi(CONFIG.roi, m)),
                        ChainTables(dark[m], gain[m], mask[m]))
        want = board.simulate(link_stream([LAYOUT.split(c)[m] for c in counts], LAYOUT.module))
        assert set(outputs[m]) == set(want)
        for name, values in want.items():
            assert np.array_equal(outputs[m][name], values), (m, name)
    bad = counts[1].copy()
    y0, x0 = origins[3]
    bad[y0 + 5, x0 + 7] = PIXEL_MAX + 1
    for call in (fw.link, fw.acquire):
        with pytest.raises(ValueError, match=r"^module 3: frames\[1\] counts must be in 0 … "
                                             r"1048575, got \d+ … 1048576$"):
            call([counts[0], bad])
    # no board ran for the bad frames: every module's next frames are numbers 2 and 3
    frames = fw.acquire(counts, allow_loss=True)
    assert [f.frame_number for f in frames] == [2, 3] and fw.report()["good"] == 2
    assert frames[0].saturated > 0.95 * h * w  # module 4 (its unmasked pixels)


def test_frames_held_keep_their_pixels_and_dropped_ones_lend_their_memory() -> None:
    """The assembled frames and the link words of ``acquire`` use memory of earlier
    acquisitions again, but only what no one holds: frames kept across later acquisitions
    (of other counts, and of a different number of frames) keep their pixels."""
    counts = _counts(5, seed=11)
    fw = ModularFirmware(LAYOUT, "compiled", workers=2)
    fw.configure(CONFIG)
    ref = ModularFirmware(LAYOUT, "compiled", workers=1)
    ref.configure(CONFIG)
    want = [f.image for f in ref.acquire(counts)]
    held = fw.acquire(counts[:2])
    where = {f.image.__array_interface__["data"][0] for f in held}
    second = fw.acquire(counts[2:4])
    assert not any(np.shares_memory(a.image, b.image) for a in held for b in second)
    third = fw.acquire(counts[4:])
    for frame, image in zip(held + second + third, want, strict=True):
        assert np.array_equal(frame.image, image)
    del held
    again = fw.acquire(counts[:2])  # frames 5 and 6: the first two frames' memory
    assert {f.image.__array_interface__["data"][0] for f in again} == where
    assert [f.frame_number for f in again] == [5, 6]
    for frame, image in zip(second + third, want[2:], strict=True):
        assert np.array_equal(frame.image, image)
    for frame, image in zip(again, want[:2], strict=True):
        assert np.array_equal(frame.image, image)


def test_a_module_failing_on_a_worker_thread_raises_the_lowest_modules_error() -> None:
    """The worker threads and the calling one take the modules in turn: each module runs
    once, results come back in module order, and when modules fail the error raised is the
    lowest module's (as the modules in order would), wherever it ran."""
    import threading

    fw = ModularFirmware(LAYOUT, "compiled", workers=3)
    ran: list[tuple[int, str]] = []

    def record(m: int) -> int:
        ran.append((m, threading.current_thread().name))
        return 10 * m

    assert fw._map(record) == [10 * m for m in range(LAYOUT.modules)]
    assert sorted(m for m, _ in ran) == list(range(LAYOUT.modules))

    def fail(m: int) -> int:
        if m in (2, 4):
            raise RuntimeError(f"module {m} failed")
        return m

    for _ in range(5):
        with pytest.raises(RuntimeError, match=r"^module 2 failed$"):
            fw._map(fail)
    fw.close()
