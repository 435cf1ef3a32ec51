"""The detector's firmware in the loop: the SME chain on a chosen backend, fed with link
words from the sensor model and read out into checked frames.

Backends: ``"interp"`` (reference interpreter), ``"compiled"`` (numba; the default, fast
enough for megapixel frames) and ``"ghdl"`` — the exported VHDL of the chain run in GHDL
through cocotb, in lock-step with the Python model (every output compared every tick),
for small frames. Each GHDL acquisition starts the simulator from reset, so the
configuration is replayed first, and the frames' numbers and time stamps (which the
VHDL's counters start again from 0) are continued from the previous acquisitions': the
readout reads the run's frame numbers on from the frames sent before
(``Readout.renumber``), so the frames, the checks and ``report()`` of both boards agree,
as one board that is not reset between acquisitions.

``close`` releases the board (and removes the GHDL board's build folder). A closed board
refuses to acquire (:class:`FirmwareClosedError`, naming ``close()``) until ``configure``
opens it again, as a host re-opening a real detector initialises it: from reset, with the
configuration loaded again — frame numbers and time stamps start again from 0 and the
readout's counters with them (docs/firmware.md, "Closing and re-opening"). The detector
configures its board at each ``stage()``.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dataflow.packets import ReadoutFrame
from dataflow.readout import Readout
from fpga.designs.chain import build
from fpga.designs.params import ChainParams
from fpga.designs.reference import ChainConfig, ChainTables, setup_stimulus, setup_ticks
from sme import Network
from sme.backend import Build, Session, batch_rows, get_backend

from .sensor_link import LinkStream, link_stream

BACKENDS = ("interp", "compiled", "ghdl")
PACKET_SIGNALS = ["packet.valid", "packet.first", "packet.last", "packet.data"]
PACKET_DTYPES = {"packet.data": np.uint16}
"""Packet words come out as the 16-bit lanes they are (a quarter of int64's memory)."""
TIMESTAMP_MOD = 1 << 48
"""The header's time stamp is the receiver's 48-bit tick counter."""


class FirmwareError(RuntimeError):
    """The firmware could not deliver a frame (a corrupt or missing packet, a GHDL
    mismatch); the message says which check failed."""


class FirmwareClosedError(FirmwareError):
    """An acquisition on a board that ``close()`` released (``configure`` opens it)."""


class Firmware:
    """One detector board: the chain for ``params`` on ``backend``.

    ``configure`` loads registers and calibration tables (as a host does over the control
    link); ``acquire`` sends count frames over the link and returns the frames the readout
    backend reassembled, in order. The readout's counters (``report()``) persist across
    acquisitions, so frame-number gaps between calls are caught too; after each
    acquisition the readout is told how many frames the board sent
    (``Readout.settle``), so the loss of the last packets is counted as well.
    """

    FAULTS = ("flip", "drop", "cut")
    """Faults ``inject_fault`` can put on the packet link: a flipped payload bit (the
    readout's CRC check catches it), a packet lost on the way (a frame-number gap, or at
    the end of an acquisition a frame the board sent that never arrived) or a packet whose
    last word is lost (truncated)."""

    def __init__(self, params: ChainParams, backend: str = "compiled", *,
                 shared: Firmware | None = None, checks: bool = True) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"firmware backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        self.params = params
        self.backend = backend
        self._build: Build | None = None
        self.checks = bool(checks)
        self.network: Network
        if shared is not None and backend == "compiled" and shared.backend == "compiled" \
                and shared.params == params and shared.checks == self.checks:
            # another board of the same chain: its compiled code, our own state
            self.network, self._build = shared.network, shared._prepared()
        else:
            self.network = build(params)
        self.config = ChainConfig()
        self.tables = ChainTables.reset(params)
        self.readout = Readout(params.lanes, (params.height, params.width))
        self._sim: Session | None = None
        self._export: Path | None = None
        self._setup: dict[str, np.ndarray] = {}
        self._setup_ticks = 0
        self._faults: list[str] = []
        self._closed = False
        self._sent = 0
        self._ticks = 0
        """Ticks of the link since the configuration (GHDL: the previous runs' after their
        configuration replay), for the GHDL runs' time stamps."""

    def configure(self, config: ChainConfig, tables: ChainTables | None = None) -> None:
        """Reset the board and load ``config`` (and ``tables``, else the current ones); a
        closed board is opened again."""
        if tables is not None:
            tables.check(self.params)
            self.tables = tables
        self.config = config
        self._setup_ticks = setup_ticks(self.params, config, self.tables)
        self._setup = setup_stimulus(self.params, self._setup_ticks, config, self.tables)
        self.readout = Readout(self.params.lanes, (self.params.height, self.params.width))
        self._sent = 0  # the board's frame counter restarts at reset
        self._ticks = 0
        self._closed = False
        if self._sim is not None:
            self._sim.close()
            self._sim = None
        if self.backend == "ghdl":
            return
        self._sim = get_backend(self.backend).open(self._prepared())  # from reset
        self._sim.run_batch(self._setup, self._setup_ticks, outputs=PACKET_SIGNALS)

    def _prepared(self) -> Build:
        """The simulation build of the chain (generated once; each ``configure`` opens a
        new session of it, which starts from reset)."""
        if self._build is None:
            options = {"checks": self.checks} if self.backend == "compiled" else {}
            self._build = get_backend(self.backend).prepare(self.network, **options)
        return self._build

    def inject_fault(self, kind: str) -> None:
        """Damage the next packet the firmware sends (``"flip"``, ``"drop"`` or ``"cut"``,
        see ``FAULTS``): how tests and demonstrations show that link errors are caught."""
        if kind not in self.FAULTS:
            raise ValueError(f"fault {kind!r}: choose one of {', '.join(self.FAULTS)}")
        self._faults.append(kind)

    def _apply_faults(self, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The packet outputs with the injected faults applied to the first packets."""
        if not self._faults:
            return out
        out = {name: np.array(values) for name, values in out.items()}
        firsts = np.flatnonzero(out["packet.valid"] & out["packet.first"])
        lasts = np.flatnonzero(out["packet.valid"] & out["packet.last"])
        for first, last in zip(firsts, lasts, strict=False):
            if not self._faults:
                break
            kind = self._faults.pop(0)
            if kind == "flip":  # one bit of a payload word in the middle of the packet
                words = np.flatnonzero(out["packet.valid"][first:last + 1]) + first
                out["packet.data"][words[len(words) // 2]] ^= 1 << 5
            elif kind == "cut":
                out["packet.valid"][last] = False
            else:
                out["packet.valid"][first:last + 1] = False
        return out

    def link(self, counts: Sequence[npt.ArrayLike]) -> LinkStream | None:
        """The link words ``acquire`` sends for ``counts``, built ahead (in another thread,
        say) and handed to ``acquire(links=…)``; ``None`` on the GHDL backend, which
        builds its own stream around the configuration replay."""
        return None if self.backend == "ghdl" else link_stream(counts, self.params)

    def acquire(self, counts: Sequence[npt.ArrayLike], *, allow_loss: bool = False,
                links: Sequence[LinkStream] | None = None) -> list[ReadoutFrame]:
        """Send ``counts`` (sensor frames) through the firmware; the good frames come
        back. A packet that fails a readout check is counted by the readout
        (``report()``) and raises ``FirmwareError``, unless ``allow_loss``: then the
        frames that arrived are returned and the caller decides. ``links``: the counts'
        link words from ``link`` (together, in order), when they were built ahead.
        ``FirmwareClosedError`` after ``close()`` until ``configure``."""
        self._check_open("acquire")
        if not self._setup:  # never configured: from reset, before counting
            self.configure(self.config)
        before = (self.readout.corrupt, self.readout.dropped)  # (report() copies the errors)
        if self.backend == "ghdl":
            outputs, ticks = self._acquire_ghdl(counts)
            self.readout.renumber(self._sent)  # the run's VHDL numbers its frames from 0
            frames = [self._stamped_on(f) for f in
                      self.readout.feed_outputs(self._apply_faults(outputs))]
            self._sent += len(counts)
            self._ticks += ticks
            self.readout.settle(self._sent)
        else:
            frames = []
            for link in links if links is not None else [link_stream(counts, self.params)]:
                out = self.simulate(link)
                frames += self.readout.feed_outputs(self._apply_faults(out))
            self._sent += len(counts)
            self.readout.settle(self._sent)
        if allow_loss:
            return frames
        if len(frames) != len(counts) or (self.readout.corrupt, self.readout.dropped) != before:
            errors = "; ".join(str(e) for e in list(self.readout.errors)[-3:]) or "no packet"
            raise FirmwareError(f"firmware ({self.backend}) delivered {len(frames)} of "
                                f"{len(counts)} frames: {errors}")
        return frames

    def simulate(self, link: LinkStream) -> dict[str, np.ndarray]:
        """The firmware alone: ``link``'s words through the board, its packet outputs
        per tick (``acquire`` decodes them; benchmarks time this part)."""
        self._check_open("simulate")
        if self._sim is None:
            if self.backend == "ghdl":
                raise FirmwareError("simulate: the GHDL backend runs whole acquisitions only")
            self.configure(self.config)
        assert self._sim is not None
        return self._sim.run_batch(link.stimulus(), link.ticks, outputs=PACKET_SIGNALS,
                                   dtypes=PACKET_DTYPES)

    def _stamped_on(self, frame: ReadoutFrame) -> ReadoutFrame:
        """A GHDL run's frame time-stamped on from the previous runs' (the readout
        numbered it on)."""
        return dataclasses.replace(frame, timestamp=(frame.timestamp + self._ticks)
                                   % TIMESTAMP_MOD)

    def _acquire_ghdl(self, counts: Sequence[npt.ArrayLike]
                      ) -> tuple[dict[str, np.ndarray], int]:
        """The packet outputs of one GHDL run from reset (the configuration replayed,
        then ``counts``), and the ticks of the link after the replay."""
        from fpga.cosim import run_lockstep
        from fpga.export import export

        if not self._setup:  # never configured: replay the configuration as the
            self.configure(self.config)  # compiled board's first acquisition does
        if self._export is None:
            self._export = Path(tempfile.mkdtemp(prefix="smeflow-firmware-"))
            export(self.network, self._export)
        link = link_stream(counts, self.params, lead_idle=self._setup_ticks)
        stim = link.stimulus()
        stim.update(setup_stimulus(self.params, link.ticks, self.config, self.tables))
        rows = batch_rows(self.network, stim, link.ticks)
        result = run_lockstep(self.network, self._export, rows, trace=True,
                              build_dir=self._export / "lockstep")
        if not result.passed:
            raise FirmwareError(f"GHDL and the Python model disagree: {result.mismatch}")
        assert result.trace is not None
        trace = result.trace
        return ({name: np.asarray(trace.column(name)[1:]) for name in PACKET_SIGNALS},
                link.ticks - self._setup_ticks)

    def report(self) -> dict[str, Any]:
        """The readout backend's counters (good, corrupt, dropped, …)."""
        return self.readout.report()

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise FirmwareClosedError(
                f"firmware ({self.backend}): {what}() on a board that close() released; "
                "configure() opens it again from reset (staging its detector does)")

    @property
    def closed(self) -> bool:
        """Whether ``close()`` released the board (``configure`` opens it again)."""
        return self._closed

    def close(self) -> None:
        """Release the board: its simulation, and the GHDL board's build folder. Until
        ``configure`` opens it again (from reset: frame numbers, time stamps and the
        readout's counters start again; the GHDL board exports its VHDL again),
        acquisitions are refused with ``FirmwareClosedError``. Closing twice is fine."""
        self._closed = True
        self._setup = {}
        if self._sim is not None:
            self._sim.close()
            self._sim = None
        if self._export is not None:
            shutil.rmtree(self._export, ignore_errors=True)
            self._export = None

