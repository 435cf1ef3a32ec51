"""The readout's counters, frames and errors do not depend on how the packet stream is split
into ``feed`` calls: the batches ``run_batch`` and ``acquire`` hand over decide the
split, and the counters are stored in the run's HDF5 file and provenance record. The
reference is the stream fed one tick at a time."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataflow.packets import ReadoutFrame
from dataflow.readout import Readout
from fpga.designs.params import ChainParams
from fpga.designs.reference import reference_stream

P = ChainParams(height=8, width=64, lanes=16)
N = 5
_rng = np.random.default_rng(0)
PACKETS = [r.packet for r in reference_stream(
    [_rng.integers(0, 1 << 12, (P.height, P.width)) for _ in range(N)], P).results]
Stream = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
FATES = ("ok", "no_last", "no_first", "bare", "lost", "flip", "short")


def _stream(fates: list[str], strays: list[int], idles: list[int]) -> Stream:
    """The packets on the bus, each as its fate says: ``no_last``/``no_first``/``bare``
    lose flags, ``lost`` never arrives, ``flip`` has a payload bit flipped, ``short``
    lost its middle words; ``strays[i]`` flag-less words before packet i; ``idles`` idle
    ticks inserted after every word (cycled)."""
    words, first, last = [], [], []
    for i, (packet, fate) in enumerate(zip(PACKETS, fates, strict=True)):
        words.append(np.full((strays[i], P.lanes), 7, np.int64))
        first.append(np.zeros(strays[i], bool))
        last.append(np.zeros(strays[i], bool))
        if fate == "lost":
            continue
        w = packet.astype(np.int64)
        if fate == "flip":
            w = w.copy()
            w[len(w) // 2, 3] ^= 1 << 4
        elif fate == "short":
            w = np.concatenate([w[:5], w[-3:]])
        f, la = np.zeros(len(w), bool), np.zeros(len(w), bool)
        f[0] = fate not in ("no_first", "bare")
        la[-1] = fate not in ("no_last", "bare")
        words.append(w)
        first.append(f)
        last.append(la)
    d, f_words, l_words = np.concatenate(words), np.concatenate(first), np.concatenate(last)
    gaps = np.resize(np.asarray(idles or [0], int), len(d))
    tick = np.cumsum(gaps + 1) - 1
    t = int(tick[-1]) + 3 if len(d) else 3
    v, f_bus, l_bus = np.zeros(t, bool), np.zeros(t, bool), np.zeros(t, bool)
    d_bus = np.zeros((t, P.lanes), np.int64)
    v[tick], f_bus[tick], l_bus[tick], d_bus[tick] = True, f_words, l_words, d
    f_bus[~v] = np.arange(t)[~v] % 2 == 0  # flags and data of idle ticks mean nothing
    d_bus[~v] = 0xBEEF
    return v, f_bus, l_bus, d_bus


def _run(stream: Stream, cuts: list[int]) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """The readout's report (after ``settle``) and frames, the stream fed in the pieces
    between ``cuts``."""
    r = Readout(P.lanes, (P.height, P.width))
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < len(stream[0])), len(stream[0])]
    frames: list[ReadoutFrame] = []
    for a, b in pairwise(bounds):
        frames += r.feed(*(x[a:b] for x in stream))
    r.settle(N)
    return r.report(), [(fr.frame_number, fr.lost_before, fr.image.tobytes()) for fr in frames]


def test_a_packet_that_lost_its_last_word_runs_into_a_flagless_one_alike_in_any_pieces() -> None:
    """Packet 1 lost its last flag and packet 2 both: packet 1 is cut off as ``overrun``
    at the first word past the longest packet (43 words here), packet 2's other 42 words
    are stray, and its frame number is dropped — fed whole, in pieces, or tick by tick
    (once: ``truncated`` and ``overrun`` for the one packet, fed whole)."""
    stream = _stream(["ok", "no_last", "bare", "ok", "ok"], [0] * N, [0])
    assert Readout(P.lanes, (P.height, P.width)).max_packet_words == len(PACKETS[0]) == 43
    whole, frames = _run(stream, [])
    assert (whole["good"], whole["corrupt"], whole["corrupt_by_check"], whole["dropped"],
            whole["stray_words"]) == (3, 1, {"overrun": 1}, 1, 42)
    assert [f[:2] for f in frames] == [(0, 0), (3, 2), (4, 0)]
    for pieces in (1, 7, 40):
        assert _run(stream, list(range(0, len(stream[0]), pieces))) == (whole, frames), pieces


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fates=st.lists(st.sampled_from(FATES), min_size=N, max_size=N),
       strays=st.lists(st.integers(0, 60), min_size=N, max_size=N),
       idles=st.lists(st.integers(0, 3), max_size=6),
       cuts=st.lists(st.integers(0, 600), max_size=25))
def test_counters_frames_and_errors_do_not_depend_on_the_split(
        fates: list[str], strays: list[int], idles: list[int], cuts: list[int]) -> None:
    stream = _stream(fates, strays, idles)
    reference = _run(stream, list(range(len(stream[0]))))  # one tick at a time
    assert _run(stream, cuts) == reference
    assert _run(stream, []) == reference
    report = reference[0]
    assert report["good"] == fates.count("ok")  # (an intact packet is never lost)
    assert report["good"] + report["corrupt"] + report["dropped"] >= N  # each one counted
