"""The detector packet format, software side: constants and the decoder of one packet.

The firmware (``fpga.designs``) sends one packet per frame; this module is the readout's
own copy of the format of docs/firmware.md ("The packet"), because ``dataflow`` must not
import ``fpga``. A test checks that the constants here equal ``fpga.designs.params``.

A packet is ``(n_words, K)`` 16-bit lanes: a header word, the payload (the output image
row-major, K pixels per word, each line whole words: when K does not divide the width,
the last word of a line ends in zero padding lanes), ⌈136 / K⌉ reduction words and a
trailer word whose last two lanes are the CRC-32 of every byte before them. Numbers that
span lanes are little-endian, 16 bits per lane.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from isal.isal_zlib import crc32

MAGIC = 0x5AE1
"""Header lane 0 of every packet."""
VERSION = 2
"""Packet format version understood here (header lane 1, high byte)."""
MIN_LANES = 16
"""Fewest lanes per word (the header must fit one word)."""
OUT_BITS = 16
"""Bits per output pixel (one lane)."""
HIST_BINS = 64
"""Bins of the on-FPGA histogram."""
HIST_SHIFT = OUT_BITS - 6
"""Histogram bin of a pixel: ``value >> HIST_SHIFT``."""

# Header word lanes.
H_MAGIC = 0
H_VERSION = 1
"""``VERSION << 8 | lanes``."""
H_FRAME = 2
"""Frame number, 2 lanes (32 bits)."""
H_TIMESTAMP = 4
"""Tick of the frame's start of frame on the link, 3 lanes (48 bits)."""
H_HEIGHT = 7
H_WIDTH = 8
H_FLAGS = 9
H_THRESHOLD = 10
"""Threshold register, 2 lanes."""
HEADER_LANES = 12
"""Header lanes that carry information; the rest are zero."""

# Reduction lanes (flattened over the reduction words).
R_ROI_SUM = 0
"""ROI sum, 3 lanes (48 bits)."""
R_SATURATED = 3
"""Saturated sensor pixels, 2 lanes (32 bits)."""
REDUCTION_FIELDS = 8
"""Lanes before the histogram (lanes 5–7 are reserved, zero)."""
R_HIST = REDUCTION_FIELDS
"""``hist[b]`` is lanes ``R_HIST + 2b`` (low) and ``R_HIST + 2b + 1`` (high)."""
REDUCTION_LANES = REDUCTION_FIELDS + 2 * HIST_BINS

# Trailer word lanes.
T_COUNT = 0
"""Number of words before the trailer, 2 lanes."""
T_FLAGS = 2
TRAILER_FIELDS = 3
"""Trailer lanes before the reserved ones; the last two lanes are the CRC."""
CRC_LANES = 2
"""The CRC-32 is the trailer's last two lanes: of every byte of the packet before it."""

FLAG_BINNING = 1
"""Header flags bit: the image is 2×2-binned."""
FLAG_FRAMING_ERROR = 2
"""Trailer flags bit: the firmware saw a framing error on its link in this frame."""


def reduction_words(lanes: int) -> int:
    """Words that carry the reductions for ``lanes`` lanes per word."""
    return -(-REDUCTION_LANES // lanes)


def line_words(out_width: int, lanes: int) -> int:
    """Payload words of one image line: a line is whole words, the unused lanes of its
    last word (when ``lanes`` does not divide ``out_width``) are zero padding."""
    return -(-out_width // lanes)


def packet_words(out_height: int, out_width: int, lanes: int) -> int:
    """Words of the packet of an ``out_height × out_width`` output image."""
    return 1 + out_height * line_words(out_width, lanes) + reduction_words(lanes) + 1


class PacketError(ValueError):
    """A packet failed a check. ``check`` names it (``"magic"``, ``"crc"``, …),
    ``frame_number`` is the header's frame number when the header could be read (it is
    not verified when the check that failed is the CRC)."""

    def __init__(self, check: str, message: str, frame_number: int | None = None) -> None:
        super().__init__(f"packet {check} check failed: {message}")
        self.check = check
        self.frame_number = frame_number


@dataclass(frozen=True, eq=False)
class ReadoutFrame:
    """One frame as the readout received it: header fields, the ``uint16`` output image
    and the firmware's reductions. ``flags`` is the header flags or'ed with the trailer
    flags (``FLAG_BINNING``, ``FLAG_FRAMING_ERROR``)."""

    frame_number: int
    timestamp: int
    flags: int
    threshold: int
    image: npt.NDArray[np.uint16] = field(repr=False)
    roi_sum: int
    saturated: int
    histogram: npt.NDArray[np.int64] = field(repr=False)
    crc: int
    lost_before: int = 0
    """Frames lost on the link (corrupt or missing packets) since the previous good frame
    (set by ``dataflow.readout.Readout``; 0 from ``decode_packet`` alone)."""

    @property
    def binning(self) -> bool:
        """The image is 2×2-binned."""
        return bool(self.flags & FLAG_BINNING)

    @property
    def framing_error(self) -> bool:
        """The firmware flagged a framing error on its link during this frame."""
        return bool(self.flags & FLAG_FRAMING_ERROR)


def _join(lanes: list[int]) -> int:
    """Little-endian 16-bit lanes → int."""
    value = 0
    for lane in reversed(lanes):
        value = value << 16 | lane
    return value


def packet_from_bytes(data: bytes | bytearray | memoryview, lanes: int) -> npt.NDArray[np.uint16]:
    """A packet received as bytes (each word its lanes in order, each lane little-endian,
    the layout the CRC is computed over) as ``(n_words, lanes)`` ``uint16``."""
    if not isinstance(lanes, int) or lanes < MIN_LANES or lanes % 2:
        raise PacketError("lanes", f"lanes must be an even int >= {MIN_LANES}, got {lanes!r}")
    buf = bytes(data)
    if len(buf) % (2 * lanes):
        raise PacketError("length", f"{len(buf)} bytes is not a whole number of "
                                    f"{2 * lanes}-byte words")
    return np.frombuffer(buf, dtype="<u2").reshape(-1, lanes).copy()


_WORD = np.dtype("<u2")
"""A lane as the packet carries it (the readout's words, little-endian)."""


def _as_words(words: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    if type(words) is np.ndarray and words.dtype == _WORD and words.ndim == 2 \
            and words.flags.c_contiguous and words.shape[1] >= MIN_LANES \
            and not words.shape[1] % 2 and words.shape[0] >= 2:
        return words  # (the readout's packets: nothing below to check or convert)
    try:
        arr = np.asarray(words)
    except (ValueError, TypeError) as e:
        raise PacketError("structure", f"not an array of words: {e}") from None
    if arr.ndim != 2:
        raise PacketError("structure", f"a packet is a 2-D (words, lanes) array, got "
                                       f"{arr.ndim}-D shape {arr.shape}")
    if arr.dtype.kind not in "iu":  # (numpy counts timedelta64 an integer: not a word)
        raise PacketError("structure", f"packet words must be integers, got dtype {arr.dtype}")
    if arr.shape[1] < MIN_LANES or arr.shape[1] % 2:
        raise PacketError("lanes", f"words have {arr.shape[1]} lanes, an even number of at "
                                   f"least {MIN_LANES} expected")
    if arr.shape[0] < 2:
        raise PacketError("length", f"{arr.shape[0]} word(s): a packet has at least a header "
                                    "and a trailer")
    if arr.dtype != _WORD and arr.size and (int(arr.min()) < 0 or int(arr.max()) > 0xFFFF):
        raise PacketError("range", f"lane values must be 16-bit, got {int(arr.min())} … "
                                   f"{int(arr.max())}")
    return np.ascontiguousarray(arr, dtype=_WORD)


def describe_array(a: object) -> str:
    """What an argument that should have been an array is, for an error message: dtype,
    shape and, if so, that it is not C-contiguous or is read-only; else its repr."""
    if not isinstance(a, np.ndarray):
        return repr(a)
    notes = [note for note, bad in (("not C-contiguous", not a.flags.c_contiguous),
                                    ("read-only", not a.flags.writeable)) if bad]
    return f"{a.dtype} of shape {a.shape}" + "".join(f", {note}" for note in notes)


def packet_crc(words: npt.NDArray[np.uint16]) -> int:
    """The CRC-32 a packet's trailer should carry: of every lane before the trailer's last
    two (header, payload, reductions, the trailer's word count and flags), each lane
    little-endian (``zlib.crc32``'s CRC, computed by ISA-L's folding code: a megapixel
    packet in 0.1 ms instead of zlib's 0.6)."""
    return crc32(np.ascontiguousarray(words, dtype=_WORD).reshape(-1)[:-CRC_LANES].data)


def decode_packet(words: npt.ArrayLike, lanes: int | None = None,
                  sensor_shape: tuple[int, int] | None = None, *,
                  out: npt.NDArray[np.uint16] | None = None) -> ReadoutFrame:
    """Check one packet and decode it into a ``ReadoutFrame``.

    The frame's image is a new array, or ``out`` when given (a writeable C-contiguous
    ``uint16`` array of the image's shape, e.g. a slot of a batch the caller stacks its
    frames in: no copy of the images afterwards); ``out`` is written only when every
    check passed.

    Checks, in order: structure and range of the words, the lane count (against
    ``lanes`` when given and the header's), the magic, the version, the output shape
    (against ``sensor_shape`` and the binning flag when given), the packet length, the
    CRC (of every byte before it, the trailer's fields included), the word count, the
    reserved lanes (line padding included) and flag bits, and that the histogram counts
    every output pixel.

    Raises
    ------
    PacketError
        The first check that failed, with expected and got values.
    """
    if out is not None and (not isinstance(out, np.ndarray) or out.dtype != _WORD
                            or out.ndim != 2 or not out.flags.c_contiguous
                            or not out.flags.writeable):
        raise ValueError(f"decode_packet: out must be a writeable C-contiguous 2-D uint16 "
                         f"array, got {describe_array(out)}")
    w = _as_words(words)
    n, k = w.shape
    if lanes is not None and k != lanes:
        raise PacketError("lanes", f"words have {k} lanes, expected {lanes}")
    hdr, trl = w[0].tolist(), w[-1].tolist()  # (Python ints: the fields are read one by one)
    fn = hdr[H_FRAME] | hdr[H_FRAME + 1] << 16
    if hdr[H_MAGIC] != MAGIC:
        raise PacketError("magic", f"header lane 0 is {hdr[H_MAGIC]:#06x}, expected "
                                   f"{MAGIC:#06x}")
    if hdr[H_VERSION] >> 8 != VERSION:
        raise PacketError("version", f"packet version {hdr[H_VERSION] >> 8}, expected "
                                     f"{VERSION}", fn)
    if hdr[H_VERSION] & 0xFF != k:
        raise PacketError("lanes", f"header says {hdr[H_VERSION] & 0xFF} lanes, words "
                                   f"have {k}", fn)
    out_h, out_w, hflags = hdr[H_HEIGHT], hdr[H_WIDTH], hdr[H_FLAGS]
    if out_h == 0 or out_w == 0:
        raise PacketError("shape", f"output shape {out_h}×{out_w} is empty", fn)
    if sensor_shape is not None:
        sh, sw = sensor_shape
        want = (sh // 2, sw // 2) if hflags & FLAG_BINNING else (sh, sw)
        if (out_h, out_w) != want:
            raise PacketError("shape", f"header shape {out_h}×{out_w}, expected "
                                       f"{want[0]}×{want[1]} for a {sh}×{sw} sensor "
                                       f"(binning {'on' if hflags & FLAG_BINNING else 'off'})",
                              fn)
    wpl = line_words(out_w, k)
    n_pay, n_red = out_h * wpl, reduction_words(k)
    if n != 1 + n_pay + n_red + 1:
        raise PacketError("length", f"{n} words, expected {1 + n_pay + n_red + 1} for a "
                                    f"{out_h}×{out_w} image", fn)
    crc = packet_crc(w)
    got = trl[k - 2] | trl[k - 1] << 16  # (CRC_LANES)
    if crc != got:
        raise PacketError("crc", f"trailer CRC {got:#010x}, computed {crc:#010x}", fn)
    count = trl[T_COUNT] | trl[T_COUNT + 1] << 16
    if count != n - 1:
        raise PacketError("word_count", f"trailer counts {count} words before it, the packet "
                                        f"has {n - 1}", fn)
    red_words = w[1 + n_pay:1 + n_pay + n_red].reshape(-1)
    red = red_words.tolist()
    lines = w[1:1 + n_pay].reshape(out_h, wpl * k)
    tflags = trl[T_FLAGS]
    if (any(hdr[HEADER_LANES:]) or any(trl[TRAILER_FIELDS:k - CRC_LANES])
            or (out_w < wpl * k and lines[:, out_w:].any())
            or any(red[R_SATURATED + 2:REDUCTION_FIELDS]) or any(red[REDUCTION_LANES:])):
        raise PacketError("reserved", "a reserved lane is not zero", fn)
    if hflags & ~FLAG_BINNING or tflags & ~FLAG_FRAMING_ERROR:
        raise PacketError("reserved", f"undefined flag bits: header {hflags:#x}, trailer "
                                      f"{tflags:#x}", fn)
    hist = red_words[R_HIST:REDUCTION_LANES].view("<u4").astype(np.int64)  # (low, high)
    total = int(hist.sum())
    if total != out_h * out_w:
        raise PacketError("histogram", f"histogram counts {total} pixels, the image has "
                                       f"{out_h * out_w}", fn)
    if out is None:
        image = lines[:, :out_w].astype(np.uint16, copy=True)
    elif out.shape != (out_h, out_w):
        raise ValueError(f"decode_packet: out has shape {out.shape}, the packet's image is "
                         f"{out_h}×{out_w}")
    else:
        out[...] = lines[:, :out_w]
        image = out
    return ReadoutFrame(
        frame_number=fn, timestamp=_join(hdr[H_TIMESTAMP:H_TIMESTAMP + 3]),
        flags=hflags | tflags, threshold=_join(hdr[H_THRESHOLD:H_THRESHOLD + 2]),
        image=image,
        roi_sum=_join(red[R_ROI_SUM:R_ROI_SUM + 3]),
        saturated=_join(red[R_SATURATED:R_SATURATED + 2]), histogram=hist, crc=crc)


__all__ = [
    "FLAG_BINNING", "FLAG_FRAMING_ERROR", "HIST_BINS", "HIST_SHIFT", "MAGIC", "MIN_LANES",
    "REDUCTION_LANES", "VERSION", "PacketError", "ReadoutFrame", "decode_packet",
    "describe_array", "line_words", "packet_crc", "packet_from_bytes", "packet_words",
    "reduction_words",
]
