"""The sensor's link to the firmware: count frames serialised into the per-tick words of
the firmware's ``link`` bus (``lanes`` pixels per tick, with the flags and gaps of
docs/firmware.md, "Inputs"), as ``sme.Simulator.run_batch`` stimulus.

``devices.sensor`` draws the counts (and re-exports these names); this module only lays
them out in ticks, so the firmware and benchmarks can build streams from any frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fpga.designs.params import PIXEL_MAX, ChainParams
from fpga.designs.reference import pad_lines


def _count(name: str, v: int, hi: int) -> int:
    """``v`` as an int after checking it is an integer in 0 … ``hi`` (``name`` in the error)."""
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or not 0 <= v <= hi:
        raise ValueError(f"{name} must be an int in 0 … {hi}, not {v!r}")
    return int(v)


@dataclass(frozen=True, eq=False)
class LinkStream:
    """Per-tick stimulus of the firmware's ``link`` bus for a sequence of frames.

    ``valid``, ``sof``, ``eol`` are ``bool`` arrays of length ``ticks``; ``data`` is
    ``(ticks, lanes)`` ``uint32`` (the compiled firmware takes its 20-bit link words so,
    without a copy; all fields 0 on idle ticks). ``sof_ticks[i]`` is the tick
    of frame i's first word (the timestamp the firmware puts in its header),
    ``last_ticks[i]`` that of its last word.
    """

    valid: npt.NDArray[np.bool_]
    sof: npt.NDArray[np.bool_]
    eol: npt.NDArray[np.bool_]
    data: npt.NDArray[np.uint32]
    sof_ticks: npt.NDArray[np.int64]
    last_ticks: npt.NDArray[np.int64]

    @property
    def ticks(self) -> int:
        """Length of the stream in ticks."""
        return int(self.valid.shape[0])

    def stimulus(self, bus: str = "link", start: int = 0, stop: int | None = None
                 ) -> dict[str, npt.NDArray[np.generic]]:
        """Ticks ``start`` … ``stop − 1`` as ``sme.Simulator.run_batch`` stimulus:
        ``{"<bus>.valid", "<bus>.sof", "<bus>.eol", "<bus>.data"}`` → arrays (views)."""
        sl = slice(start, stop)
        return {f"{bus}.valid": self.valid[sl], f"{bus}.sof": self.sof[sl],
                f"{bus}.eol": self.eol[sl], f"{bus}.data": self.data[sl]}


def link_stream(frames: Sequence[npt.ArrayLike] | npt.NDArray[np.integer], params: ChainParams,
                *, lead_idle: int = 0, idle_prob: float = 0.0, tail_idle: int = 0,
                seed: int | np.random.Generator | None = 0,
                reuse: LinkStream | None = None) -> LinkStream:
    """Serialise count frames into link words.

    Word c of line y carries pixels ``(y, c·K … c·K + K − 1)`` (the lanes past the line's
    end, when K does not divide the width, are 0); ``sof`` is set on each frame's first
    word, ``eol`` on the last word of every line. Idle ticks: ``lead_idle``
    before the first frame, ``params.frame_gap`` after every frame (also the last, so the
    firmware can finish its packet), ``tail_idle`` more at the end, and, inside frames,
    before each word but a frame's first a geometric number of idle ticks
    (``P(k) = idle_prob**k · (1 − idle_prob)``, drawn from ``seed``) to exercise ``valid``
    gaps.

    ``reuse``: a stream its caller is done with. When it has the ticks and frames this
    call makes (built for as many frames of the same ``params`` with the same idle ticks
    and no random ones), its words are overwritten with ``frames`` and it is returned —
    no new buffers (a megapixel frame's words are 4 MB, and the pages of a fresh buffer
    cost more than the copy); otherwise a new stream is made.
    """
    k, wpf = params.lanes, params.words_per_frame
    items = _check_frames(frames, params)
    n_frames = len(items)
    lead_idle = _count("lead_idle", lead_idle, 1 << 40)
    tail_idle = _count("tail_idle", tail_idle, 1 << 40)
    if (isinstance(idle_prob, bool) or not isinstance(idle_prob, int | float)
            or not 0.0 <= idle_prob < 1.0):
        raise ValueError(f"idle_prob must be a number in [0, 1), not {idle_prob!r}")
    if reuse is not None and idle_prob == 0 and _fits(reuse, params, n_frames, lead_idle,
                                                      tail_idle):
        for i, frame in enumerate(items):
            _put_words(reuse.data, int(reuse.sof_ticks[i]), frame, params)
        return reuse
    link, tick = _layout(n_frames, params, lead_idle, idle_prob, tail_idle, seed)
    if idle_prob > 0:
        link.data[tick] = np.stack([pad_lines(f, params) for f in items]).reshape(tick.size, k)
    else:  # each frame's words are consecutive ticks: one slice copy per frame
        for i, frame in enumerate(items):
            _put_words(link.data, int(tick[i * wpf]), frame, params)
    return link


def _layout(n_frames: int, params: ChainParams, lead_idle: int, idle_prob: float,
            tail_idle: int, seed: int | np.random.Generator | None
            ) -> tuple[LinkStream, npt.NDArray[np.int64]]:
    """The ticks and flags of a link stream of ``n_frames`` frames (``link_stream``'s
    arguments, checked), its words all 0, and the tick of each word."""
    k, wpl, wpf = params.lanes, params.words_per_line, params.words_per_frame
    n_words = n_frames * wpf
    # Idle ticks before each word.
    gaps = np.zeros(n_words, dtype=np.int64)
    if idle_prob > 0 and n_words:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        gaps = rng.geometric(1.0 - idle_prob, n_words).astype(np.int64) - 1
    starts = np.arange(n_frames) * wpf
    gaps[starts] = params.frame_gap
    if n_frames:
        gaps[0] = lead_idle
    tick = np.cumsum(gaps + 1) - 1
    total = (int(tick[-1]) + 1 + params.frame_gap if n_words else lead_idle) + tail_idle
    valid = np.zeros(total, bool)
    sof = np.zeros(total, bool)
    eol = np.zeros(total, bool)
    data = np.zeros((total, k), np.uint32)
    valid[tick] = True
    sof[tick[starts]] = True
    eol[tick[wpl - 1::wpl]] = True
    link = LinkStream(valid=valid, sof=sof, eol=eol, data=data, sof_ticks=tick[starts].copy(),
                      last_ticks=tick[starts + wpf - 1].copy())
    return link, tick


def frame_link(params: ChainParams, reuse: LinkStream | None = None
               ) -> tuple[LinkStream, npt.NDArray[np.uint32]] | None:
    """A one-frame link stream (as ``link_stream`` makes it) and its frame's words as a
    ``(height, width)`` view, for a sensor to draw the counts into (``SensorModel.expose(…,
    out=…)``): no counts array and no copy into the link. ``reuse``: a one-frame stream
    its caller is done with, returned again when it fits. ``None`` when the lines are
    padded (``params.lanes`` does not divide the width: the frame is not one block of the
    words)."""
    if params.pad:
        return None
    if reuse is None or not _fits(reuse, params, 1, 0, 0):  # (words 0 until drawn into)
        reuse = _layout(1, params, 0, 0.0, 0, None)[0]
    view = reuse.data[:params.words_per_frame].reshape(params.height, params.width)
    return reuse, view


def _fits(link: LinkStream, params: ChainParams, n_frames: int, lead_idle: int,
          tail_idle: int) -> bool:
    """Whether ``link`` has the ticks of ``n_frames`` frames of ``params`` with these idle
    ticks and none inside the frames (``link_stream(reuse=…)`` may then refill it)."""
    wpf, step = params.words_per_frame, params.words_per_frame + params.frame_gap
    firsts = lead_idle + step * np.arange(n_frames, dtype=np.int64)
    return (isinstance(link, LinkStream) and link.ticks == lead_idle + n_frames * step + tail_idle
            and link.data.shape == (link.ticks, params.lanes) and link.data.flags.writeable
            and np.array_equal(link.sof_ticks, firsts)
            and np.array_equal(link.last_ticks, firsts + wpf - 1)
            and int(np.count_nonzero(link.valid)) == n_frames * wpf)


def _put_words(data: npt.NDArray[np.uint32], first: int, frame: npt.NDArray[np.integer],
               params: ChainParams) -> None:
    """A frame's words into ``data`` from tick ``first`` on (consecutive ticks; the lanes
    past a line's end are left as they are: 0)."""
    wpf = params.words_per_frame
    if params.pad:
        lines = data[first:first + wpf].reshape(params.height, params.line_width)
        lines[:, :params.width] = frame
    else:
        data[first:first + wpf] = frame.reshape(wpf, params.lanes)


def _check_frames(frames: Sequence[npt.ArrayLike] | npt.NDArray[np.integer],
                  params: ChainParams) -> list[npt.NDArray[np.integer]]:
    """The frames as integer arrays of the sensor shape with counts in range."""
    shape = (params.height, params.width)
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        items: list[npt.NDArray[Any]] = list(frames)
    elif isinstance(frames, np.ndarray):
        raise ValueError(f"frames must be a sequence of {shape} arrays or a (n, {shape[0]}, "
                         f"{shape[1]}) array, got an array of shape {frames.shape}")
    else:
        items = [np.asarray(f) for f in frames]
    for i, f in enumerate(items):
        if f.shape != shape:
            raise ValueError(f"frames[{i}] has shape {f.shape}, the sensor is {shape}")
        if f.dtype.kind not in "iu":  # (not issubdtype, which counts timedelta64 in)
            raise ValueError(f"frames[{i}] must hold integer counts, got dtype {f.dtype}")
        signed = f.dtype.kind == "i"  # (an unsigned min is >= 0)
        if f.size and ((signed and int(f.min()) < 0) or int(f.max()) > PIXEL_MAX):
            raise ValueError(f"frames[{i}] counts must be in 0 … {PIXEL_MAX}, got "
                             f"{int(f.min())} … {int(f.max())}")
    return items


__all__ = ["LinkStream", "frame_link", "link_stream"]
