"""The numpy reference model of the firmware chain against hand-computed cases of each rule
of docs/firmware.md, and against a plain-Python per-pixel reading of the spec."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from fpga.designs.params import (
    DETECTOR_LANES,
    GAIN_ONE,
    HIST_BINS,
    MAGIC,
    PIXEL_MAX,
    VERSION,
    ChainParams,
    Flags,
    Reg,
    Table,
    detector_params,
)
from fpga.designs.reference import (
    ChainConfig,
    ChainTables,
    bin2x2,
    correct,
    default_timestamps,
    encode_packet,
    histogram,
    reference_frame,
    reference_stream,
    roi_sum,
    setup_stimulus,
    setup_ticks,
    setup_writes,
)

SMALL = ChainParams(height=2, width=32, lanes=16)


def tables(dark: int | np.ndarray = 0, gain: int | np.ndarray = GAIN_ONE,
           mask: bool | np.ndarray = False, p: ChainParams = SMALL) -> ChainTables:
    shape = (p.height, p.width)
    return ChainTables(dark=np.broadcast_to(np.asarray(dark), shape),
                       gain=np.broadcast_to(np.asarray(gain), shape),
                       mask=np.broadcast_to(np.asarray(mask), shape))


def one_pixel(raw: int, dark: int = 0, gain: int = GAIN_ONE, mask: bool = False,
              threshold: int = 0) -> tuple[int, bool]:
    """Corrected value and saturation flag of pixel (0, 0) with the given inputs."""
    r = np.zeros((SMALL.height, SMALL.width), np.int64)
    r[0, 0] = raw
    d = np.zeros_like(r)
    d[0, 0] = dark
    g = np.full_like(r, GAIN_ONE)
    g[0, 0] = gain
    m = np.zeros(r.shape, bool)
    m[0, 0] = mask
    out, sat = correct(r, SMALL, ChainConfig(threshold=threshold), tables(d, g, m))
    return int(out[0, 0]), bool(sat[0, 0])


# -- per-pixel rules ------------------------------------------------------------------------

def test_masked_pixel_is_zero_even_when_saturated() -> None:
    assert one_pixel(500, mask=True) == (0, False)
    assert one_pixel(PIXEL_MAX, mask=True) == (0, False)


def test_saturated_counter_gives_65535_before_dark_and_gain() -> None:
    assert one_pixel(PIXEL_MAX) == (65535, True)
    assert one_pixel(PIXEL_MAX, dark=60000, gain=0) == (65535, True)
    assert one_pixel(65535 + 1000, dark=1000) == (65535, False)
    assert one_pixel(65535 + 1000, dark=999) == (65535, True)


def test_dark_above_raw_clamps_to_zero() -> None:
    assert one_pixel(10, dark=11) == (0, False)
    assert one_pixel(10, dark=10) == (0, False)
    assert one_pixel(10, dark=9) == (1, False)


def test_threshold_zeroes_below_and_keeps_equal() -> None:
    assert one_pixel(110, dark=10, threshold=100) == (100, False)
    assert one_pixel(110, dark=10, threshold=101) == (0, False)
    assert one_pixel(110, dark=10, threshold=0) == (100, False)


@pytest.mark.parametrize(("s", "gain", "expected"), [
    (1, 8192, 1),       # 0.5 rounds half up
    (1, 8191, 0),       # just below 0.5
    (3, 8192, 2),       # 1.5 → 2
    (5, 8192, 3),       # 2.5 → 3 (half up, not to even)
    (100, 16384, 100),  # gain 1.0
    (7, 3 * 16384 + 8192, 25),  # 7 · 3.5 = 24.5 → 25
    (1, 65535, 4),      # the largest gain ≈ 3.99994
    (9, 0, 0),
])
def test_gain_rounds_half_up(s: int, gain: int, expected: int) -> None:
    assert one_pixel(s, gain=gain) == (expected, False)


def test_overflow_saturates_and_counts() -> None:
    assert one_pixel(65535) == (65535, False)
    assert one_pixel(65536) == (65535, True)
    # 65535 · 16385 / 16384 = 65539.0 → 65535, counted
    assert one_pixel(65535, gain=16385) == (65535, True)
    # 32768 · 2.0 - ε: (32768·32767 + 8192) >> 14 = 65534
    assert one_pixel(32768, gain=32767) == (65534, False)
    assert one_pixel(PIXEL_MAX - 1) == (65535, True)


def test_saturated_count_reaches_the_reductions_and_header_threshold() -> None:
    raw = np.zeros((2, 32), np.int64)
    raw[0, :3] = PIXEL_MAX
    raw[1, 5] = 80000
    raw[1, 6] = PIXEL_MAX
    m = np.zeros_like(raw, dtype=bool)
    m[1, 6] = True
    res = reference_frame(raw, SMALL, ChainConfig(threshold=0x12345), tables(mask=m))
    assert res.saturated == 4
    red = res.packet[1 + SMALL.payload_words(False):-1].reshape(-1)
    assert list(red[3:5]) == [4, 0]
    assert list(res.packet[0][10:12]) == [0x2345, 0x1]


# -- binning, ROI, histogram ---------------------------------------------------------------

def test_binning_sums_blocks_and_saturates_without_counting() -> None:
    raw = np.zeros((2, 32), np.int64)
    raw[:, 0:2] = [[1, 2], [3, 4]]
    raw[:, 2:4] = 20000          # 4 · 20000 = 80000 → 65535
    raw[:, 4:6] = [[65535, 0], [1, 0]]
    res = reference_frame(raw, SMALL, ChainConfig(binning=True))
    assert res.image.shape == (1, 16)
    assert res.image.dtype == np.uint16
    assert list(res.image[0, :4]) == [10, 65535, 65535, 0]
    assert res.saturated == 0
    assert res.packet.shape[0] == SMALL.packet_words(True)
    assert res.packet[0][9] == int(Flags.BINNING)
    assert list(res.packet[0][7:9]) == [1, 16]


def test_bin2x2_rejects_odd_shapes() -> None:
    with pytest.raises(ValueError, match=r"bin2x2: image shape \(3, 4\) must be even"):
        bin2x2(np.zeros((3, 4), np.uint16))


def test_roi_edges_are_inclusive_exclusive() -> None:
    p = ChainParams(height=4, width=32, lanes=16)
    raw = (np.arange(4 * 32).reshape(4, 32) + 1) * 3
    img = raw.astype(np.uint16)
    expected = sum(int(img[y, x]) for y in range(1, 3) for x in range(2, 31))
    res = reference_frame(raw, p, ChainConfig(roi=(2, 1, 31, 3)))
    assert res.roi_sum == expected
    assert roi_sum(img, (0, 0, 0xFFFF, 0xFFFF)) == int(img.sum())       # reset: whole image
    assert roi_sum(img, (5, 0, 5, 4)) == 0                              # empty
    assert roi_sum(img, (31, 3, 32, 4)) == int(img[3, 31])              # last pixel
    assert roi_sum(img, (10, 2, 3, 4)) == 0                             # x1 < x0


def test_roi_applies_to_the_binned_image() -> None:
    p = ChainParams(height=4, width=32, lanes=16)
    raw = np.ones((4, 32), np.int64)
    res = reference_frame(raw, p, ChainConfig(binning=True, roi=(0, 0, 3, 1)))
    assert res.roi_sum == 3 * 4


def test_roi_sum_uses_three_lanes() -> None:
    p = ChainParams(height=256, width=512, lanes=16)
    raw = np.full((256, 512), 65535, np.int64)
    res = reference_frame(raw, p)
    assert res.roi_sum == 65535 * 256 * 512 > 1 << 32
    red = res.packet[1 + p.payload_words(False):-1].reshape(-1)
    assert int(red[0]) | int(red[1]) << 16 | int(red[2]) << 32 == res.roi_sum


def test_histogram_bins_are_value_shifted_by_10() -> None:
    img = np.zeros((2, 32), np.uint16)
    img[0, :6] = [0, 1023, 1024, 2047, 2048, 65535]
    img[1, 0] = 64512
    h = histogram(img)
    assert h.shape == (HIST_BINS,)
    assert h[0] == 2 + 64 - 7 and h[1] == 2 and h[2] == 1 and h[63] == 2
    assert h.sum() == img.size


# -- packet ------------------------------------------------------------------------------

def test_packet_layout() -> None:
    p = SMALL
    raw = np.arange(64).reshape(2, 32) * 1000
    res = reference_frame(raw, p, ChainConfig(threshold=7), frame_number=0x12345678,
                          timestamp=0x123456789ABC)
    pk = res.packet
    assert pk.dtype == np.uint16
    assert pk.shape == (p.packet_words(False), 16) == (1 + 4 + 9 + 1, 16)
    hdr = list(pk[0])
    assert hdr[:12] == [MAGIC, VERSION << 8 | 16, 0x5678, 0x1234, 0x9ABC, 0x5678, 0x1234,
                        2, 32, 0, 7, 0]
    assert hdr[12:] == [0] * 4
    np.testing.assert_array_equal(pk[1:5].reshape(2, 32), res.image)
    red = pk[5:14].reshape(-1)
    assert red[:3].tolist() == [res.roi_sum & 0xFFFF, res.roi_sum >> 16 & 0xFFFF,
                                res.roi_sum >> 32]
    assert red[5:8].tolist() == [0, 0, 0]
    hist = red[8:136:2].astype(np.int64) | red[9:136:2].astype(np.int64) << 16
    np.testing.assert_array_equal(hist, res.histogram)
    assert not red[136:].any()
    trl = pk[-1]
    assert int(trl[0]) | int(trl[1]) << 16 == len(pk) - 1
    assert trl[2] == 0 and not trl[3:14].any()
    # the CRC ends the packet and covers every byte before it, trailer fields included
    crc = zlib.crc32(pk.astype("<u2").tobytes()[:-4])
    assert int(trl[14]) | int(trl[15]) << 16 == crc
    # so the CRC-32 of the whole packet is the CRC's constant residue (as for Ethernet)
    assert zlib.crc32(pk.astype("<u2").tobytes()) ^ 0xFFFFFFFF == 0xDEBB20E3


def test_crc_equals_zlib_over_bytes_for_large_frames_and_framing_flag() -> None:
    p = ChainParams(height=64, width=128, lanes=32)
    raw = np.random.default_rng(1).integers(0, PIXEL_MAX + 1, (64, 128))
    res = reference_frame(raw, p, ChainConfig(binning=True), framing_error=True)
    pk = res.packet
    assert pk.shape == (1 + 32 * 64 // 32 + 5 + 1, 32)
    assert int(pk[-1][-2]) | int(pk[-1][-1]) << 16 == zlib.crc32(
        pk.astype("<u2").tobytes()[:-4])
    assert pk[-1][2] == int(Flags.FRAMING_ERROR)


def test_encode_packet_checks_fields() -> None:
    img = np.zeros((2, 32), np.uint16)
    h = histogram(img)
    with pytest.raises(ValueError, match=r"frame_number must be an int in 0 … 4294967295"):
        encode_packet(img, 0, 0, h, SMALL, ChainConfig(), 1 << 32, 0)
    with pytest.raises(ValueError, match="timestamp must be"):
        encode_packet(img, 0, 0, h, SMALL, ChainConfig(), 0, -1)
    with pytest.raises(ValueError, match=r"image shape \(2, 32\), expected \(1, 16\)"):
        encode_packet(img, 0, 0, h, SMALL, ChainConfig(binning=True), 0, 0)


def test_stream_concatenates_packets_with_flags_and_wrapping_numbers() -> None:
    frames = [np.full((2, 32), i, np.int64) for i in range(3)]
    s = reference_stream(frames, SMALL, first_frame=0xFFFF_FFFF, timestamps=[5, 50, 500])
    n = SMALL.packet_words(False)
    assert s.words.shape == (3 * n, 16)
    assert np.flatnonzero(s.first).tolist() == [0, n, 2 * n]
    assert np.flatnonzero(s.last).tolist() == [n - 1, 2 * n - 1, 3 * n - 1]
    assert [r.frame_number for r in s.results] == [0xFFFF_FFFF, 0, 1]
    assert [r.timestamp for r in s.results] == [5, 50, 500]
    np.testing.assert_array_equal(s.words[n:2 * n], s.results[1].packet)
    assert reference_stream([], SMALL).words.shape == (0, 16)
    d = default_timestamps(3, SMALL, lead_idle=4)
    assert d == [4, 4 + SMALL.words_per_frame + SMALL.frame_gap,
                 4 + 2 * (SMALL.words_per_frame + SMALL.frame_gap)]
    with pytest.raises(ValueError, match="2 timestamps for 3 frames"):
        reference_stream(frames, SMALL, timestamps=[1, 2])


# -- against a per-pixel reading of the spec ----------------------------------------------

def spec_by_pixel(raw: np.ndarray, cfg: ChainConfig, tab: ChainTables
                  ) -> tuple[np.ndarray, int, int, list[int]]:
    """docs/firmware.md read literally, one pixel at a time in plain Python."""
    h, w = raw.shape
    pix = [[0] * w for _ in range(h)]
    saturated = 0
    for y in range(h):
        for x in range(w):
            r, d, g, m = int(raw[y, x]), int(tab.dark[y, x]), int(tab.gain[y, x]), tab.mask[y, x]
            if m:
                v = 0
            elif r == 2**20 - 1:
                v, saturated = 65535, saturated + 1
            else:
                s = max(r - d, 0)
                if s < cfg.threshold:
                    s = 0
                v = (s * g + 8192) >> 14
                if v > 65535:
                    v, saturated = 65535, saturated + 1
            pix[y][x] = v
    if cfg.binning:
        pix = [[min(65535, pix[2 * y][2 * x] + pix[2 * y][2 * x + 1] + pix[2 * y + 1][2 * x]
                    + pix[2 * y + 1][2 * x + 1]) for x in range(w // 2)] for y in range(h // 2)]
    x0, y0, x1, y1 = cfg.roi
    total = sum(v for y, row in enumerate(pix) for x, v in enumerate(row)
                if x0 <= x < x1 and y0 <= y < y1)
    hist = [0] * 64
    for row in pix:
        for v in row:
            hist[v >> 10] += 1
    return np.array(pix), total, saturated, hist


@pytest.mark.parametrize("seed", range(6))
def test_matches_the_spec_pixel_by_pixel(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = ChainParams(height=8, width=32, lanes=16)
    shape = (p.height, p.width)
    # counts of every magnitude (2**8 … 2**20), 10 % of the counters saturated
    raw = np.where(rng.random(shape) < 0.1, PIXEL_MAX,
                   rng.integers(0, 1 << rng.integers(8, 21, shape)))
    tab = ChainTables(dark=rng.integers(0, 400, shape), gain=rng.integers(0, 65536, shape),
                      mask=rng.random(shape) < 0.1)
    roi = (int(rng.integers(0, 20)), int(rng.integers(0, 5)), int(rng.integers(0, 40)),
           int(rng.integers(0, 10)))
    cfg = ChainConfig(threshold=int(rng.integers(0, 200)), roi=roi, binning=bool(seed % 2))
    res = reference_frame(raw, p, cfg, tab, frame_number=seed, timestamp=seed * 7)
    img, total, sat, hist = spec_by_pixel(raw, cfg, tab)
    np.testing.assert_array_equal(res.image, img)
    assert (res.roi_sum, res.saturated, res.histogram.tolist()) == (total, sat, hist)


def test_full_size_frame() -> None:
    p = ChainParams(height=1024, width=1024, lanes=16)
    raw = np.random.default_rng(0).integers(0, PIXEL_MAX + 1, (1024, 1024), dtype=np.int64)
    res = reference_frame(raw, p, ChainConfig(binning=True, threshold=3))
    assert res.image.shape == (512, 512)
    assert res.packet.shape == (p.packet_words(True), 16)
    assert res.histogram.sum() == 512 * 512


# -- configuration, tables and errors ------------------------------------------------------

def test_config_register_writes_and_table_words() -> None:
    cfg = ChainConfig(threshold=9, roi=(1, 2, 3, 4), binning=True)
    assert cfg.register_writes() == [(Reg.THRESHOLD, 9), (Reg.ROI_X0, 1), (Reg.ROI_Y0, 2),
                                     (Reg.ROI_X1, 3), (Reg.ROI_Y1, 4), (Reg.BINNING, 1)]
    g = np.arange(64).reshape(2, 32)
    t = tables(gain=g)
    w = t.words(Table.GAIN, SMALL)
    assert w.shape == (SMALL.table_depth, 16)
    assert w[3].tolist() == list(range(48, 64))     # word address y·width/K + c = 1·2 + 1
    assert ChainTables.reset(SMALL).words(Table.GAIN, SMALL).min() == GAIN_ONE


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"threshold": PIXEL_MAX + 1}, r"ChainConfig.threshold must be an int in 0 … 1048575"),
    ({"threshold": -1}, "ChainConfig.threshold"),
    ({"roi": (0, 0, 0x10000, 1)}, r"ChainConfig.roi x1 must be an int in 0 … 65535"),
    ({"roi": (0, 0, 1)}, r"ChainConfig.roi must be a tuple \(x0, y0, x1, y1\)"),
    ({"binning": 1}, "ChainConfig.binning must be a bool"),
])
def test_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ChainConfig(**kwargs)  # type: ignore[arg-type]


def test_input_errors() -> None:
    good = np.zeros((2, 32), np.int64)
    with pytest.raises(ValueError, match=r"raw must have the sensor shape \(2, 32\), got \(2, 64\)"):
        reference_frame(np.zeros((2, 64), np.int64), SMALL)
    with pytest.raises(ValueError, match=r"raw values must be in 0 … 1048575, got 0 … 1048576"):
        reference_frame(good + np.eye(2, 32, dtype=np.int64) * (PIXEL_MAX + 1), SMALL)
    with pytest.raises(ValueError, match="raw must be an integer array, got dtype float64"):
        reference_frame(good.astype(float), SMALL)
    with pytest.raises(ValueError, match="raw must be an integer array, got dtype timedelta64"):
        reference_frame(good.astype("m8[s]"), SMALL)
    with pytest.raises(ValueError, match=r"ChainTables.gain values must be in 0 … 65535"):
        ChainTables(dark=good, gain=good - 1, mask=good)
    with pytest.raises(ValueError, match=r"ChainTables.mask must be 2-D with the shape of dark"):
        ChainTables(dark=good, gain=good, mask=np.zeros(64))
    with pytest.raises(ValueError, match=r"ChainTables: tables have shape \(2, 32\), the chain "
                                         r"expects \(4, 32\)"):
        reference_frame(np.zeros((4, 32), np.int64), ChainParams(4, 32, 16), tables=tables())


def test_setup_stimulus_writes_registers_and_changed_table_words() -> None:
    cfg = ChainConfig(threshold=3, binning=True)
    dark = np.zeros((2, 32), np.int64)
    dark[1, 20] = 9                                        # word 1·2 + 1 = 3, lane 4
    tab = tables(dark=dark)
    regs, words = setup_writes(SMALL, cfg, tab)
    assert regs == cfg.register_writes()
    assert [(t, a) for t, a, _ in words] == [(Table.DARK, 3)]
    assert words[0][2].tolist() == [0] * 4 + [9] + [0] * 11
    assert len(setup_writes(SMALL, cfg, tab, only_changed=False)[1]) == 3 * SMALL.table_depth
    n = setup_ticks(SMALL, cfg, tab)
    assert n == 6 + 4
    st = setup_stimulus(SMALL, 12, cfg, tab)
    assert set(st) == {"ctrl.we", "ctrl.reg", "ctrl.value", "tables.we", "tables.table",
                       "tables.addr", "tables.data"}
    assert st["ctrl.we"].tolist() == [True] * 6 + [False] * 6
    assert st["ctrl.reg"][:6].tolist() == [list(Reg).index(r) for r, _ in regs]
    assert st["ctrl.value"][:6].tolist() == [3, 0, 0, 0xFFFF, 0xFFFF, 1]
    assert st["tables.we"].tolist() == [True] + [False] * 11
    assert (st["tables.table"][0], st["tables.addr"][0]) == (list(Table).index(Table.DARK), 3)
    assert st["tables.data"].shape == (12, 16) and st["tables.data"][0, 4] == 9
    with pytest.raises(ValueError, match="6 writes need at least 6 ticks, got 5"):
        setup_stimulus(SMALL, 5, cfg, tab)


def test_chain_params_need_an_even_lane_count() -> None:
    """The CRC takes two 16-bit lanes per step: with an odd K a lane would escape it."""
    with pytest.raises(ValueError, match=r"ChainParams.lanes must be even .* not 17"):
        ChainParams(height=2, width=68, lanes=17)
    assert ChainParams(height=2, width=72, lanes=18).lanes == 18


def test_detector_params_take_the_widest_datapath_the_width_allows() -> None:
    """A one-chain detector's firmware: 64 lanes where binned words of 64 fill the line,
    32 where only words of 32 do, 16 where only words of 16 do, and one error naming the
    widths that work otherwise."""
    assert DETECTOR_LANES == (64, 32, 16)
    assert detector_params(256, 256) == ChainParams(256, 256, 64)
    assert detector_params(1024, 1024) == ChainParams(1024, 1024, 64)
    assert detector_params(512, 512) == ChainParams(512, 512, 64)
    assert detector_params(64, 192) == ChainParams(64, 192, 32)  # 192 = 3 × 64, not × 128
    assert detector_params(64, 96) == ChainParams(64, 96, 16)    # 96 = 3 × 32, not × 64
    assert detector_params(2, 32) == ChainParams(2, 32, 16)
    for width, hint in ((100, "e.g. 96 or 128"), (40, "e.g. 32 or 64"), (10, "e.g. 32$")):
        with pytest.raises(ValueError, match=rf"ChainParams.width \({width}\) must be a "
                           rf"multiple of 32 for the detector's firmware .*{hint}"):
            detector_params(64, width)
    with pytest.raises(ValueError, match=r"height \(63\) must be even for the detector's"):
        detector_params(63, 64)
    with pytest.raises(ValueError, match=r"ChainParams\.width must be a positive int, not 0"):
        detector_params(64, 0)
    with pytest.raises(ValueError, match="fit 16 bits"):
        detector_params(2, 1 << 16)
