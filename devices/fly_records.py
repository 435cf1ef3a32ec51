"""The records a fly acquisition's threads pass on (``devices.fly``): a frame drawn, its
counts and link (a worker's draw → the firmware stage), a decoded batch (firmware stage →
writer) and the decoded frames waiting to fill a batch (firmware stage);
:func:`match_frames` pairs a batch's decoded frames with their items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dataflow.packets import ReadoutFrame
from dataflow.readout import FRAME_MOD

from .fly_params import Counts
from .sensor_link import LinkStream


@dataclass(frozen=True)
class Item:
    """A frame drawn, waiting for the firmware stage."""

    index: int
    wall: float
    """Wall-clock moment of the trigger (when the simulation acts on it)."""
    clock: float
    """The trigger on the acquisition clock (the frame's time stamp)."""
    angle: float
    counts: Counts
    link: LinkStream | None
    words: Counts | None = None
    """The frame's words in ``link`` the sensor drew the counts into (``frame_link``'s
    view), when it did: the stream goes back to the spare ones with it."""


@dataclass(frozen=True)
class Decoded:
    """A batch between the firmware and the writer."""

    items: list[Item]
    indices: list[int]
    """Each frame's index in the acquisition (from the firmware's frame counter)."""
    out: list[ReadoutFrame]
    images: npt.NDArray[np.uint16]
    counts: npt.NDArray[np.uint32]
    """The sensor counts of the batch's last frame (a copy: its link is reused)."""
    slots: npt.NDArray[np.uint16] | None
    """The batch array ``images`` is the first frames of, when the readout decoded into
    it (it goes back to the spare ones once written)."""


@dataclass
class Held:
    """Decoded frames waiting (in the first ``len(out)`` slots of ``slots``) for more to
    fill a batch for the writer; ``since``: when the first arrived (``time.monotonic``).
    The link of the last item is not reused before its counts are copied
    (``FlyAcquisition._hand_over``)."""

    slots: npt.NDArray[np.uint16]
    since: float
    items: list[Item]
    indices: list[int]
    out: list[ReadoutFrame]


__all__ = ["Decoded", "Held", "Item"]


def match_frames(batch: list[Item], out: list[ReadoutFrame], first: int, who: str
                 ) -> tuple[list[Item], list[int], list[Item]]:
    """``(arrived, indices, lost)``: the items of ``batch`` whose frames arrived
    (``out``, in order), their indices in the acquisition by the firmware's frame
    counter (``first``: the counter of index 0), and the items whose frames did not.
    A frame for no item of the batch is a ``RuntimeError`` (``who`` names the detector)."""
    by_index = {item.index: item for item in batch}
    indices = [(frame.frame_number - first) % FRAME_MOD for frame in out]
    if any(i not in by_index for i in indices) or indices != sorted(indices):
        raise RuntimeError(f"{who}: firmware frames {[f.frame_number for f in out]} (triggers "
                           f"{indices}) do not match the triggers of the batch "
                           f"{sorted(by_index)}")
    arrived = set(indices)
    return ([by_index[i] for i in indices], indices,
            [item for item in batch if item.index not in arrived])
