"""The detector board: link words built ahead (as the fly scan's sensor thread does) give
the same frames as counts sent directly, link faults are caught on either path, and the
GHDL and compiled boards number frames and report alike, across acquisitions and after
``close`` and ``configure`` (which open the board again from reset); a closed board
refuses to acquire."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from devices.firmware import Firmware, FirmwareClosedError, FirmwareError
from devices.sensor import SensorModel
from fpga.designs.params import ChainParams

from . import fly_steps

P = ChainParams(height=32, width=32, lanes=16)
T = TypeVar("T")


def _counts(n: int) -> list[np.ndarray]:
    sensor = SensorModel(P, seed=3)
    flux = np.linspace(0.0, 4000.0, P.height * P.width).reshape(P.height, P.width)
    return [sensor.expose(flux, 0.01) for _ in range(n)]


def _on_both_boards(run: Callable[[Firmware], T]) -> dict[str, T]:
    """``run(board)`` on a compiled and a GHDL board, each closed after."""
    seen = {}
    for backend in ("compiled", "ghdl"):
        fw = Firmware(P, backend)
        try:
            seen[backend] = run(fw)
        finally:
            fw.close()
    return seen


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_links_built_ahead_give_the_frames_of_direct_counts(backend: str) -> None:
    counts = _counts(3)
    direct, ahead = Firmware(P, backend), Firmware(P, backend)
    expected = direct.acquire(counts)
    links = [ahead.link([c]) for c in counts]
    assert all(link is not None for link in links)
    got = ahead.acquire(counts, links=[link for link in links if link is not None])
    assert len(got) == len(expected) == 3
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        assert (a.frame_number, a.roi_sum, a.saturated) == (b.frame_number, b.roi_sum,
                                                             b.saturated)
    assert ahead.report() == direct.report()


def test_a_fault_on_a_link_built_ahead_is_caught() -> None:
    counts = _counts(2)
    fw = Firmware(P, "interp")
    fw.inject_fault("flip")
    links = [fw.link([c]) for c in counts]
    with pytest.raises(FirmwareError, match=r"delivered 1 of 2 frames"):
        fw.acquire(counts, links=[link for link in links if link is not None])
    assert fw.report()["corrupt"] == 1


def test_the_ghdl_backend_builds_its_own_link() -> None:
    assert Firmware(P, "ghdl").link(_counts(1)) is None


@pytest.mark.parametrize("kind, check", [("drop", "dropped"), ("cut", "truncated")])
def test_the_last_packet_of_an_acquisition_lost_is_counted(kind: str, check: str) -> None:
    """No later frame number reveals a lost last packet: the board tells the readout how
    many frames it sent, so the loss is counted all the same."""
    counts = _counts(3)
    fw = Firmware(P, "compiled")
    fw.acquire(counts[:2])
    fw.inject_fault(kind)
    frames = fw.acquire(counts[2:], allow_loss=True)
    assert frames == []
    report = fw.report()
    lost = report["dropped"] if kind == "drop" else report["corrupt_by_check"].get(check, 0)
    assert lost == 1 and report["good"] == 2 and not report["in_packet"]
    (frame,) = fw.acquire(counts[:1])
    assert frame.frame_number == 3 and frame.lost_before == 1
    with pytest.raises(FirmwareError, match=r"delivered 0 of 1 frames"):
        fw.inject_fault(kind)
        fw.acquire(counts[:1])


@pytest.mark.ghdl
def test_the_ghdl_board_numbers_and_stamps_frames_on_as_the_compiled_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each GHDL acquisition runs the VHDL from reset; the board still numbers and stamps
    its frames on across acquisitions as the compiled board (never reset between them)
    does, and ``close`` removes its build folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    counts = _counts(3)
    seen = {}
    for backend in ("compiled", "ghdl"):
        fw = Firmware(P, backend)
        try:
            frames = fw.acquire(counts[:1]) + fw.acquire(counts[1:])
            seen[backend] = [(f.frame_number, f.timestamp, f.image.tobytes()) for f in frames]
            assert fw.report()["good"] == 3
        finally:
            fw.close()
    assert seen["ghdl"] == seen["compiled"]
    assert [n for n, _, _ in seen["ghdl"]] == [0, 1, 2]
    assert not list(tmp_path.glob("smeflow-firmware-*"))


@pytest.mark.ghdl
def test_a_fly_scan_on_the_ghdl_board_writes_every_frame(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several firmware batches (GHDL runs) in one fly scan: each frame is the trigger's."""
    from dataflow.hdf5 import open_frames
    from devices.beamline import Beamline
    from devices.fly import FlyParameters

    monkeypatch.setattr("devices.fly.BATCH", 2)
    bl = Beamline.create(tmp_path, params=P, backend="ghdl", time_scale=0.001)
    try:
        bl.shutter.set("open").wait(5)
        det = bl.det
        det.time_scale = 0.0  # (every trigger at once: batches of two frames)
        fly_steps.fly(det, FlyParameters(frames=3, exposure=0.05), 300)
        assert det.fly is not None
        assert [f.frame_number for f in det.fly.frames] == [0, 1, 2]
        list(det.collect_asset_docs())
        det.unstage()
        (path,) = sorted(tmp_path.rglob("*.h5"))
        with open_frames(path) as r:
            assert np.asarray(r.read()).shape == (3, P.height, P.width)
    finally:
        bl.close()


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_a_closed_board_refuses_to_acquire_until_configured_again(backend: str) -> None:
    """The review's D8: ``acquire`` after ``close`` re-configured the board silently
    (a fly running on under a closed beamline then failed with a misleading "frame 0
    arrived for trigger 62"). A closed board says so, naming ``close()``; ``configure``
    opens it again."""
    counts = _counts(1)
    fw = Firmware(P, backend)
    fw.acquire(counts)
    fw.close()
    fw.close()  # (twice is fine)
    assert fw.closed
    for what, call in (("acquire", lambda: fw.acquire(counts)),
                       ("simulate", lambda: fw.simulate(fw.link(counts)))):  # type: ignore[arg-type]
        with pytest.raises(FirmwareClosedError, match=rf"firmware \({backend}\): {what}\(\) "
                                                      r"on a board that close\(\) released; "
                                                      r"configure\(\) opens it again"):
            call()
    fw.configure(fw.config)
    assert not fw.closed
    (frame,) = fw.acquire(counts)
    assert frame.frame_number == 0


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_an_acquisition_after_close_and_configure_starts_from_reset(backend: str) -> None:
    """``close``, ``configure``, then ``acquire``: the board is initialised again
    (docs/firmware.md, "closing and re-opening"): frame 0 and the first time stamp
    again, the readout's counters from the re-open — so the loss before the close is no
    error now."""
    counts = _counts(2)
    fw = Firmware(P, backend)
    (first,) = fw.acquire(counts[:1])
    fw.inject_fault("flip")
    assert fw.acquire(counts[1:], allow_loss=True) == []
    assert fw.report()["corrupt"] == 1
    fw.close()
    fw.configure(fw.config)
    (again,) = fw.acquire(counts[1:])
    assert (again.frame_number, again.timestamp) == (first.frame_number, first.timestamp)
    assert again.lost_before == 0
    report = fw.report()
    assert (report["good"], report["corrupt"], report["last_frame_number"],
            report["expected_frame"]) == (1, 0, 0, 1)


@pytest.mark.ghdl
def test_the_ghdl_boards_readout_report_is_the_compiled_boards(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Acquisitions of 1, then 2 frames of which the first is damaged on the link: the
    same frames, counters, last and expected frame numbers and errors (frame 1 named) on
    both boards, though each GHDL run numbers its frames from 0. (The damaged packet's
    bytes differ — the VHDL's header carries its own count — so the CRC values quoted in
    the error's message do.)"""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    counts = _counts(3)

    def run(fw: Firmware) -> tuple[list[tuple[int, int, int]], dict[str, Any]]:
        got = fw.acquire(counts[:1])
        fw.inject_fault("flip")
        got += fw.acquire(counts[1:], allow_loss=True)
        report = fw.report()
        report["errors"] = [(e["check"], e["frame_number"]) for e in report["errors"]]
        return [(f.frame_number, f.timestamp, f.lost_before) for f in got], report

    seen = _on_both_boards(run)
    assert seen["ghdl"] == seen["compiled"]
    frames, report = seen["ghdl"]
    assert [f[0::2] for f in frames] == [(0, 0), (2, 1)]
    assert (report["good"], report["corrupt"], report["last_frame_number"],
            report["expected_frame"]) == (2, 1, 2, 3)
    assert report["errors"] == [("crc", 1)]


@pytest.mark.ghdl
def test_an_acquisition_after_close_is_numbered_alike_on_both_boards(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``close``, ``configure`` then ``acquire``: both boards start again from reset
    (frame 0, the first time stamp, the readout's counters from the re-open); closed,
    both refuse."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    counts = _counts(2)

    def run(fw: Firmware) -> tuple[list[tuple[int, int]], dict[str, Any]]:
        frames = fw.acquire(counts[:1])
        fw.close()
        with pytest.raises(FirmwareClosedError):
            fw.acquire(counts[1:])
        fw.configure(fw.config)
        frames += fw.acquire(counts[1:])
        return [(f.frame_number, f.timestamp) for f in frames], fw.report()

    seen = _on_both_boards(run)
    assert seen["ghdl"] == seen["compiled"]
    numbers, report = seen["ghdl"]
    assert numbers[1] == numbers[0] and numbers[0][0] == 0 and report["good"] == 1
