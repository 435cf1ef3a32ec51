"""The readout backend: packets of the numpy reference model → frames, and every check that
keeps a corrupt frame from being passed on as good."""

from __future__ import annotations

import contextlib
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dataflow.packets as pk
from dataflow.integrity import frame_crc32
from dataflow.packets import PacketError, ReadoutFrame, decode_packet, packet_from_bytes
from dataflow.readout import Readout
from fpga.designs import params
from fpga.designs.params import PIXEL_MAX, ChainParams
from fpga.designs.reference import (
    ChainConfig,
    ChainTables,
    ReferenceResult,
    reference_frame,
    reference_stream,
)

P = ChainParams(height=8, width=64, lanes=16)


def raw_frames(n: int, p: ChainParams = P, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 1 << int(rng.integers(8, 21)), (p.height, p.width)) for _ in range(n)]


def packets(n: int, cfg: ChainConfig | None = None, p: ChainParams = P,
            first_frame: int = 0) -> list[ReferenceResult]:
    return reference_stream(raw_frames(n, p), p, cfg, first_frame=first_frame).results


def fix_crc(words: np.ndarray) -> np.ndarray:
    """The packet with its trailer CRC recomputed (a corruption the CRC cannot see): the
    CRC-32 of every byte before the last four (docs/firmware.md)."""
    w = words.copy()
    crc = zlib.crc32(w.astype("<u2").tobytes()[:-4])
    w[-1, -2], w[-1, -1] = crc & 0xFFFF, crc >> 16
    return w


def bus(words_list: list[np.ndarray], idle_prob: float = 0.0, seed: int = 0,
        bare: frozenset[int] = frozenset(), no_last: frozenset[int] = frozenset()
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Packets on the packet bus (valid/first/last/data, data int64 like run_batch), with
    random idle ticks. Items in ``bare`` get no first/last flags (stray words), those in
    ``no_last`` no last flag (a packet whose end was lost)."""
    words = np.concatenate(words_list)
    first = np.zeros(len(words), bool)
    last = np.zeros(len(words), bool)
    ends = np.cumsum([len(w) for w in words_list])
    starts = np.concatenate([[0], ends[:-1]])
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        first[a] = i not in bare
        last[b - 1] = i not in bare and i not in no_last
    rng = np.random.default_rng(seed)
    gaps = rng.geometric(1 - idle_prob, len(words)) - 1 if idle_prob else np.zeros(len(words), int)
    tick = np.cumsum(gaps + 1) - 1
    t = int(tick[-1]) + 4
    v, f, la = np.zeros(t, bool), np.zeros(t, bool), np.zeros(t, bool)
    d = np.zeros((t, words.shape[1]), np.int64)
    v[tick], f[tick], la[tick], d[tick] = True, first, last, words
    return v, f, la, d


def feed_in_pieces(r: Readout, stream: tuple[np.ndarray, ...], seed: int = 0,
                   max_piece: int = 40) -> list[ReadoutFrame]:
    v, f, la, d = stream
    rng = np.random.default_rng(seed)
    out: list[ReadoutFrame] = []
    a = 0
    while a < len(v):
        b = a + int(rng.integers(1, max_piece))
        out += r.feed(v[a:b], f[a:b], la[a:b], d[a:b])
        a = b
    return out


def same(frame: ReadoutFrame, ref: ReferenceResult) -> None:
    np.testing.assert_array_equal(frame.image, ref.image)
    assert frame.image.dtype == np.uint16
    assert (frame.frame_number, frame.timestamp, frame.roi_sum, frame.saturated) == (
        ref.frame_number, ref.timestamp, ref.roi_sum, ref.saturated)
    np.testing.assert_array_equal(frame.histogram, ref.histogram)


# -- the format constants are the firmware's ------------------------------------------------

def test_constants_equal_the_firmware_params() -> None:
    for name in ("MAGIC", "VERSION", "MIN_LANES", "OUT_BITS", "HIST_BINS", "HIST_SHIFT",
                 "HEADER_LANES", "REDUCTION_FIELDS", "REDUCTION_LANES"):
        assert getattr(pk, name) == getattr(params, name), name
    assert int(params.Flags.BINNING) == pk.FLAG_BINNING
    assert int(params.Flags.FRAMING_ERROR) == pk.FLAG_FRAMING_ERROR
    for p in (P, ChainParams(64, 64, 16), ChainParams(1024, 1024, 16), ChainParams(64, 128, 32),
              ChainParams(16, 96, 48), ChainParams(32, 256, 64)):
        assert pk.reduction_words(p.lanes) == p.reduction_words
        for binning in (False, True):
            assert pk.packet_words(*p.out_shape(binning), p.lanes) == p.packet_words(binning)


# -- round trip ----------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [
    ChainConfig(),
    ChainConfig(threshold=100, roi=(3, 1, 40, 6)),
    ChainConfig(binning=True, roi=(0, 0, 5, 2), threshold=0xFFFFF),
])
def test_round_trip_in_pieces(cfg: ChainConfig) -> None:
    refs = packets(6, cfg)
    r = Readout(P.lanes, (P.height, P.width))
    out = feed_in_pieces(r, bus([x.packet for x in refs], idle_prob=0.3))
    assert len(out) == 6
    for frame, ref in zip(out, refs, strict=True):
        same(frame, ref)
        assert frame.threshold == cfg.threshold
        assert frame.binning == cfg.binning and not frame.framing_error
    assert r.report() == {"good": 6, "corrupt": 0, "corrupt_by_check": {}, "dropped": 0,
                          "framing_errors": 0, "stray_words": 0, "last_frame_number": 5,
                          "expected_frame": 6, "in_packet": False, "errors": []}


def test_flags_and_data_of_idle_ticks_are_ignored() -> None:
    """``first``, ``last`` and ``data`` count on valid ticks only: idle ticks full of
    flags and garbage (inside packets and between them, fed whole or in pieces, also
    as 0/1 integers) give the frames and counters of a clean stream."""
    refs = packets(4, ChainConfig(threshold=100))
    v, f, la, d = bus([x.packet for x in refs], idle_prob=0.4, seed=3)
    rng = np.random.default_rng(4)
    idle = ~v
    f, la, d = f.copy(), la.copy(), d.copy()
    f[idle] = rng.random(int(idle.sum())) < 0.5
    la[idle] = rng.random(int(idle.sum())) < 0.5
    d[idle] = rng.integers(0, 1 << 16, (int(idle.sum()), d.shape[1]))
    for whole in (True, False):
        r = Readout(P.lanes, (P.height, P.width))
        stream = (v, f.astype(np.int64), la.astype(np.uint8), d)
        out = r.feed(*stream) if whole else feed_in_pieces(r, stream, seed=5)
        assert len(out) == 4
        for frame, ref in zip(out, refs, strict=True):
            same(frame, ref)
        assert r.report()["stray_words"] == 0 and r.report()["corrupt"] == 0


def test_round_trip_wide_words_and_full_size_frame() -> None:
    for p in (ChainParams(64, 128, 32), ChainParams(32, 256, 64)):  # (the detector's widths)
        refs = packets(3, ChainConfig(binning=True), p)
        out = Readout(p.lanes, (p.height, p.width)).feed(*bus([x.packet for x in refs],
                                                              idle_prob=0.1))
        for frame, ref in zip(out, refs, strict=True):
            same(frame, ref)
    big = ChainParams(1024, 1024, 16)
    tables = ChainTables(dark=np.full((1024, 1024), 3), gain=np.full((1024, 1024), 20000),
                         mask=np.zeros((1024, 1024), bool))
    ref = reference_frame(np.random.default_rng(2).integers(0, PIXEL_MAX + 1, (1024, 1024)),
                          big, ChainConfig(threshold=5), tables, frame_number=0, timestamp=77)
    r = Readout(16, (1024, 1024))
    v, f, la, d = bus([ref.packet])
    (frame,) = r.feed(v[:30000], f[:30000], la[:30000], d[:30000]) + r.feed(
        v[30000:], f[30000:], la[30000:], d[30000:])
    same(frame, ref)


def test_feed_outputs_takes_a_run_batch_dict() -> None:
    refs = packets(2)
    v, f, la, d = bus([x.packet for x in refs])
    r = Readout(P.lanes)
    out = r.feed_outputs({"packet.valid": v, "packet.first": f, "packet.last": la,
                          "packet.data": d})
    assert [x.frame_number for x in out] == [0, 1]
    with pytest.raises(KeyError, match=r"no signal 'out.valid' in the outputs"):
        r.feed_outputs({"packet.valid": v}, bus="out")


# -- corruption is detected, counted, and good frames around it come out -------------------

def run(words_list: list[np.ndarray], bare: frozenset[int] = frozenset(),
        no_last: frozenset[int] = frozenset(), **kw: object) -> tuple[Readout, list[ReadoutFrame]]:
    r = Readout(P.lanes, (P.height, P.width), **kw)  # type: ignore[arg-type]
    stream = bus(words_list, idle_prob=0.2, bare=bare, no_last=no_last)
    return r, feed_in_pieces(r, stream, max_piece=25)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 70_000), st.integers(0, 2**32 - 1), st.sampled_from(["<u2", ">u2",
                                                                            "<u4", ">i8"]))
def test_the_crcs_are_zlibs(words: int, seed: int, dtype: str) -> None:
    """The packet CRC and the frames' CRC-32 (ISA-L's code) are zlib.crc32 of the same
    little-endian bytes, at every length (a few words to megabytes: the folding code's
    head, body and tail) and whatever the frames' byte order."""
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 1 << 16, (words, 2), dtype=np.uint16)
    assert pk.packet_crc(w) == zlib.crc32(w.astype("<u2").tobytes()[:-4])
    frames = rng.integers(0, 1 << 15, (2, 1, words // 2 + 1)).astype(dtype)
    assert frame_crc32(frames).tolist() == [
        zlib.crc32(f.astype(np.dtype(dtype).newbyteorder("<")).tobytes()) for f in frames]
    big = rng.integers(0, 1 << 16, ((3 << 20) // 4 + words % 17, 2), dtype=np.uint16)
    assert pk.packet_crc(big) == zlib.crc32(big.astype("<u2").tobytes()[:-4])


def test_images_decoded_into_the_slots_of_a_batch() -> None:
    """``decode_into``: the good frames' images are written into the slots in order (a
    corrupt packet uses none), each frame's image is its slot; past the last slot, with
    ``None`` again, or for a frame of another shape, the images are new arrays."""
    refs = packets(6)
    words = [x.packet.copy() for x in refs]
    words[1][3, 7] ^= 1 << 9  # a CRC error: frame 1 never arrives
    r = Readout(P.lanes, (P.height, P.width))
    slots = np.full((3, P.height, P.width), 7, np.uint16)
    r.decode_into(slots)
    out = feed_in_pieces(r, bus(words[:5], idle_prob=0.3))
    assert [x.frame_number for x in out] == [0, 2, 3, 4] and r.decoded_into == 3
    for frame in out:
        same(frame, refs[frame.frame_number])
    for i, frame in enumerate(out[:3]):
        assert frame.image.base is slots and np.shares_memory(frame.image, slots[i])
    assert not np.shares_memory(out[3].image, slots)
    r.decode_into(None)
    (last,) = r.feed(*bus(words[5:]))
    same(last, refs[5])
    assert not np.shares_memory(last.image, slots) and r.decoded_into == 0
    binned = packets(1, ChainConfig(binning=True), first_frame=6)
    r.decode_into(np.zeros((2, P.height, P.width), np.uint16))
    (small,) = r.feed(*bus([binned[0].packet]))
    same(small, binned[0])
    assert small.image.shape == (P.height // 2, P.width // 2) and r.decoded_into == 0


@pytest.mark.parametrize(("images", "match"), [
    (np.zeros((2, 8, 64), np.uint32), r"uint32 of shape \(2, 8, 64\)"),
    (np.zeros((8, 64), np.uint16), r"uint16 of shape \(8, 64\)"),
    (np.zeros((2, 8, 64), np.uint16)[:, :, ::2], r"uint16 of shape \(2, 8, 32\), not "
                                                  r"C-contiguous$"),
    (np.broadcast_to(np.zeros(64, np.uint16), (2, 8, 64)), r"not C-contiguous, read-only$"),
    ([[[0]]], r"\[\[\[0\]\]\]$"),
])
def test_decode_into_refuses_what_it_cannot_decode_into(images: object, match: str) -> None:
    with pytest.raises(ValueError, match=r"Readout.decode_into: images must be a writeable "
                                         r"C-contiguous \(n, rows, cols\) uint16 array, got .*"
                                         + match):
        Readout(P.lanes, (P.height, P.width)).decode_into(images)  # type: ignore[arg-type]


def test_decode_packet_writes_out_only_for_a_good_packet_of_its_shape() -> None:
    ref = packets(1)[0]
    out = np.full((P.height, P.width), 5, np.uint16)
    frame = decode_packet(ref.packet, P.lanes, (P.height, P.width), out=out)
    assert frame.image is out
    np.testing.assert_array_equal(out, ref.image)
    bad = ref.packet.copy()
    bad[2, 1] ^= 1
    out[...] = 5
    with pytest.raises(PacketError, match="crc"):
        decode_packet(bad, P.lanes, out=out)
    assert (out == 5).all()
    with pytest.raises(ValueError, match=r"out has shape \(8, 32\), the packet's image is 8×64"):
        decode_packet(ref.packet, out=np.zeros((8, 32), np.uint16))
    with pytest.raises(ValueError, match="out must be a writeable C-contiguous 2-D uint16"):
        decode_packet(ref.packet, out=np.zeros((8, 64), np.int64))


def test_flipped_payload_bit_is_a_crc_error() -> None:
    refs = packets(5)
    words = [x.packet.copy() for x in refs]
    words[2][3, 7] ^= 1 << 9
    r, out = run(words)
    assert [x.frame_number for x in out] == [0, 1, 3, 4]
    for frame in out:
        same(frame, refs[frame.frame_number])
    assert (r.good, r.corrupt, r.dropped) == (4, 1, 0)
    assert r.corrupt_by_check == {"crc": 1}
    (err,) = r.errors
    assert err.check == "crc" and err.frame_number == 2
    assert "trailer CRC" in err.message and "computed" in err.message


def test_flipped_frame_number_is_detected_with_and_without_its_crc() -> None:
    refs = packets(6)
    words = [x.packet.copy() for x in refs]
    words[1][0, 2] ^= 1 << 4                       # frame 1 claims to be 17: CRC fails
    words[3][0, 2] = 1                             # frame 3 claims to be 1, CRC fixed
    words[3] = fix_crc(words[3])
    r, out = run(words)
    assert [x.frame_number for x in out] == [0, 2, 4, 5]
    assert r.corrupt_by_check == {"crc": 1, "sequence": 1}
    assert [(e.check, e.frame_number) for e in r.errors] == [("crc", 17), ("sequence", 1)]
    assert "frame number 1 repeats or goes back (expected 3)" in r.errors[1].message
    assert r.dropped == 0                          # both gaps are accounted for


def test_missing_frame_is_counted_as_dropped() -> None:
    refs = packets(6)
    r, out = run([x.packet for i, x in enumerate(refs) if i not in (2, 4)])
    assert [x.frame_number for x in out] == [0, 1, 3, 5]
    assert (r.good, r.corrupt, r.dropped) == (4, 0, 2)
    # a packet numbered forward with a good CRC is passed on, and the gap is counted
    words = [x.packet for x in refs]
    words[2] = words[2].copy()
    words[2][0, 2] = 9
    r, out = run([fix_crc(words[2]), words[5]], first_frame=None)
    assert [x.frame_number for x in out] == [9] and r.corrupt_by_check == {"sequence": 1}


def test_truncated_packet_is_corrupt() -> None:
    refs = packets(5)
    words = [x.packet for x in refs]
    words[2] = words[2][:-3]                       # no trailer: the next `first` cuts it
    r, out = run(words, no_last=frozenset({2}))
    assert [x.frame_number for x in out] == [0, 1, 3, 4]
    assert r.corrupt_by_check == {"truncated": 1} and r.dropped == 0
    assert r.errors[0].frame_number == 2
    # a packet with its last word but missing payload words fails the length check
    words = [x.packet for x in refs]
    words[1] = np.concatenate([words[1][:3], words[1][5:]])
    r, out = run(words)
    assert [x.frame_number for x in out] == [0, 2, 3, 4]
    assert r.corrupt_by_check == {"length": 1}
    assert "41 words, expected 43" in r.errors[0].message


def test_bad_magic_is_corrupt() -> None:
    refs = packets(4)
    words = [x.packet.copy() for x in refs]
    words[1][0, 0] = 0x1234
    words[1] = fix_crc(words[1])
    r, out = run(words)
    assert [x.frame_number for x in out] == [0, 2, 3]
    assert r.corrupt_by_check == {"magic": 1}
    assert r.errors[0].frame_number is None
    assert "header lane 0 is 0x1234, expected 0x5ae1" in r.errors[0].message


def test_framing_error_flag_is_passed_on_and_counted() -> None:
    raw = raw_frames(3)
    refs = [reference_frame(x, P, frame_number=i, framing_error=i == 1)
            for i, x in enumerate(raw)]
    r, out = run([x.packet for x in refs])
    assert [x.framing_error for x in out] == [False, True, False]
    assert r.framing_errors == 1 and r.good == 3 and r.corrupt == 0


def test_stray_words_and_overrun() -> None:
    refs = packets(3)
    stray = np.ones((4, 16), np.uint16)
    r, out = run([stray, refs[0].packet, stray, refs[1].packet, refs[2].packet],
                 bare=frozenset({0, 2}))
    assert len(out) == 3 and r.stray_words == 8 and r.corrupt == 0
    # a packet whose last word never comes is cut off after the longest possible packet
    r = Readout(P.lanes, (P.height, P.width))
    no_last = np.concatenate([refs[0].packet[:-1]] + [refs[1].packet[1:-1]] * 3)
    v, f, la, d = bus([no_last])
    la[:] = False
    assert r.feed(v, f, la, d) == []
    assert r.corrupt_by_check == {"overrun": 1} and not r.in_packet
    assert r.feed(*bus([refs[1].packet]))[0].frame_number == 1


def test_lost_last_packets_are_counted_once_the_sender_settles() -> None:
    refs = packets(5)
    # the last two packets never arrive: no later frame number shows the gap ...
    r, out = run([x.packet for x in refs[:3]])
    assert [x.frame_number for x in out] == [0, 1, 2] and r.dropped == 0
    # ... until the sender says it sent five
    assert r.settle(5) == 2
    assert (r.good, r.corrupt, r.dropped, r.expected_frame) == (3, 0, 2, 5)
    assert r.settle(5) == 0                        # settling again counts nothing twice
    # the next good frame carries the losses before it
    (later,) = packets(1, first_frame=5)
    (frame,) = r.feed(*bus([later.packet]))
    assert frame.frame_number == 5 and frame.lost_before == 2


def test_last_packet_without_its_last_word_is_truncated_on_settle() -> None:
    refs = packets(3)
    words = [x.packet for x in refs]
    r, out = run(words, no_last=frozenset({2}))
    assert [x.frame_number for x in out] == [0, 1] and r.in_packet and r.corrupt == 0
    assert r.settle(3) == 1
    assert r.corrupt_by_check == {"truncated": 1} and r.dropped == 0 and not r.in_packet
    assert r.errors[-1].frame_number == 2 and "never arrived" in r.errors[-1].message


def test_lost_before_counts_corrupt_and_missing_frames_per_frame() -> None:
    refs = packets(7)
    words = [x.packet.copy() for x in refs]
    words[1][4, 3] ^= 1                            # corrupt
    del words[3]                                   # missing
    r, out = run(words)
    assert [(x.frame_number, x.lost_before) for x in out] == [(0, 0), (2, 1), (4, 1), (5, 0),
                                                              (6, 0)]
    assert (r.corrupt, r.dropped) == (1, 1)
    with pytest.raises(TypeError, match="next_frame must be an int"):
        r.settle(2.5)  # type: ignore[arg-type]


def test_frame_numbers_wrap_at_32_bits() -> None:
    refs = packets(4, first_frame=0xFFFF_FFFE)
    r = Readout(P.lanes, first_frame=0xFFFF_FFFE)
    out = r.feed(*bus([x.packet for x in refs]))
    assert [x.frame_number for x in out] == [0xFFFF_FFFE, 0xFFFF_FFFF, 0, 1]
    assert r.dropped == 0 and r.corrupt == 0
    r.expect(7)
    assert r.expected_frame == 7
    r.feed(*bus([refs[0].packet]))                 # 0xFFFFFFFE is before 7 (mod 2**32)
    assert r.corrupt_by_check == {"sequence": 1}
    (later,) = packets(1, first_frame=10)
    assert [x.frame_number for x in r.feed(*bus([later.packet]))] == [10]
    assert r.dropped == 2                          # 7, 8, 9 minus the bad packet


def test_readout_argument_errors() -> None:
    with pytest.raises(ValueError, match="Readout: lanes must be an even int >= 16, got 8"):
        Readout(8)
    with pytest.raises(ValueError, match="Readout: lanes must be an even int >= 16, got 17"):
        Readout(17)
    with pytest.raises(ValueError, match="Readout: sensor_shape must be"):
        Readout(16, (0, 64))
    r = Readout(16)
    with pytest.raises(ValueError, match=r"Readout.feed: data has shape \(5, 8\), expected "
                                         r"\(5, 16\)"):
        r.feed(np.ones(5, bool), np.zeros(5, bool), np.zeros(5, bool), np.zeros((5, 8)))
    with pytest.raises(ValueError, match=r"Readout.feed: first has shape \(4,\)"):
        r.feed(np.ones(5, bool), np.zeros(4, bool), np.zeros(5, bool), np.zeros((5, 16)))


# -- decode_packet's checks, one message each ----------------------------------------------

def test_decode_packet_messages() -> None:
    good = packets(1)[0].packet

    def bad(change: tuple[int, int, int], crc: bool = True) -> np.ndarray:
        w = good.copy()
        w[change[0], change[1]] = change[2]
        return fix_crc(w) if crc else w

    cases = [
        (good[:, :8], "lanes", "words have 8 lanes, an even number of at least 16 expected"),
        (np.zeros((3, 17), np.uint16), "lanes", "words have 17 lanes, an even number"),
        (good[:1], "length", r"1 word\(s\): a packet has at least a header and a trailer"),
        (good.astype(float), "structure", "packet words must be integers, got dtype float64"),
        (good.astype("m8[ns]"), "structure", r"must be integers, got dtype timedelta64\[ns\]"),
        (good.astype(bool), "structure", "packet words must be integers, got dtype bool"),
        (good.ravel(), "structure", "a packet is a 2-D"),
        (good.astype(np.int64) + 0x10000, "range", "lane values must be 16-bit"),
        (bad((0, 1, 1 << 8 | 16)), "version", "packet version 1, expected 2"),
        (bad((0, 1, 2 << 8 | 17)), "lanes", "header says 17 lanes, words have 16"),
        (bad((0, 7, 0)), "shape", r"output shape 0×64 is empty"),
        (bad((0, 7, 4)), "shape", r"header shape 4×64, expected 8×64 for a 8×64 sensor "
                                  r"\(binning off\)"),
        (bad((0, 9, 1)), "shape", r"expected 4×32 .* \(binning on\)"),
        (bad((-1, 0, 3)), "word_count", "trailer counts 3 words before it, the packet has 42"),
        (bad((-1, 0, 3), crc=False), "crc", "trailer CRC 0x[0-9a-f]{8}, computed"),
        (bad((5, 0, 1), crc=False), "crc", "trailer CRC 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}"),
        (bad((0, 13, 1)), "reserved", "a reserved lane is not zero"),
        (bad((-1, 9, 1)), "reserved", "a reserved lane is not zero"),
        (bad((-2, 15, 1)), "reserved", "a reserved lane is not zero"),    # lanes ≥ 136
        (bad((-1, 2, 4)), "reserved", "undefined flag bits: header 0x0, trailer 0x4"),
        # every trailer field is under the CRC: a flag flipped on the link is a CRC error
        (bad((-1, 2, 2), crc=False), "crc", "trailer CRC 0x[0-9a-f]{8}, computed"),
        (bad((-1, 9, 1), crc=False), "crc", "trailer CRC"),
        (bad((-10, 8, int(good[-10, 8]) ^ 1)), "histogram", "histogram counts .* pixels, the image has 512"),
    ]
    for words, check, match in cases:
        with pytest.raises(PacketError, match=match) as e:
            decode_packet(words, 16, (8, 64))
        assert e.value.check == check, (check, str(e.value))
    with pytest.raises(PacketError, match="words have 16 lanes, expected 32"):
        decode_packet(good, 32)
    frame = decode_packet(good)
    assert frame.frame_number == 0 and frame.image.shape == (8, 64)


def test_packet_from_bytes() -> None:
    good = packets(1)[0].packet
    frame = decode_packet(packet_from_bytes(good.astype("<u2").tobytes(), 16))
    np.testing.assert_array_equal(frame.image, packets(1)[0].image)
    with pytest.raises(PacketError, match="5 bytes is not a whole number of 32-byte words"):
        packet_from_bytes(b"12345", 16)
    with pytest.raises(PacketError, match="lanes must be an even int >= 16"):
        packet_from_bytes(b"", 4)


# -- fuzz: the decoder only ever says PacketError ------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from([16, 17, 32]))
def test_random_bytes_only_raise_packet_error(data: bytes, lanes: int) -> None:
    with contextlib.suppress(PacketError):
        decode_packet(packet_from_bytes(data, lanes), lanes)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(-(1 << 70), 1 << 70), min_size=0, max_size=20),
                max_size=60))
def test_random_nested_lists_only_raise_packet_error(rows: list[list[int]]) -> None:
    with contextlib.suppress(PacketError):
        decode_packet(rows)


GOOD = reference_stream(raw_frames(2), P, ChainConfig(binning=True)).results


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, 1),
       edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 15),
                                st.integers(0, 0xFFFF)), max_size=4),
       cut=st.integers(-3, 3), recrc=st.booleans())
def test_mutated_packets_give_a_frame_or_packet_error(which: int, edits: list[tuple[int, int, int]],
                                                      cut: int, recrc: bool) -> None:
    w = GOOD[which].packet.copy()
    for row, lane, value in edits:
        w[row % len(w), lane] = value
    if cut < 0:
        w = w[:cut]
    elif cut > 0:
        w = np.concatenate([w, np.zeros((cut, 16), np.uint16)])
    if recrc and len(w) > 1:
        w = fix_crc(w)
    try:
        frame = decode_packet(w, 16, (P.height, P.width))
    except PacketError:
        return
    # what the decoder accepts is self-consistent
    assert frame.histogram.sum() == frame.image.size
    if not edits and cut == 0:
        same(frame, GOOD[which])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans(),
                          st.integers(0, 0xFFFF)), max_size=200))
def test_random_bus_streams_never_raise(ticks: list[tuple[bool, bool, bool, int]]) -> None:
    n = len(ticks)
    v = np.array([t[0] for t in ticks], bool)
    f = np.array([t[1] for t in ticks], bool)
    la = np.array([t[2] for t in ticks], bool)
    d = np.repeat(np.array([t[3] for t in ticks], np.int64).reshape(n, 1), 16, axis=1)
    r = Readout(16, (P.height, P.width))
    assert r.feed(v, f, la, d.reshape(n, 16)) == []
    rep = r.report()
    assert rep["good"] == 0
    n_words = int(v.sum())
    assert rep["stray_words"] <= n_words


def test_padded_lines_decode_and_padding_must_be_zero() -> None:
    """A line whose width is not a multiple of the lanes is whole words: its padding
    lanes travel as zeros, are checked, and are cut off."""
    from fpga.designs.params import ChainParams
    from fpga.designs.reference import reference_frame

    p = ChainParams(6, 40, 16, binning=False)   # 3 words a line, 8 lanes of padding
    raw = np.arange(6 * 40).reshape(6, 40) * 7
    want = reference_frame(raw, p)
    assert want.packet.shape[0] == 1 + 6 * 3 + -(-136 // 16) + 1
    got = decode_packet(want.packet, 16, (6, 40))
    assert np.array_equal(got.image, want.image) and got.image.shape == (6, 40)
    assert int(got.histogram.sum()) == 6 * 40   # padding is not counted
    bad = want.packet.copy()
    bad[1 + 2, 9] = 1                            # a padding lane of line 0's last word
    from dataflow.packets import packet_crc

    bad[-1, -2:] = [packet_crc(bad) & 0xFFFF, packet_crc(bad) >> 16]
    with pytest.raises(PacketError, match="a reserved lane is not zero") as e:
        decode_packet(bad, 16, (6, 40))
    assert e.value.check == "reserved"


@pytest.mark.parametrize("idle_prob", [0.0, 0.3])
def test_a_packet_fed_whole_is_read_as_fed_a_tick_at_a_time(idle_prob: float) -> None:
    """``feed`` of a call holding one whole packet (as a fly acquisition feeds a frame a
    run) takes a shorter path: its frames, counters and errors are those of the same
    ticks fed one at a time, with stray words before and after the packet, idle ticks in
    it, a CRC error, a frame number that skips, a packet too long and a one-word one."""
    refs = packets(5)
    words = [x.packet.copy() for x in refs]
    words[1][3, 7] ^= 1 << 9  # CRC
    long = np.concatenate([words[4][:-1], words[4]])  # no last word within the limit
    one_word = words[0][:1]
    calls = [[words[0]], [np.zeros((3, P.lanes), np.uint16), words[1]], [words[2]],
             [words[4], np.ones((2, P.lanes), np.uint16)], [long], [one_word], [words[3]]]
    whole, ticked = Readout(P.lanes, (P.height, P.width)), Readout(P.lanes, (P.height, P.width))
    got: list[ReadoutFrame] = []
    want: list[ReadoutFrame] = []
    for i, packet_words in enumerate(calls):
        stray = frozenset(range(1, len(packet_words))) if i == 3 else \
            frozenset({0}) if len(packet_words) > 1 else frozenset()
        v, f, la, d = bus(packet_words, idle_prob=idle_prob, seed=i, bare=stray)
        got += whole.feed(v, f, la, d)
        for t in range(len(v)):
            want += ticked.feed(v[t:t + 1], f[t:t + 1], la[t:t + 1], d[t:t + 1])
    assert whole.report() == ticked.report()
    assert whole.report()["corrupt_by_check"] == {"crc": 1, "overrun": 1, "length": 1,
                                                  "sequence": 1}
    assert whole.max_packet_words is not None  # (the words past the cut-off are stray)
    assert whole.stray_words == 5 + len(long) - (whole.max_packet_words + 1)
    assert whole.dropped == 1
    assert [x.frame_number for x in got] == [x.frame_number for x in want] == [0, 2, 4]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        assert (a.lost_before, a.crc, a.timestamp) == (b.lost_before, b.crc, b.timestamp)
