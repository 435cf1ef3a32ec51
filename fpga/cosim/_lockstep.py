"""Lock-step co-simulation: the exported VHDL in GHDL (through cocotb) beside the Python
model, with the same stimulus, compared after every tick.

The controller (this module, in the caller's process) owns the Python ``Simulator`` and the
stimulus iterator. The cocotb test (``cocotb_bench``) runs inside GHDL and asks the
controller for ticks over a local connection: for each tick the controller pulls the next
stimulus item, applies it to the model, steps it, and sends the DUT input values together
with the model's top-level outputs. The bench drives the DUT, clocks it once and compares.
Because the controller only pulls from the iterator when the bench asks, the stimulus can
be any Python iterator, including one fed live by a device (use ``chunk=1``).

    result = run_lockstep(net, "out/counter", stimulus=counter.stimulus(1000))
    result.check()          # raises LockstepMismatch naming tick, signal and both values
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from sme.backend import Backend
from sme.errors import BackendError, UndefinedSignalError
from sme.network import Network
from sme.simulator import Simulator
from sme.trace import UNDEFINED, Trace

from . import _protocol as P
from ._flatten import write_wrapper
from ._ports import Port, TopLevel

BENCH_MODULE = "fpga.cosim.cocotb_bench"
BENCH_PYTEST_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                   "COCOTB_REWRITE_ASSERTION_FILES": "cocotb_bench.py"}
"""cocotb sets pytest up inside GHDL to rewrite the asserts of the bench, which loaded every
installed pytest plugin (zarr's, xdist's, hypothesis', smeflow's...) and rewrote every
module imported after it, on each co-simulation: the bench needs neither."""
_LOG_TAIL_LINES = 40
_GHDL_STOP = re.compile(r"ghdl[\w-]*:error: (?!simulation failed)(.*)"
                        r"|(\S+:\((?:assertion|report) (?:failure|error)\):.*)")
"""A line in which GHDL says why it stopped the simulation: a run-time check (an index or
a value out of bounds) or a failed assertion or report of severity failure/error."""
_END: Any = object()


class LockstepError(BackendError):
    """The co-simulation could not run (GHDL or cocotb missing, VHDL that does not build,
    a DUT without the expected ports). The message includes the end of the simulator log."""


@dataclass(frozen=True)
class Mismatch:
    """The first place where the VHDL and the Python model disagree."""

    tick: int
    """The trace row, as in ``sme.trace.Difference`` and the testbench's reports: 0 is the
    state after reset, ``k`` the state right after tick ``k - 1``."""
    signal: str
    """``bus.signal`` of the Python model."""
    port: str
    """The VHDL port name."""
    expected: Any
    """The Python model's value."""
    got: Any
    """The DUT's value (a string when some bits were not 0/1)."""

    def __str__(self) -> str:
        when = f"tick {self.tick}" + (" (reset state)" if self.tick == 0 else "")
        return (f"{when}, signal {self.signal} (port {self.port}): expected {self.expected!r}, "
                f"got {self.got!r}")


class LockstepMismatch(AssertionError):
    """The VHDL differed from the Python model; ``result`` has the details."""

    def __init__(self, result: LockstepResult) -> None:
        super().__init__(result.summary())
        self.result = result


@dataclass
class LockstepResult:
    """What a lock-step run found."""

    network: str
    passed: bool
    ticks: int
    """Ticks run (up to and including a mismatching one)."""
    seconds: float
    """Wall time of the simulation run (GHDL start-up included, build excluded)."""
    mismatch: Mismatch | None = None
    build_dir: Path | None = None
    log_file: Path | None = None
    trace: Trace | None = field(default=None, repr=False)
    """The Python model's trace of the ticks run, when ``trace=True`` was asked."""

    @property
    def ticks_per_second(self) -> float:
        """Compared ticks per second of wall time."""
        return self.ticks / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line (two on failure) for people."""
        head = (f"lock-step {self.network}: {'PASS' if self.passed else 'FAIL'}, "
                f"{self.ticks} ticks in {self.seconds:.2f} s "
                f"({self.ticks_per_second:,.0f} ticks/s)")
        if self.mismatch is not None:
            head += f"\nfirst mismatch: {self.mismatch}"
            if self.log_file is not None:
                head += f"\nsimulator log: {self.log_file}"
        return head

    def check(self) -> LockstepResult:
        """Raise ``LockstepMismatch`` unless the run passed; return self otherwise."""
        if not self.passed:
            raise LockstepMismatch(self)
        return self


def vhdl_sources(vhdl_dir: str | os.PathLike[str]) -> list[Path]:
    """The design files of an exported folder: every ``.vhd``/``.vhdl`` file except
    testbenches (``tb_*``)."""
    folder = Path(vhdl_dir)
    files = sorted(p for p in folder.iterdir()
                   if p.suffix in (".vhd", ".vhdl") and not p.name.startswith("tb_"))
    if not files:
        raise LockstepError(f"no VHDL design files in {folder}")
    return files


class _Controller:
    """Serves the cocotb bench: stimulus in, model outputs out, verdict back."""

    def __init__(
        self,
        sim: Simulator,
        top: TopLevel,
        stimulus: Iterator[Mapping[Any, Any]] | None,
        ticks: int | None,
        chunk: int,
        half_period_ps: int,
    ) -> None:
        self.sim, self.top, self.stimulus, self.ticks = sim, top, stimulus, ticks
        self.chunk, self.half_ps = chunk, half_period_ps
        self.done = 0
        self.verdict: tuple[Any, ...] | None = None
        self.model_error: BaseException | None = None
        self.server_error: BaseException | None = None
        self.expected_rows: dict[int, list[Any]] = {}
        net = sim.network
        self._in_views = [(p, sim.output(net.bus(p.signal.split(".")[0])),
                           p.signal.split(".", 1)[1]) for p in top.inputs]
        self._out_views = [(p, sim.output(net.bus(p.signal.split(".")[0])),
                            p.signal.split(".", 1)[1]) for p in top.outputs]

    @staticmethod
    def _values(views: list[tuple[Port, Any, str]]) -> list[Any]:
        out = []
        for _, view, sig in views:
            try:
                out.append(getattr(view, sig))
            except UndefinedSignalError:
                out.append(UNDEFINED)
        return out

    def _raw(self, views: list[tuple[Port, Any, str]], values: list[Any]) -> list[Any]:
        return [p.to_raw(v) for (p, _, _), v in zip(views, values, strict=True)]

    def serve(self, conn: Connection) -> None:
        in_vals = self._values(self._in_views)
        out_vals = self._values(self._out_views)
        self.expected_rows[P.RESET_TICK] = out_vals
        conn.send((P.SETUP, [p.wire() for p in self.top.inputs],
                   [p.wire() for p in self.top.outputs],
                   self._raw(self._in_views, in_vals), self._raw(self._out_views, out_vals),
                   self.half_ps))
        while True:
            msg = conn.recv()
            if msg[0] != P.NEXT:
                self.verdict = msg
                return
            try:
                rows = self._next_rows()
            except Exception as exc:
                self.model_error = exc
                conn.send((P.ABORT, f"{type(exc).__name__}: {exc}"))
                continue
            if rows:
                conn.send((P.CHUNK, self.done - len(rows), rows))
            else:
                conn.send((P.END,))

    def _next_rows(self) -> list[tuple[list[Any], list[Any]]]:
        rows: list[tuple[list[Any], list[Any]]] = []
        self.expected_rows = {}
        sim = self.sim
        while len(rows) < self.chunk and (self.ticks is None or self.done < self.ticks):
            if self.stimulus is not None:
                item = next(self.stimulus, _END)
                if item is _END:
                    self.stimulus = None
                    if self.ticks is None:
                        self.ticks = self.done
                        break
                else:
                    sim.apply(item)
            in_vals = self._values(self._in_views)
            sim.step()
            out_vals = self._values(self._out_views)
            self.expected_rows[self.done] = out_vals
            rows.append((self._raw(self._in_views, in_vals), self._raw(self._out_views, out_vals)))
            self.done += 1
        return rows


def run_lockstep(
    network: Network,
    vhdl: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    stimulus: Iterable[Mapping[Any, Any]] | None = None,
    ticks: int | None = None,
    *,
    build_dir: str | os.PathLike[str] | None = None,
    backend: str | Backend = "interp",
    chunk: int = 512,
    period_ns: int = 10,
    trace: bool = False,
    waves: bool = False,
    check: bool = False,
    on_build: Callable[[Path], None] | None = None,
) -> LockstepResult:
    """Build the exported VHDL of ``network`` with GHDL and run it in lock-step with the
    Python model.

    Parameters
    ----------
    network:
        The network that was exported (its top-level entity is ``network.name``).
    vhdl:
        The export folder (every ``.vhd`` file but ``tb_*``) or a list of VHDL files.
    stimulus:
        One mapping per tick, as ``Simulator.run`` takes (``{"bus.signal": value}``). Pulled
        lazily, only as fast as GHDL asks for it.
    ticks:
        Number of ticks; ``None`` runs until the stimulus ends. When the stimulus ends
        first the inputs hold their last values.
    build_dir:
        Where GHDL builds and runs (default: ``lockstep_build`` next to the VHDL files).
    backend:
        The Python simulation backend of the model (the interpreter by default).
    chunk:
        Ticks sent to GHDL per message; use 1 for stimulus produced live.
    period_ns:
        The clock period in simulated time.
    trace:
        Keep the Python model's trace in the result.
    waves:
        Make GHDL write a ``.ghw`` waveform in the build folder.
    check:
        Raise ``LockstepMismatch`` on a difference instead of returning a failed result.
    on_build:
        Called with the build folder after GHDL analysed the design (for tests and tools).

    Raises
    ------
    LockstepError
        When the co-simulation cannot run; the message ends with the simulator log.
    """
    if ticks is None and stimulus is None:
        raise LockstepError("run_lockstep needs ticks= or stimulus= to know when to stop")
    if chunk < 1 or period_ns < 2 or period_ns % 2:
        raise LockstepError("chunk must be >= 1 and period_ns an even number >= 2")
    sources = (vhdl_sources(vhdl) if isinstance(vhdl, (str, os.PathLike))
               else [Path(v) for v in vhdl])
    bdir = Path(build_dir) if build_dir is not None else sources[0].parent / "lockstep_build"
    bdir = bdir.resolve()
    bdir.mkdir(parents=True, exist_ok=True)
    log_file = bdir / "lockstep.log"
    runner = _runner()
    top = network.name
    top_level = TopLevel.of(network)
    exported = [s for s in sources if s.name == f"{top}.vhd"]
    wrapper = write_wrapper(top_level, exported[0].parent, bdir) if exported else None
    if wrapper is not None:
        sources = [*sources, bdir / f"{wrapper}.vhd"]
        top, top_level = wrapper, top_level.flattened()
    try:
        runner.build(sources=[s.resolve() for s in sources], hdl_toplevel=top,
                     build_args=["--std=08"], build_dir=bdir, always=True,
                     log_file=bdir / "build.log")
    except (RuntimeError, SystemExit) as exc:
        raise LockstepError(
            f"GHDL could not build the VHDL of '{top}' ({exc})\n{_tail(bdir / 'build.log')}"
        ) from None
    if on_build is not None:
        on_build(bdir)

    sim = Simulator(network, backend, trace=trace)
    ctl = _Controller(sim, top_level, iter(stimulus) if stimulus is not None else None,
                      ticks, chunk, period_ns * 500)
    authkey = secrets.token_bytes(16)
    listener = Listener(("127.0.0.1", 0), authkey=authkey)
    host, port = listener.address
    served = threading.Event()

    def serve() -> None:
        try:
            with listener.accept() as conn:
                served.set()
                ctl.serve(conn)
        except BaseException as exc:  # the main thread reports it
            ctl.server_error = exc

    thread = threading.Thread(target=serve, name="smeflow-lockstep", daemon=True)
    thread.start()
    env = {P.ENV_VAR: P.encode_address(host, port, authkey), **BENCH_PYTEST_ENV}
    start = time.perf_counter()
    run_error: BaseException | None = None
    try:
        runner.test(test_module=BENCH_MODULE, hdl_toplevel=top, test_args=["--std=08"],
                    build_dir=bdir, test_dir=bdir, extra_env=env, waves=waves,
                    results_xml=str(bdir / "results.xml"), log_file=log_file)
    except (RuntimeError, SystemExit) as exc:  # cocotb exits under pytest on failed tests
        run_error = exc
    seconds = time.perf_counter() - start
    if not served.is_set():  # the bench never connected: unblock accept()
        with contextlib.suppress(OSError), Client((host, port), authkey=authkey):
            pass
    thread.join(timeout=10)
    listener.close()
    sim.close()

    if ctl.model_error is not None:
        raise ctl.model_error
    verdict = ctl.verdict
    if verdict is None or verdict[0] == P.ERROR:
        detail = verdict[1] if verdict is not None else (
            f"{run_error or 'the cocotb bench did not report'}"
            + (f"; {ctl.server_error!r}" if ctl.server_error else ""))
        stopped = _ghdl_stops(log_file)
        raise LockstepError(
            f"lock-step co-simulation of '{top}' failed to run: "
            + (f"GHDL stopped: {stopped}\n" if stopped else "") + f"{detail}\n{_tail(log_file)}"
        )
    result = LockstepResult(top, passed=True, ticks=0, seconds=seconds, build_dir=bdir,
                            log_file=log_file, trace=sim.trace)
    if verdict[0] == P.DONE:
        result.ticks = verdict[1]
    else:
        _, tick, index, got = verdict
        port_ = ctl.top.outputs[index]
        expected = ctl.expected_rows.get(tick, [None] * (index + 1))[index]
        result.passed = False
        result.ticks = tick + 1
        result.mismatch = Mismatch(tick + 1, port_.signal, port_.name, expected,
                                   port_.from_raw(got))
    if check:
        result.check()
    return result


def _runner() -> Any:
    try:
        from cocotb_tools.runner import get_runner
    except ImportError as exc:
        raise LockstepError(
            f"cocotb is not installed ({exc}); install it with `pip install cocotb==2.1.0`"
        ) from None
    try:
        return get_runner("ghdl")
    except SystemExit as exc:  # cocotb's way of saying the simulator is not on PATH
        raise LockstepError(
            f"GHDL is not available ({exc}); install it with `apt-get install ghdl` "
            "(or `make deps`)"
        ) from None


def _ghdl_stops(path: Path) -> str:
    """GHDL's own words for why the simulation stopped (``index (-3) out of bounds (0 to 6)
    at RegNeg.vhd:32``), from the log of the run, or "" when it has none: cocotb's
    shutdown report can push them out of the log's last lines."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    found = [m.group(1) or m.group(2) for m in _GHDL_STOP.finditer(text)]
    return "; ".join(dict.fromkeys(f.strip() for f in found))


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    shown = "\n".join("  " + ln for ln in lines[-_LOG_TAIL_LINES:])
    return f"last lines of {path}:\n{shown}"
