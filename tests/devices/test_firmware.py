"""The detector board: link words built ahead (as the fly scan's sensor thread does) give
the same frames as counts sent directly, and link faults are caught on either path."""

from __future__ import annotations

import numpy as np
import pytest

from devices.firmware import Firmware, FirmwareError
from devices.sensor import SensorModel
from fpga.designs.params import ChainParams

P = ChainParams(height=32, width=32, lanes=16)


def _counts(n: int) -> list[np.ndarray]:
    sensor = SensorModel(P, seed=3)
    flux = np.linspace(0.0, 4000.0, P.height * P.width).reshape(P.height, P.width)
    return [sensor.expose(flux, 0.01) for _ in range(n)]


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
