"""Build-time parameters of the detector front-end firmware and the packet format constants.

Everything the firmware, its numpy reference model, the sensor model and the readout
backend must agree on lives here; docs/firmware.md is the prose version.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

PIXEL_BITS = 20
"""Depth of the sensor's pixel counters (Pilatus-style): counts saturate at 2**20 - 1."""
PIXEL_MAX = (1 << PIXEL_BITS) - 1
OUT_BITS = 16
"""Width of a corrected output pixel."""
OUT_MAX = (1 << OUT_BITS) - 1
GAIN_FRAC = 14
"""Fraction bits of a gain-table entry (``UFix[2, 14]``: 1.0 is 16384, at most 3.99994)."""
GAIN_ONE = 1 << GAIN_FRAC
HIST_BINS = 64
"""Bins of the on-FPGA intensity histogram: bin = value >> HIST_SHIFT."""
HIST_SHIFT = OUT_BITS - 6
HIST_BANKS = 4
"""Banks of the histogram counters in the reduction stage: lane j counts into bank
j mod HIST_BANKS, and the banks are added when the frame ends (neighbouring lanes, which
often fall in the same bin, update different counters)."""
MAGIC = 0x5AE1
"""Lane 0 of every packet header."""
VERSION = 2
"""Packet format version (header lane 1, high byte). Version 2: the CRC is the trailer's
last two lanes and covers every byte before it, trailer fields included."""
HEADER_LANES = 12
"""Lanes of the header that carry information (the rest of the header word is zero)."""
REDUCTION_FIELDS = 8
"""Lanes before the histogram in the reduction words: ROI sum (3), saturated count (2),
reserved (3)."""
REDUCTION_LANES = REDUCTION_FIELDS + 2 * HIST_BINS
MIN_LANES = 16
TRAILER_FIELDS = 3
"""Lanes at the start of the trailer that carry information: word count (2), flags (1); the
CRC takes the last two lanes, the lanes between are zero."""


class Reg(enum.Enum):
    """Configuration registers, written through the ``ctrl`` bus (value in ``value``)."""

    THRESHOLD = 0
    ROI_X0 = 1
    ROI_Y0 = 2
    ROI_X1 = 3
    ROI_Y1 = 4
    BINNING = 5


class Table(enum.Enum):
    """Calibration tables, written a word (``lanes`` pixels) at a time through ``tables``."""

    DARK = 0
    GAIN = 1
    MASK = 2


class Flags(enum.IntFlag):
    """Bits of header lane 9 (``BINNING``) and trailer lane 2 (the others)."""

    BINNING = 1
    FRAMING_ERROR = 2


@dataclass(frozen=True)
class ChainParams:
    """Frame shape, pixels per tick (``lanes``) and stages the firmware is built for.

    ``lanes`` is at least 16 (the header fits one word). With the 2×2 ``binning`` stage
    (the default), ``width`` must be a multiple of ``2 * lanes`` and ``height`` even
    (binning keeps whole words). Without it (``binning=False``, what a multi-module
    detector's modules use, see :mod:`fpga.designs.layout`) any shape works: a line whose
    width is not a multiple of ``lanes`` is sent as whole words, the unused lanes of its
    last word are padding (``pad`` of them: 0 on the link, 0 in the packet, not counted
    by the reductions, cut off by the readout).

    ``lanes`` defaults to 16, the narrowest; a one-chain detector's firmware is
    :func:`detector_params` (64 lanes where the width allows).
    """

    height: int = 64
    width: int = 64
    lanes: int = 16
    binning: bool = True

    def __post_init__(self) -> None:
        for name in ("height", "width", "lanes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"ChainParams.{name} must be a positive int, not {v!r}")
        if not isinstance(self.binning, bool):
            raise ValueError(f"ChainParams.binning must be a bool, not {self.binning!r}")
        if self.lanes < MIN_LANES:
            raise ValueError(f"ChainParams.lanes must be >= {MIN_LANES} (the packet header is "
                             f"one word of {HEADER_LANES} lanes), not {self.lanes}")
        if self.lanes > 0xFF:
            raise ValueError(f"ChainParams.lanes must be <= 255 (header lane 1 holds it in "
                             f"8 bits), not {self.lanes}")
        if self.lanes % 2:
            raise ValueError(f"ChainParams.lanes must be even (the CRC takes two lanes at a "
                             f"time), not {self.lanes}")
        if self.binning and self.width % (2 * self.lanes):
            raise ValueError(f"ChainParams.width ({self.width}) must be a multiple of "
                             f"2 * lanes ({2 * self.lanes}) with the binning stage "
                             "(binning=False allows any width)")
        if self.binning and self.height % 2:
            raise ValueError(f"ChainParams.height ({self.height}) must be even with the "
                             "binning stage (binning=False allows any height)")
        if self.height > 0xFFFF or self.line_width > 0xFFFF:
            raise ValueError("ChainParams: height and width must fit 16 bits")

    @property
    def line_width(self) -> int:
        """Pixels of a line on the link and in the packet, padding included."""
        return self.words_per_line * self.lanes

    @property
    def pad(self) -> int:
        """Padding lanes at the end of each line (0 when ``width`` is a multiple of K)."""
        return self.line_width - self.width

    @property
    def words_per_line(self) -> int:
        """Link words per sensor line (the last one padded when K does not divide it)."""
        return -(-self.width // self.lanes)

    @property
    def words_per_frame(self) -> int:
        """Link words per sensor frame (and payload words without binning)."""
        return self.height * self.words_per_line

    def out_shape(self, binning: bool) -> tuple[int, int]:
        """Shape of the output image."""
        self.check_binning(binning)
        return (self.height // 2, self.width // 2) if binning else (self.height, self.width)

    def check_binning(self, binning: bool) -> None:
        """``ValueError`` when ``binning`` is asked of a chain built without the stage."""
        if binning and not self.binning:
            raise ValueError(f"binning: this firmware ({self.height}×{self.width}, "
                             f"{self.lanes} lanes) is built without the 2×2 binning stage")

    def payload_words(self, binning: bool) -> int:
        """Payload words of one packet (each line whole words, padding included)."""
        h, w = self.out_shape(binning)
        return h * -(-w // self.lanes)

    @property
    def reduction_words(self) -> int:
        """Words carrying the ROI sum, saturated count and histogram."""
        return -(-REDUCTION_LANES // self.lanes)

    def packet_words(self, binning: bool) -> int:
        """Words of one packet: header, payload, reductions, trailer."""
        return 1 + self.payload_words(binning) + self.reduction_words + 1

    @property
    def frame_gap(self) -> int:
        """Idle link ticks the sensor must leave between the last word of a frame and the
        next frame's first word (the packetiser emits the reductions and the trailer in
        them)."""
        return self.reduction_words + 8

    @property
    def table_depth(self) -> int:
        """Words in each calibration table (one word per link word of a frame)."""
        return self.words_per_frame


DETECTOR_LANES = (64, 32, 16)
"""Datapath widths of a one-chain detector's firmware (``devices.FirmwareDetector``,
``devices.Beamline``, the queue's and the demo's), widest first: :func:`detector_params`
takes the first the frame's width allows. Parallel pixel lanes are what real readout FPGAs
widen; each doubling halves the ticks of a frame: the simulated firmware costs 2.5 ms per
512×512 frame at 16 lanes, 1.5–1.6 at 32 and 1.4 at 64 (compiled, one thread, CPU time;
see docs/firmware.md). :class:`ChainParams` itself keeps 16 lanes by default: it is the
firmware's build parameter, which the firmware's own tests give for the width they test."""


def detector_params(height: int, width: int) -> ChainParams:
    """The firmware of a one-chain detector of ``height`` × ``width`` pixels: the 2×2 binning
    stage and the widest of :data:`DETECTOR_LANES` whose binned words the width fills
    (64 lanes when the width is a multiple of 128, 32 when of 64, 16 when of 32 only).

    ``ValueError`` (one message saying which widths work) for any other width, an odd
    height, or a shape past 16 bits.
    """
    narrowest = DETECTOR_LANES[-1]
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in (height, width)):
        return ChainParams(height, width, narrowest)  # its own message
    if height % 2:
        raise ValueError(f"ChainParams.height ({height}) must be even for the detector's "
                         "firmware (its 2×2 binning stage takes pairs of lines)")
    for lanes in DETECTOR_LANES:
        if width % (2 * lanes) == 0:
            return ChainParams(height, width, lanes)
    step = 2 * narrowest
    below, above = width // step * step, (width // step + 1) * step
    choices = f"{below} or {above}" if below else f"{above}"
    raise ValueError(f"ChainParams.width ({width}) must be a multiple of {step} for the "
                     f"detector's firmware (its 2×2 binning stage takes pairs of "
                     f"{narrowest}-pixel words; a multiple of {2 * DETECTOR_LANES[0]} gets the "
                     f"{DETECTOR_LANES[0]}-lane datapath), e.g. {choices}")
