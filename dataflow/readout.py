"""Readout backend: the firmware's packet stream → checked ``uint16`` frames.

The detector firmware sends one packet per frame on its ``packet`` bus (``valid``,
``first``, ``last``, ``data``). ``Readout.feed`` takes that stream in pieces, as
``sme.Simulator.run_batch`` returns it (a packet may span two calls), splits it into
packets, checks each (``dataflow.packets.decode_packet``) and the frame-number
continuity, and returns the good frames. A frame that fails a check is never returned:
it is counted, with its reason, in ``errors`` and ``report()``.

Everything per word is vectorised (the packets' ends from the flags of the valid ticks, a
packet's words a view of the caller's array when none of its ticks is idle, a reshape of
the payload, the CRC-32 over the bytes by ISA-L): a batch of eight 1024×1024 frames from
the firmware 3.9 ms, 3.2 of it the packets' checks, CRCs and images (10.9 ms when every valid
word's tick was gathered first).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from .packets import (
    H_FRAME,
    H_HEIGHT,
    H_WIDTH,
    MAGIC,
    MIN_LANES,
    PacketError,
    ReadoutFrame,
    decode_packet,
    describe_array,
    packet_words,
)

FRAME_MOD = 1 << 32
"""The firmware's frame counter wraps here."""


@dataclass(frozen=True)
class ReadoutError:
    """A packet (or stretch of words) that did not give a good frame: ``check`` is the
    failed check (``"crc"``, ``"magic"``, ``"sequence"``, ``"truncated"``, …),
    ``frame_number`` the header's frame number when it could be read."""

    check: str
    message: str
    frame_number: int | None


class Readout:
    """Stateful consumer of the firmware's packet stream.

    Parameters
    ----------
    lanes
        Lanes per packet word (the firmware's ``K``).
    sensor_shape
        ``(height, width)`` of the sensor when known: packets must then carry that shape
        (halved when binned) and a packet longer than the longest possible one is cut off
        as ``"overrun"`` instead of growing until its ``last`` arrives.
    first_frame
        Frame number expected first (``None``: whatever arrives first).
    max_errors
        How many ``ReadoutError`` records to keep (the counters count all).

    Counters: ``good``, ``corrupt`` (per check in ``corrupt_by_check``), ``dropped``
    (frame numbers that no good or corrupt packet accounts for: missing between good
    frames, or — once the sender says how many it sent, ``settle`` — at the end),
    ``framing_errors`` (good frames the firmware flagged), ``stray_words`` (valid words
    outside any packet). Each good frame carries ``lost_before``: the frames lost since
    the previous good one.
    """

    def __init__(self, lanes: int, sensor_shape: tuple[int, int] | None = None,
                 first_frame: int | None = 0, max_errors: int = 1000) -> None:
        if (not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < MIN_LANES
                or lanes % 2):
            raise ValueError(f"Readout: lanes must be an even int >= {MIN_LANES}, got "
                             f"{lanes!r}")
        if sensor_shape is not None:
            if (len(sensor_shape) != 2
                    or not all(isinstance(v, int) and v > 0 for v in sensor_shape)):
                raise ValueError(f"Readout: sensor_shape must be (height, width) of positive "
                                 f"ints, got {sensor_shape!r}")
            sensor_shape = (int(sensor_shape[0]), int(sensor_shape[1]))
        if first_frame is not None and not 0 <= first_frame < FRAME_MOD:
            raise ValueError(f"Readout: first_frame must be in 0 … 2**32 − 1, got {first_frame}")
        self.lanes = lanes
        self.sensor_shape = sensor_shape
        self.max_packet_words = (packet_words(*sensor_shape, lanes) if sensor_shape
                                 else None)
        self.good = 0
        self.corrupt = 0
        self.corrupt_by_check: Counter[str] = Counter()
        self.dropped = 0
        self.framing_errors = 0
        self.stray_words = 0
        self.errors: deque[ReadoutError] = deque(maxlen=max_errors)
        self.last_frame_number: int | None = None
        self._expected = first_frame
        self._offset = 0
        self._corrupt_since_good = 0
        self._lost_since_good = 0
        self._pending: list[npt.NDArray[Any]] = []
        self._pending_words = 0
        self._open = False
        self._into: npt.NDArray[np.uint16] | None = None
        self._into_used = 0

    # -- where images go -----------------------------------------------------------------

    def decode_into(self, images: npt.NDArray[np.uint16] | None) -> None:
        """Decode the next good frames' images into ``images[0]``, ``images[1]``, … (a
        writeable C-contiguous ``(n, rows, cols)`` ``uint16`` array: a batch the caller
        would otherwise stack its frames' images into), each frame's ``image`` a view of
        its slot; once the ``n`` slots are used, or with ``None``, into new arrays again.
        A slot is used only by a frame returned as good (``decoded_into`` counts them),
        so the good frames' images are ``images[:decoded_into]``, in order. A frame whose
        image (by its header) does not have the slots' shape gets a new array instead."""
        if images is not None and (not isinstance(images, np.ndarray)
                                   or images.dtype != np.uint16 or images.ndim != 3
                                   or not images.flags.c_contiguous
                                   or not images.flags.writeable):
            raise ValueError(f"Readout.decode_into: images must be a writeable C-contiguous "
                             f"(n, rows, cols) uint16 array, got {describe_array(images)}")
        self._into, self._into_used = images, 0

    @property
    def decoded_into(self) -> int:
        """Good frames decoded into the array of the last ``decode_into`` call."""
        return self._into_used

    def _slot(self, packet: npt.NDArray[Any]) -> npt.NDArray[np.uint16] | None:
        """The ``decode_into`` slot for the image of ``packet``, if one is left and the
        header's shape (unchecked yet: ``decode_packet`` checks it) is the slots'."""
        into, used = self._into, self._into_used
        if into is None or used >= len(into) or packet.ndim != 2 or not len(packet) \
                or packet.shape[1] <= max(H_HEIGHT, H_WIDTH):
            return None
        header = packet[0]
        if into.shape[1:] != (int(header[H_HEIGHT]), int(header[H_WIDTH])):
            return None
        slot: npt.NDArray[np.uint16] = into[used]
        return slot

    # -- frame numbers -------------------------------------------------------------------

    def expect(self, frame_number: int | None) -> None:
        """Set the frame number expected next (``None``: accept whatever comes), e.g.
        after the firmware was reset."""
        self._expected = None if frame_number is None else frame_number % FRAME_MOD
        self._corrupt_since_good = 0

    def renumber(self, offset: int) -> None:
        """Read every later packet's frame number as its header's plus ``offset`` (mod
        2**32): for a sender restarted from reset (its counter from 0 again) whose frames
        the host numbers on from where they were, as if it had not been reset. Every
        check (gaps, repeats, ``settle``), the frames returned, the errors and
        ``report()`` then use the continued numbers."""
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise TypeError(f"Readout.renumber: offset must be an int, got {offset!r}")
        self._offset = offset % FRAME_MOD

    def _number(self, header_number: int | None) -> int | None:
        return None if header_number is None else (header_number + self._offset) % FRAME_MOD

    def settle(self, next_frame: int) -> int:
        """The sender has sent every frame numbered before ``next_frame`` (mod 2**32) and
        all its words have been fed: a packet still open lost its last word (counted
        ``"truncated"``), and frame numbers up to ``next_frame − 1`` that neither arrived
        nor failed a check are counted ``dropped`` — the loss of a run's last packets,
        which no later frame number would reveal. Returns the frames counted lost here;
        the next good frame's ``lost_before`` includes them."""
        if not isinstance(next_frame, int) or isinstance(next_frame, bool):
            raise TypeError(f"Readout.settle: next_frame must be an int, got {next_frame!r}")
        next_frame %= FRAME_MOD
        lost = 0
        if self._open:
            self._fail_pending("truncated", "the packet's last word never arrived (the sender "
                                            "had finished)")
            lost += 1
        if self._expected is not None:
            gap = (next_frame - self._expected) % FRAME_MOD
            if gap >= FRAME_MOD // 2:  # a forward-numbered packet already went past it
                return lost
            missing = max(0, gap - self._corrupt_since_good)
            self.dropped += missing
            self._lost_since_good += missing
            lost += missing
        self._expected = next_frame
        self._corrupt_since_good = 0
        return lost

    @property
    def expected_frame(self) -> int | None:
        """Frame number the next good packet should carry."""
        return self._expected

    # -- input ---------------------------------------------------------------------------

    def feed_outputs(self, outputs: Mapping[str, npt.ArrayLike], bus: str = "packet"
                     ) -> list[ReadoutFrame]:
        """``feed`` from a ``run_batch`` result (``"<bus>.valid"``, ``.first``, ``.last``,
        ``.data``)."""
        try:
            v, f, la, d = (outputs[f"{bus}.{s}"] for s in ("valid", "first", "last", "data"))
        except KeyError as e:
            raise KeyError(f"Readout.feed_outputs: no signal {e.args[0]!r} in the outputs "
                           f"(have {', '.join(outputs)})") from None
        return self.feed(v, f, la, d)

    def feed(self, valid: npt.ArrayLike, first: npt.ArrayLike, last: npt.ArrayLike,
             data: npt.ArrayLike) -> list[ReadoutFrame]:
        """Consume ticks of the packet bus: ``valid``, ``first``, ``last`` of length T and
        ``data`` ``(T, lanes)``. Returns the good frames whose packets ended here."""
        v = np.asarray(valid).astype(bool, copy=False)
        f_all, l_all, d_all = np.asarray(first), np.asarray(last), np.asarray(data)
        t = v.shape[0] if v.ndim == 1 else -1
        for name, a, shape in (("valid", v, (t,)), ("first", f_all, (t,)),
                               ("last", l_all, (t,)), ("data", d_all, (t, self.lanes))):
            if t < 0 or a.shape != shape:
                raise ValueError(f"Readout.feed: {name} has shape {a.shape}, expected "
                                 f"{shape if t >= 0 else '(T,) for valid'}")
        firsts = np.flatnonzero(f_all.astype(bool, copy=False) & v)  # (flags count on
        lasts = np.flatnonzero(l_all.astype(bool, copy=False) & v)   # valid ticks only)
        if not self._open and len(firsts) == 1 == len(lasts) and firsts[0] <= lasts[0]:
            return self._one_packet(v, d_all, int(firsts[0]), int(lasts[0]) + 1)

        def rows(a: int, b: int) -> npt.NDArray[Any]:
            """The valid words of ticks a … b − 1: a view when every one is valid."""
            words: npt.NDArray[Any] = d_all[a:b]
            return words if np.count_nonzero(v[a:b]) == b - a else words[v[a:b]]

        def valid_words(a: int, b: int) -> int:
            return int(np.count_nonzero(v[a:b])) if b > a else 0

        out: list[ReadoutFrame] = []
        # Events in stream order; at one tick a `first` comes before a `last`.
        events = sorted([(int(i), 0) for i in firsts] + [(int(i), 1) for i in lasts])
        pos = 0  # first tick whose valid word is not consumed yet
        for i, kind in events:
            if kind == 0:  # first
                if self._open:
                    self._take(rows(pos, i))
                    if self._open:  # (not cut off as "overrun" by the words just taken)
                        self._fail_pending("truncated", "a new packet started before "
                                                        "this one's last word")
                else:
                    self._stray(valid_words(pos, i))
                self._open = True
                pos = i
            else:  # last
                if self._open:
                    self._take(rows(pos, i + 1))
                    if self._open:
                        self._finish(out)
                else:
                    self._stray(valid_words(pos, i + 1))
                pos = i + 1
        if self._open:
            self._take(rows(pos, t))
            # The packet continues in the next call: keep copies, not views of the caller's
            # arrays.
            self._pending = [c if c.base is None else c.copy() for c in self._pending]
        else:
            self._stray(valid_words(pos, t))
        return out

    def _one_packet(self, v: npt.NDArray[np.bool_], data: npt.NDArray[Any], a: int, b: int
                    ) -> list[ReadoutFrame]:
        """``feed`` of ticks holding one whole packet (ticks ``a`` … ``b − 1``: its only
        ``first`` and ``last``) and no packet open before: what the event loop does for
        them (its words a view when none of its ticks is idle; the valid words outside it
        stray), in fewer steps (a detector's fly acquisition feeds a frame at a time)."""
        inside = int(np.count_nonzero(v[a:b]))
        self._stray(int(np.count_nonzero(v)) - inside)
        self._open = True
        self._take(data[a:b] if inside == b - a else data[a:b][v[a:b]])
        out: list[ReadoutFrame] = []
        if self._open:
            self._finish(out)
        return out

    # -- internals -----------------------------------------------------------------------

    def _stray(self, n: int) -> None:
        if n > 0:
            self.stray_words += n

    def _take(self, chunk: npt.NDArray[Any]) -> None:
        """Append words to the open packet; cut it off when it grows too long.

        The packet is cut off at the first word past ``max_packet_words`` and the words
        after that one are stray, wherever the calls split the stream: the counters are
        those of a stream fed one tick at a time."""
        if not len(chunk):
            return
        room = (None if self.max_packet_words is None
                else self.max_packet_words - self._pending_words + 1)
        if room is not None and len(chunk) >= room:
            self._pending.append(chunk[:room])
            self._fail_pending("overrun", f"no last word within {self.max_packet_words} words")
            self._stray(len(chunk) - room)
            return
        self._pending.append(chunk)
        self._pending_words += len(chunk)

    def _header_frame(self) -> int | None:
        if not self._pending:
            return None
        h = self._pending[0][0]
        if int(h[0]) != MAGIC:
            return None
        return self._number(int(h[H_FRAME]) | (int(h[H_FRAME + 1]) << 16))

    def _fail_pending(self, check: str, message: str) -> None:
        self._error(check, message, self._header_frame())
        self._pending, self._pending_words, self._open = [], 0, False

    def _error(self, check: str, message: str, frame_number: int | None) -> None:
        self.corrupt += 1
        self.corrupt_by_check[check] += 1
        self._corrupt_since_good += 1
        self._lost_since_good += 1
        self.errors.append(ReadoutError(check, message, frame_number))

    def _finish(self, out: list[ReadoutFrame]) -> None:
        chunks = self._pending
        self._pending, self._pending_words, self._open = [], 0, False
        packet = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        slot = self._slot(packet)
        try:
            frame = decode_packet(packet, self.lanes, self.sensor_shape, out=slot)
        except PacketError as e:
            self._error(e.check, str(e), self._number(e.frame_number))
            return
        if self._offset:
            frame = replace(frame, frame_number=(frame.frame_number + self._offset) % FRAME_MOD)
        fn = frame.frame_number
        if self._expected is not None and fn != self._expected:
            gap = (fn - self._expected) % FRAME_MOD
            if gap >= FRAME_MOD // 2:
                self._error("sequence", f"frame number {fn} repeats or goes back (expected "
                                        f"{self._expected})", fn)
                return
            missing = max(0, gap - self._corrupt_since_good)
            self.dropped += missing
            self._lost_since_good += missing
        self.good += 1
        self.framing_errors += frame.framing_error
        self.last_frame_number = fn
        self._expected = (fn + 1) % FRAME_MOD
        self._corrupt_since_good = 0
        if self._lost_since_good:
            frame = replace(frame, lost_before=self._lost_since_good)
            self._lost_since_good = 0
        if slot is not None:
            self._into_used += 1
        out.append(frame)

    # -- output --------------------------------------------------------------------------

    @property
    def in_packet(self) -> bool:
        """A packet has started and its last word has not arrived yet."""
        return self._open

    def report(self) -> dict[str, Any]:
        """Counters as a plain dict (for logs, documents and tests)."""
        return {
            "good": self.good,
            "corrupt": self.corrupt,
            "corrupt_by_check": dict(self.corrupt_by_check),
            "dropped": self.dropped,
            "framing_errors": self.framing_errors,
            "stray_words": self.stray_words,
            "last_frame_number": self.last_frame_number,
            "expected_frame": self._expected,
            "in_packet": self._open,
            "errors": [{"check": e.check, "message": e.message, "frame_number": e.frame_number}
                       for e in self.errors],
        }


__all__ = [
    "FRAME_MOD",
    "PacketError",
    "Readout",
    "ReadoutError",
    "ReadoutFrame",
    "decode_packet",
]
