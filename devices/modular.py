"""A detector of many modules, each with its own firmware board, simulated in parallel.

:class:`ModularFirmware` is the firmware of a :class:`fpga.designs.layout.DetectorLayout`:
one :class:`~devices.firmware.Firmware` board per module, all built for the module's chain
and, on the compiled backend, sharing one compiled program (each board keeps its own
state: registers, tables, frame counter, readout). A detector frame of counts is cut into
module frames (the gaps are not sent: there is no sensor there), every module's link
words go through its board and its readout, and the module images are put back together
into the detector's frame (gaps 0; the published pixel mask marks them).

Parallel simulation: the modules are independent, so they run on ``workers`` threads at
once. The compiled chain runs with the GIL released (numba ``nogil``), and so do the
bulk numpy steps around it (link words, packet decoding, ``zlib.crc32``), so threads use
the cores without copying frames between processes. Each board's work is sequential and
every module ends up in its own slot, so the result is the same, bit for bit, for any
number of workers (tests check it against one worker). Measured against processes with
shared memory in ``benchmarks/firmware.py`` (``firmware.p6m.threads_vs_processes``).

A detector frame is good only when every module delivered its part: a module packet
lost or corrupt on its link loses that frame (counted by that module's readout, and by
:meth:`report`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from dataflow.packets import ReadoutFrame
from dataflow.readout import ReadoutError
from fpga.designs.layout import DetectorLayout
from fpga.designs.reference import ChainConfig, ChainTables
from sme.buffers import ResultBuffers

from .firmware import BACKENDS, Firmware, FirmwareError
from .sensor_link import LinkStream, link_stream

__all__ = ["ModularFirmware", "ModuleLinks"]

T = TypeVar("T")

COUNTERS = ("good", "corrupt", "dropped", "framing_errors", "stray_words")
FRAMES_KEPT = 4
"""Frame-sized buffers kept for the assembled frames (used again once the caller has
dropped the frames they held: a 6M frame is 12 MB of fresh pages otherwise)."""


@dataclass(frozen=True)
class ModuleLinks:
    """The link words of some detector frames, one stream per module (from
    :meth:`ModularFirmware.link`)."""

    streams: tuple[LinkStream, ...]


class _Errors:
    """The readouts' errors, each message prefixed with its module (``module 7: …``)."""

    def __init__(self, boards: Sequence[Firmware]) -> None:
        self._boards = boards

    def _all(self) -> list[ReadoutError]:
        out = []
        for m, board in enumerate(self._boards):
            out += [ReadoutError(e.check, f"module {m}: {e.message}", e.frame_number)
                    for e in board.readout.errors]
        return out

    def __getitem__(self, index: Any) -> Any:
        return self._all()[index]

    def __len__(self) -> int:
        return sum(len(board.readout.errors) for board in self._boards)

    def __iter__(self) -> Any:
        return iter(self._all())


class _Readouts:
    """What the detector asks of a readout, over every module's."""

    def __init__(self, boards: Sequence[Firmware]) -> None:
        self._boards = boards
        self.errors = _Errors(boards)

    @property
    def corrupt(self) -> int:
        """Corrupt module packets so far."""
        return sum(board.readout.corrupt for board in self._boards)


class ModularFirmware:
    """The boards of every module of ``layout`` on ``backend``; see the module docstring.

    Parameters
    ----------
    layout
        The detector's modules (``DetectorLayout``).
    backend
        ``"compiled"`` (default), ``"interp"`` or ``"ghdl"``.
    workers
        Threads simulating modules at once (default: the CPUs this process may use).
    checks
        The compiled backend's run-time range checks (on by default; off only for a
        design verified with them on).
    """

    FAULTS = Firmware.FAULTS

    def __init__(self, layout: DetectorLayout, backend: str = "compiled", *,
                 workers: int | None = None, checks: bool = True) -> None:
        if not isinstance(layout, DetectorLayout):
            raise ValueError(f"ModularFirmware: layout must be a DetectorLayout, not {layout!r}")
        if backend not in BACKENDS:
            raise ValueError(f"firmware backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                    or workers < 1):
            raise ValueError(f"workers must be an int >= 1, not {workers!r}")
        self.layout = layout
        self.params = layout.module
        self.backend = backend
        self.workers = workers or len(os.sched_getaffinity(0))
        first = Firmware(layout.module, backend, checks=checks)
        self.boards = [first] + [Firmware(layout.module, backend, shared=first, checks=checks)
                                 for _ in range(layout.modules - 1)]
        self.readout = _Readouts(self.boards)
        self.config = ChainConfig()
        self._pool: ThreadPoolExecutor | None = None
        self._spare: list[LinkStream] = []
        """The link words ``acquire`` built last (its own, done with): refilled by the
        next one of as many frames instead of new arrays (fresh memory is page faults)."""
        self._frames = ResultBuffers(keep=FRAMES_KEPT)

    # -- parallel map ----------------------------------------------------------------------

    def _map(self, fn: Callable[[int], T]) -> list[T]:
        """``[fn(m) for m in modules]``, on the worker threads and the calling one: each
        takes the next module when done with one (no task or wake-up per module, which
        holds the GIL). An error stops the taking; the lowest module's is raised."""
        n = len(self.boards)
        if self.workers == 1 or n == 1:
            return [fn(m) for m in range(n)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers - 1,
                                            thread_name_prefix="smeflow-module")
        results: list[Any] = [None] * n
        errors: dict[int, BaseException] = {}
        modules = iter(range(n))  # (next() on it is atomic: each module is taken once)

        def work() -> None:
            for m in modules:
                if errors:
                    return
                try:
                    results[m] = fn(m)
                except BaseException as exc:  # (re-raised below, in the caller)
                    errors[m] = exc
                    return

        helpers = [self._pool.submit(work) for _ in range(self.workers - 1)]
        work()
        for helper in helpers:
            helper.result()
        if errors:
            raise errors[min(errors)]
        return results

    def close(self) -> None:
        """Stop the worker threads and release the boards' simulations (``configure``
        starts them again)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        for board in self.boards:
            board.close()

    # -- configuration -------------------------------------------------------------------

    def configure(self, config: ChainConfig, tables: ChainTables | None = None) -> None:
        """Reset every board and load ``config`` (the ROI cut to each module, in its own
        pixels) and ``tables`` (detector-frame tables cut to each module)."""
        if config.binning and len(self.boards) > 1:
            raise ValueError("binning: a multi-module detector's modules do not bin")
        parts = None if tables is None else self._split_tables(tables)
        self.config = config

        def one(m: int) -> None:
            if m == 0 and done:
                return
            roi = self.layout.module_roi(config.roi, m)
            self.boards[m].configure(ChainConfig(config.threshold, roi, config.binning),
                                     None if parts is None else parts[m])

        done = False
        one(0)  # loads the shared compiled program once, before the others use it
        done = True
        self._map(one)

    def _split_tables(self, tables: ChainTables) -> list[ChainTables]:
        if tables.dark.shape != self.layout.shape:
            raise ValueError(f"ChainTables: tables have shape {tables.dark.shape}, the "
                             f"detector is {self.layout.shape}")
        return [ChainTables(d, g, k) for d, g, k in zip(
            self.layout.split(tables.dark), self.layout.split(tables.gain),
            self.layout.split(tables.mask), strict=True)]

    def inject_fault(self, kind: str) -> None:
        """Damage module 0's next packet (see ``Firmware.inject_fault``): that detector
        frame is lost."""
        self.boards[0].inject_fault(kind)

    # -- acquisition -----------------------------------------------------------------------

    def _module_counts(self, counts: Sequence[npt.ArrayLike]) -> list[list[npt.NDArray[Any]]]:
        per_frame = [self.layout.split(c) for c in counts]
        return [[parts[m] for parts in per_frame] for m in range(len(self.boards))]

    def _streams(self, modules: list[list[npt.NDArray[Any]]],
                 spare: Sequence[LinkStream] = ()) -> list[LinkStream]:
        """Every module's link words (into ``spare[m]``, streams no one uses any more, when
        they fit); a module's bad counts (out of the 20-bit range, say) are a
        ``ValueError`` naming the module."""
        def one(m: int) -> LinkStream:
            try:
                return link_stream(modules[m], self.params,
                                   reuse=spare[m] if m < len(spare) else None)
            except ValueError as exc:
                raise ValueError(f"module {m}: {exc}") from None

        return self._map(one)

    def link(self, counts: Sequence[npt.ArrayLike]) -> ModuleLinks | None:
        """Every module's link words for ``counts`` (detector frames), built ahead; None
        on the GHDL backend."""
        if self.backend == "ghdl":
            return None
        return ModuleLinks(tuple(self._streams(self._module_counts(counts))))

    def simulate(self, links: ModuleLinks) -> list[dict[str, np.ndarray]]:
        """The firmware alone: every module's link words through its board, in parallel;
        each module's packet outputs (``Firmware.simulate``)."""
        return self._map(lambda m: self.boards[m].simulate(links.streams[m]))

    def acquire(self, counts: Sequence[npt.ArrayLike], *, allow_loss: bool = False,
                links: Sequence[ModuleLinks] | None = None) -> list[ReadoutFrame]:
        """Send detector frames of ``counts`` through every module's board; the frames
        every module delivered come back, assembled (see ``Firmware.acquire``). Every
        module's counts are checked before any board runs, so a module's bad counts leave
        every board as it was (their frame counters stay in step)."""
        modules = self._module_counts(counts)
        spare, self._spare = self._spare, []  # (not refilled twice, should this fail)
        built = self._streams(modules, spare) if links is None else []

        def one(m: int) -> list[ReadoutFrame]:
            if links is not None:
                own: list[LinkStream] | None = [group.streams[m] for group in links]
            else:  # the GHDL backend builds its stream around the configuration replay
                own = None if self.backend == "ghdl" else [built[m]]
            return self.boards[m].acquire(modules[m], allow_loss=True, links=own)

        delivered = self._map(one)
        if built:
            self._spare = built
        frames = self._assemble(delivered)
        if not allow_loss and len(frames) != len(counts):
            errors = "; ".join(e.message for e in list(self.readout.errors)[-3:]) \
                or "no packet"
            raise FirmwareError(f"firmware ({self.backend}, {len(self.boards)} modules) "
                                f"delivered {len(frames)} of {len(counts)} frames: {errors}")
        return frames

    def _assemble(self, delivered: list[list[ReadoutFrame]]) -> list[ReadoutFrame]:
        """Detector frames from the module frames: those whose frame number every module
        delivered, in order."""
        by_number = [{f.frame_number: f for f in frames} for frames in delivered]
        numbers = [f.frame_number for f in delivered[0]
                   if all(f.frame_number in seen for seen in by_number[1:])]
        out = []
        for n in numbers:
            parts = [seen[n] for seen in by_number]
            first = parts[0]
            out.append(ReadoutFrame(
                frame_number=n, timestamp=first.timestamp,
                flags=int(np.bitwise_or.reduce([p.flags for p in parts])),
                threshold=first.threshold,
                image=self.layout.assemble(
                    [p.image for p in parts],
                    out=self._frames.take(self.layout.shape, np.uint16)),
                roi_sum=sum(p.roi_sum for p in parts),
                saturated=sum(p.saturated for p in parts),
                histogram=np.sum([p.histogram for p in parts], axis=0),
                crc=first.crc, lost_before=max(p.lost_before for p in parts)))
        return out

    def report(self) -> dict[str, Any]:
        """The readouts' counters over the modules: ``good`` the frames of the module
        that delivered fewest (every frame has one packet per module), the other
        counters summed (a module packet lost is one ``corrupt`` or ``dropped``);
        ``errors`` (each naming its module) and ``modules``."""
        reports = [board.report() for board in self.boards]
        out: dict[str, Any] = {k: sum(int(r[k]) for r in reports) for k in COUNTERS}
        out["good"] = min(int(r["good"]) for r in reports)
        out["errors"] = [{"check": e.check, "message": e.message,
                          "frame_number": e.frame_number} for e in self.readout.errors]
        out["modules"] = len(self.boards)
        return out
