"""Numpy reference model of the detector front-end firmware (docs/firmware.md).

Frame in → corrected (optionally 2×2-binned) ``uint16`` image, the on-FPGA reductions
(ROI sum, saturated count, 64-bin histogram) and the packet exactly as the firmware sends
it. It is written from the specification, not from the SME processes, so that the SME
network, its VHDL and the readout backend can all be checked against it bit for bit on
full-size frames. Everything is vectorised: a 1024×1024 frame takes a few tens of ms.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .params import (
    GAIN_FRAC,
    GAIN_ONE,
    HIST_BINS,
    HIST_SHIFT,
    MAGIC,
    OUT_MAX,
    PIXEL_MAX,
    REDUCTION_FIELDS,
    VERSION,
    ChainParams,
    Flags,
    Reg,
    Table,
)

U16 = np.dtype("<u2")
"""Lane dtype of a packet word (16 bits, little-endian as the CRC reads it)."""

ROI_RESET = (0, 0, 0xFFFF, 0xFFFF)
"""ROI registers after reset (``x0, y0, x1, y1``): the whole image."""

# Lane layout of the packet, straight from the table in docs/firmware.md.
_H_MAGIC, _H_VERSION, _H_FRAME, _H_TIME = 0, 1, 2, 4
_H_HEIGHT, _H_WIDTH, _H_FLAGS, _H_THRESHOLD = 7, 8, 9, 10
_R_ROI, _R_SAT, _R_HIST = 0, 3, REDUCTION_FIELDS
_T_COUNT, _T_FLAGS = 0, 2
"""Trailer lanes; the CRC is the last two lanes of the trailer."""


@dataclass(frozen=True)
class ChainConfig:
    """Register values of the chain (the ``ctrl`` bus), reset values by default.

    ``threshold`` is the zero-suppression level in counts (20 bits), ``roi`` the ROI of the
    sum in output-image pixels ``(x0, y0, x1, y1)`` with ``x0 ≤ x < x1``, ``y0 ≤ y < y1``
    (16 bits each), ``binning`` switches 2×2 binning on.
    """

    threshold: int = 0
    roi: tuple[int, int, int, int] = ROI_RESET
    binning: bool = False

    def __post_init__(self) -> None:
        _check_int("ChainConfig.threshold", self.threshold, PIXEL_MAX)
        if not isinstance(self.roi, tuple) or len(self.roi) != 4:
            raise ValueError(f"ChainConfig.roi must be a tuple (x0, y0, x1, y1), not {self.roi!r}")
        for name, v in zip(("x0", "y0", "x1", "y1"), self.roi, strict=True):
            _check_int(f"ChainConfig.roi {name}", v, 0xFFFF)
        if not isinstance(self.binning, bool | np.bool_):
            raise ValueError(f"ChainConfig.binning must be a bool, not {self.binning!r}")

    def register_writes(self) -> list[tuple[Reg, int]]:
        """The ``(register, value)`` writes on ``ctrl`` that set this configuration."""
        x0, y0, x1, y1 = self.roi
        return [(Reg.THRESHOLD, self.threshold), (Reg.ROI_X0, x0), (Reg.ROI_Y0, y0),
                (Reg.ROI_X1, x1), (Reg.ROI_Y1, y1), (Reg.BINNING, int(bool(self.binning)))]


@dataclass(frozen=True, init=False, eq=False)
class ChainTables:
    """Calibration tables, each ``height × width``: ``dark`` counts (16 bits), ``gain`` raw
    ``UFix[2, 14]`` (16384 is 1.0), ``mask`` (non-zero marks a bad pixel).

    Use ``ChainTables.reset(params)`` for the values after reset; the constructor takes any
    integer arrays, checks shapes and ranges and stores read-only ``uint16``/``bool``
    copies.
    """

    dark: npt.NDArray[np.uint16]
    gain: npt.NDArray[np.uint16]
    mask: npt.NDArray[np.bool_]

    def __init__(self, dark: npt.ArrayLike, gain: npt.ArrayLike, mask: npt.ArrayLike) -> None:
        shape = np.shape(dark)
        for name, value in (("dark", dark), ("gain", gain), ("mask", mask)):
            a = np.asarray(value)
            if a.ndim != 2 or a.shape != shape:
                raise ValueError(f"ChainTables.{name} must be 2-D with the shape of dark "
                                 f"{shape}, got shape {a.shape}")
            if name == "mask":
                conv = a.astype(bool) if a.dtype == bool else _int_array(
                    f"ChainTables.{name}", a, 0xFFFF).astype(bool)
            else:
                conv = _int_array(f"ChainTables.{name}", a, 0xFFFF).astype(np.uint16)
            conv = conv.copy()
            conv.flags.writeable = False
            object.__setattr__(self, name, conv)

    @classmethod
    def reset(cls, params: ChainParams) -> ChainTables:
        """Tables after reset: dark 0, gain 1.0, no pixel masked."""
        shape = (params.height, params.width)
        return cls(dark=np.zeros(shape, np.uint16), gain=np.full(shape, GAIN_ONE, np.uint16),
                   mask=np.zeros(shape, bool))

    def check(self, params: ChainParams) -> None:
        """Raise ``ValueError`` when the tables do not have the sensor shape of ``params``."""
        if self.dark.shape != (params.height, params.width):
            raise ValueError(f"ChainTables: tables have shape {self.dark.shape}, the chain "
                             f"expects {(params.height, params.width)}")

    def words(self, table: Table, params: ChainParams) -> npt.NDArray[np.int64]:
        """``table`` as the ``(table_depth, lanes)`` words the ``tables`` bus writes
        (word address ``y · words_per_line + c`` holds pixels ``(y, c·K … c·K + K − 1)``;
        a line's padding lanes hold the reset values)."""
        self.check(params)
        a = {Table.DARK: self.dark, Table.GAIN: self.gain, Table.MASK: self.mask}[table]
        reset = GAIN_ONE if table is Table.GAIN else 0
        return pad_lines(a.astype(np.int64), params, reset).reshape(params.table_depth,
                                                                     params.lanes)


@dataclass(frozen=True, eq=False)
class ReferenceResult:
    """Everything the firmware produces for one frame.

    ``image`` is the output image (``uint16``, binned when configured), ``saturated_pixels``
    the per-sensor-pixel saturation map behind ``saturated``, ``packet`` the
    ``(n_words, lanes)`` packet.
    """

    image: npt.NDArray[np.uint16]
    roi_sum: int
    saturated: int
    histogram: npt.NDArray[np.int64]
    packet: npt.NDArray[np.uint16]
    frame_number: int
    timestamp: int
    saturated_pixels: npt.NDArray[np.bool_] = field(repr=False)


@dataclass(frozen=True, eq=False)
class ReferenceStream:
    """Packets of several frames back to back, as the ``packet`` bus carries them on its
    valid ticks: ``words`` ``(n, lanes)``, ``first``/``last`` flags, and each frame's
    result."""

    words: npt.NDArray[np.uint16]
    first: npt.NDArray[np.bool_]
    last: npt.NDArray[np.bool_]
    results: list[ReferenceResult]


def pad_lines(image: npt.NDArray[Any], params: ChainParams, fill: int = 0
              ) -> npt.NDArray[Any]:
    """``image`` ``(rows, width)`` with each line padded to whole words
    (``(rows, params.line_width)``, the padding ``fill``); ``image`` itself without
    padding."""
    if not params.pad or image.shape[1] % params.lanes == 0:
        return image
    rows, width = image.shape
    out = np.full((rows, -(-width // params.lanes) * params.lanes), fill, dtype=image.dtype)
    out[:, :width] = image
    return out


def _check_int(name: str, v: object, hi: int) -> None:
    if not isinstance(v, int | np.integer) or isinstance(v, bool) or not 0 <= v <= hi:
        raise ValueError(f"{name} must be an int in 0 … {hi}, not {v!r}")


def _int_array(name: str, a: npt.ArrayLike, hi: int) -> npt.NDArray[Any]:
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":  # (not issubdtype, which counts timedelta64 in)
        raise ValueError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > hi):
        raise ValueError(f"{name} values must be in 0 … {hi}, got {int(arr.min())} … "
                         f"{int(arr.max())}")
    return arr


def check_raw(raw: npt.ArrayLike, params: ChainParams, name: str = "raw") -> npt.NDArray[Any]:
    """``raw`` as an integer array of the sensor shape with counts in 0 … 2**20 − 1, or a
    ``ValueError`` saying what is wrong."""
    arr = np.asarray(raw)
    if arr.shape != (params.height, params.width):
        raise ValueError(f"{name} must have the sensor shape {(params.height, params.width)}, "
                         f"got {arr.shape}")
    return _int_array(name, arr, PIXEL_MAX)


def correct(raw: npt.ArrayLike, params: ChainParams, config: ChainConfig | None = None,
            tables: ChainTables | None = None
            ) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.bool_]]:
    """Per-pixel correction: the corrected ``uint16`` sensor image and the map of pixels
    counted as saturated.

    Rules, in order: a masked pixel is 0; a saturated counter (2**20 − 1) is 65535 and
    counted; otherwise ``s = max(r − dark, 0)``, ``s < threshold → 0``,
    ``v = (s · gain + 8192) >> 14`` (round half up), and ``v > 65535`` is 65535 and counted.
    """
    cfg = config or ChainConfig()
    tab = tables or ChainTables.reset(params)
    tab.check(params)
    r = check_raw(raw, params).astype(np.int64)
    s = np.maximum(r - tab.dark.astype(np.int64), 0)
    s[s < cfg.threshold] = 0
    v = (s * tab.gain.astype(np.int64) + (1 << (GAIN_FRAC - 1))) >> GAIN_FRAC
    counter_full = r == PIXEL_MAX
    sat = (counter_full | (v > OUT_MAX)) & ~tab.mask
    out = np.where(sat, OUT_MAX, v)
    out[tab.mask] = 0
    return out.astype(np.uint16), sat


def bin2x2(image: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    """2×2 binning: each output pixel is the sum of a 2×2 block, clamped to 65535."""
    a = np.asarray(image, dtype=np.int64)
    h, w = a.shape
    if h % 2 or w % 2:
        raise ValueError(f"bin2x2: image shape {a.shape} must be even in both axes")
    s: npt.NDArray[np.int64] = a.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3))
    return np.minimum(s, OUT_MAX).astype(np.uint16)


def roi_sum(image: npt.NDArray[np.uint16], roi: tuple[int, int, int, int]) -> int:
    """Sum of ``image`` over ``x0 ≤ x < x1``, ``y0 ≤ y < y1`` (clipped to the image)."""
    x0, y0, x1, y1 = roi
    return int(image[y0:y1, x0:x1].sum(dtype=np.int64))


def histogram(image: npt.NDArray[np.uint16]) -> npt.NDArray[np.int64]:
    """The 64-bin intensity histogram: bin ``b`` counts pixels with ``value >> 10 == b``."""
    return np.bincount((image >> HIST_SHIFT).ravel(), minlength=HIST_BINS).astype(np.int64)


def _lanes16(value: int, n: int) -> list[int]:
    """``value`` split into ``n`` 16-bit lanes, little-endian."""
    return [(value >> (16 * i)) & 0xFFFF for i in range(n)]


def encode_packet(image: npt.NDArray[np.uint16], roi_total: int, saturated: int,
                  hist: npt.NDArray[np.int64], params: ChainParams, config: ChainConfig,
                  frame_number: int, timestamp: int, framing_error: bool = False
                  ) -> npt.NDArray[np.uint16]:
    """The packet of one frame, ``(n_words, lanes)`` ``uint16``: header, payload,
    reductions, trailer (word count, flags, and in its last two lanes the CRC-32 of every
    lane before them, each lane little-endian)."""
    k = params.lanes
    _check_int("frame_number", frame_number, 0xFFFF_FFFF)
    _check_int("timestamp", timestamp, (1 << 48) - 1)
    out_h, out_w = params.out_shape(config.binning)
    if image.shape != (out_h, out_w):
        raise ValueError(f"encode_packet: image shape {image.shape}, expected {(out_h, out_w)}")
    n_pay, n_red = params.payload_words(config.binning), params.reduction_words
    n = params.packet_words(config.binning)
    words = np.zeros((n, k), dtype=U16)
    hdr = words[0]
    hdr[_H_MAGIC] = MAGIC
    hdr[_H_VERSION] = (VERSION << 8) | k
    hdr[_H_FRAME:_H_FRAME + 2] = _lanes16(frame_number, 2)
    hdr[_H_TIME:_H_TIME + 3] = _lanes16(timestamp, 3)
    hdr[_H_HEIGHT], hdr[_H_WIDTH] = out_h, out_w
    hdr[_H_FLAGS] = int(Flags.BINNING) if config.binning else 0
    hdr[_H_THRESHOLD:_H_THRESHOLD + 2] = _lanes16(config.threshold, 2)
    words[1:1 + n_pay] = pad_lines(image, params).reshape(n_pay, k)
    red = np.zeros(n_red * k, dtype=np.int64)
    red[_R_ROI:_R_ROI + 3] = _lanes16(roi_total, 3)
    red[_R_SAT:_R_SAT + 2] = _lanes16(saturated, 2)
    h = np.asarray(hist, dtype=np.int64)
    red[_R_HIST:_R_HIST + 2 * HIST_BINS:2] = h & 0xFFFF
    red[_R_HIST + 1:_R_HIST + 2 * HIST_BINS:2] = h >> 16
    words[1 + n_pay:1 + n_pay + n_red] = red.reshape(n_red, k)
    trl = words[-1]
    trl[_T_COUNT:_T_COUNT + 2] = _lanes16(n - 1, 2)
    trl[_T_FLAGS] = int(Flags.FRAMING_ERROR) if framing_error else 0
    covered = np.ascontiguousarray(words).reshape(-1)[:-2]   # all lanes but the CRC's
    trl[k - 2:] = _lanes16(zlib.crc32(covered.data), 2)
    return words


def reference_frame(raw: npt.ArrayLike, params: ChainParams, config: ChainConfig | None = None,
                    tables: ChainTables | None = None, frame_number: int = 0,
                    timestamp: int = 0, framing_error: bool = False) -> ReferenceResult:
    """Run one raw frame (sensor counts, ``height × width``) through the whole chain.

    Parameters
    ----------
    raw
        Counts as the sensor delivers them, integers in 0 … 2**20 − 1.
    params
        Build-time parameters (frame shape, lanes).
    config, tables
        Register values and calibration tables; reset values when omitted.
    frame_number, timestamp
        Header fields: frame counter (32 bits) and the tick of the frame's ``sof``
        (48 bits).
    framing_error
        Set the trailer's framing-error flag (the model's input is a whole frame, so it
        only appears when asked for).
    """
    cfg = config or ChainConfig()
    params.check_binning(cfg.binning)
    pix, sat = correct(raw, params, cfg, tables)
    image = bin2x2(pix) if cfg.binning else pix
    roi = roi_sum(image, cfg.roi)
    n_sat = int(sat.sum())
    hist = histogram(image)
    packet = encode_packet(image, roi, n_sat, hist, params, cfg, frame_number, timestamp,
                           framing_error)
    return ReferenceResult(image=image, roi_sum=roi, saturated=n_sat, histogram=hist,
                           packet=packet, frame_number=frame_number, timestamp=timestamp,
                           saturated_pixels=sat)


def setup_writes(params: ChainParams, config: ChainConfig | None = None,
                 tables: ChainTables | None = None, only_changed: bool = True
                 ) -> tuple[list[tuple[Reg, int]], list[tuple[Table, int, npt.NDArray[np.int64]]]]:
    """The register writes and the table-word writes ``(table, address, lanes)`` that
    bring a freshly reset chain to ``config`` and ``tables``; with ``only_changed`` the
    table words still equal to their reset value are left out (fewer ticks to simulate)."""
    cfg = config or ChainConfig()
    tab = tables or ChainTables.reset(params)
    reset = ChainTables.reset(params)
    words: list[tuple[Table, int, npt.NDArray[np.int64]]] = []
    for t in Table:
        w = tab.words(t, params)
        changed = (w != reset.words(t, params)).any(axis=1) if only_changed else np.ones(
            len(w), bool)
        words += [(t, int(a), w[a]) for a in np.flatnonzero(changed)]
    return cfg.register_writes(), words


def setup_stimulus(params: ChainParams, ticks: int, config: ChainConfig | None = None,
                   tables: ChainTables | None = None, only_changed: bool = True,
                   ctrl: str = "ctrl", table_bus: str = "tables"
                   ) -> dict[str, npt.NDArray[np.generic]]:
    """``run_batch`` stimulus of the ``ctrl`` and ``tables`` buses over ``ticks`` ticks:
    the writes of ``setup_writes`` one per tick from tick 0 (registers on ``ctrl``, table
    words on ``tables``, in parallel), idle afterwards. Enum signals carry the member index.
    The link must stay idle until ``setup_ticks(...)`` (its ``lead_idle``)."""
    regs, words = setup_writes(params, config, tables, only_changed)
    need = max(len(regs), len(words))
    if ticks < need:
        raise ValueError(f"setup_stimulus: {need} writes need at least {need} ticks, got {ticks}")
    reg_index, table_index = list(Reg), list(Table)
    we = np.zeros(ticks, bool)
    reg = np.zeros(ticks, np.int64)
    value = np.zeros(ticks, np.int64)
    for i, (r, v) in enumerate(regs):
        we[i], reg[i], value[i] = True, reg_index.index(r), v
    twe = np.zeros(ticks, bool)
    table = np.zeros(ticks, np.int64)
    addr = np.zeros(ticks, np.int64)
    data = np.zeros((ticks, params.lanes), np.int64)
    for i, (t, a, w) in enumerate(words):
        twe[i], table[i], addr[i], data[i] = True, table_index.index(t), a, w
    return {f"{ctrl}.we": we, f"{ctrl}.reg": reg, f"{ctrl}.value": value,
            f"{table_bus}.we": twe, f"{table_bus}.table": table, f"{table_bus}.addr": addr,
            f"{table_bus}.data": data}


def setup_ticks(params: ChainParams, config: ChainConfig | None = None,
                tables: ChainTables | None = None, only_changed: bool = True,
                margin: int = 4) -> int:
    """Ticks ``setup_stimulus`` needs before the first frame may start, plus ``margin``
    (the writes take effect a tick or two after they are on the bus)."""
    regs, words = setup_writes(params, config, tables, only_changed)
    return max(len(regs), len(words)) + margin


def default_timestamps(n_frames: int, params: ChainParams, lead_idle: int = 0) -> list[int]:
    """``sof`` ticks of ``n_frames`` frames sent back to back with the minimum gap
    (``params.frame_gap``) and no idle ticks inside frames, the first at ``lead_idle``."""
    period = params.words_per_frame + params.frame_gap
    return [lead_idle + i * period for i in range(n_frames)]


def reference_stream(frames: Iterable[npt.ArrayLike], params: ChainParams,
                     config: ChainConfig | None = None, tables: ChainTables | None = None,
                     first_frame: int = 0, timestamps: Sequence[int] | None = None
                     ) -> ReferenceStream:
    """Packets of ``frames`` concatenated, numbered from ``first_frame`` (wrapping at
    2**32 like the firmware's counter), with ``timestamps`` (default:
    ``default_timestamps``)."""
    frame_list = list(frames)
    ts = list(timestamps) if timestamps is not None else default_timestamps(
        len(frame_list), params)
    if len(ts) != len(frame_list):
        raise ValueError(f"reference_stream: {len(ts)} timestamps for {len(frame_list)} frames")
    _check_int("first_frame", first_frame, 0xFFFF_FFFF)
    results = [reference_frame(f, params, config, tables, (first_frame + i) & 0xFFFF_FFFF, t)
               for i, (f, t) in enumerate(zip(frame_list, ts, strict=True))]
    if not results:
        empty = np.zeros(0, bool)
        return ReferenceStream(np.zeros((0, params.lanes), U16), empty, empty.copy(), [])
    words = np.concatenate([r.packet for r in results])
    first = np.zeros(len(words), bool)
    last = np.zeros(len(words), bool)
    ends = np.cumsum([len(r.packet) for r in results])
    first[np.concatenate([[0], ends[:-1]])] = True
    last[ends - 1] = True
    return ReferenceStream(words=words, first=first, last=last, results=results)


__all__ = [
    "ROI_RESET", "ChainConfig", "ChainTables", "ReferenceResult",
    "ReferenceStream", "bin2x2", "check_raw", "correct", "default_timestamps",
    "encode_packet", "histogram", "pad_lines", "reference_frame", "reference_stream", "roi_sum",
    "setup_stimulus", "setup_ticks", "setup_writes",
]
