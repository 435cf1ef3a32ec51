"""Flatten a network into one generated Python module for numba.

The module defines ``run(S, A, in0, …, drv, OUTI, OUTB, OUTH, rec, ticks, tick0, E)``: scalar
state is loaded from ``S`` into local variables and ``ticks`` ticks run in one loop —
drive the inputs from their stimulus arrays ``in<k>``, run the combinational processes
that depend on inputs, every clocked process, latch the buses they wrote (but those whose
clocked readers all run before the writer, which the writer stores in place), run the
combinational processes that depend on registers, and record the signals ``rec`` asks for
into ``OUTI`` (numbers) or ``OUTH`` (numbers the caller asked for as ``uint16``), a row
per tick, or ``OUTB`` (Bools), a row per signal — then the state is stored
back. Array elements live in ``A``. A failed check writes ``(site, value, tick, index)``
into ``E`` and raises; the Python side turns the site into the interpreter's exception.
A stimulus value that does not fit stops the loop before its tick (``run`` returns the
ticks done).
``reset(S, A, E)`` settles every combinational process once (row 0 of a trace).
``step(W)`` is one tick of ``run`` without stimulus arrays or recording, on the state in a
session's workspace ``W`` (``layout.Workspace``): the per-tick entry point of step-mode
testbenches, whose inputs the testbench has already stored in ``S``. One array argument
makes the call from Python several times cheaper than a call of ``run``.

The process bodies come from the shared front end, ``sme.lower`` (one typed IR for the
VHDL exporter and this backend); ``sme.compiled.emit`` turns them into code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bus import Bus
from ..errors import BackendError
from ..lower import LoweringError, ir, lower_process
from ..lower.ir import ArrayT, NumT
from ..network import Network
from ..types import ArrayType, BoolType, EnumType, FixedType, IntegerType, SignalType
from .emit import Emitter
from .emit_expr import Instance, NeedsWide, PortView
from .layout import (
    ArraySlot,
    Layout,
    SignalPlace,
    Site,
    Slot,
    Storage,
    Workspace,
    stimulus_dtype,
)

STOPPED = 7
"""The slot of the error record ``E`` that says a session stopped on a failed check:
``step(W)`` refuses to run a tick (``session.py``)."""

HELPERS = '''
@njit(cache=True, nogil=True, inline="always")
def _fail(site, v, t, i, E):
    E[0] = site
    E[1] = v
    E[2] = t
    E[3] = i
    raise RuntimeError("smeflow: run-time check failed")


@njit(cache=True, nogil=True, inline="always")
def _cv(v, sh, rnd, chk, lo, hi, ovf, site, t, i, E):
    r = v
    if sh > 0:
        r = v << sh
    elif sh < 0:
        s = -sh
        if rnd == 2:
            r = (v + (1 << (s - 1))) >> s
        else:
            r = v >> s
            if rnd == 0 and (v & ((1 << s) - 1)) != 0:
                _fail(site, v, t, i, E)
    if chk and (r < lo or r > hi):
        if ovf == 0:
            _fail(site, v, t, i, E)
        elif ovf == 1:
            r = r & (hi - lo)
            if r > hi:
                r = r + lo + lo
        elif r < lo:
            r = lo
        else:
            r = hi
    return r


@njit(cache=True, nogil=True, inline="always")
def _rd(v, d, site, t, E):
    if d == 0:
        _fail(site, 0, t, 0, E)
    return v


@njit(cache=True, nogil=True, inline="always")
def _ix(i, n, d, usite, site, t, E):
    if d == 0:
        _fail(usite, 0, t, i, E)
    if i < 0 or i >= n:  # (no count from the end: SME arrays have no negative indexes)
        _fail(site, i, t, i, E)
    return i


@njit(cache=True, nogil=True, inline="always")
def _nz(b, site, t, E):
    if b == 0:
        _fail(site, 0, t, 0, E)
    return b
'''

def run_signature(inputs: list[SignalType], memories: list[str] | None = None) -> str:
    """The numba signature of ``run`` for a network with these top-level input types (and
    memories of these dtypes, see ``layout.MEMORY_MIN``)."""
    ins = []
    for t in inputs:
        dt = stimulus_dtype(t)
        base = "boolean" if dt == np.bool_ else str(dt)
        ins.append(f"{base}[:, ::1]" if isinstance(t, ArrayType) else f"{base}[::1]")
    mems = [f"{dtype}[::1]" for dtype in memories or []]
    args = ["int64[::1]", "int64[::1]", *mems, *ins, "int64[::1]", "int64[:, ::1]",
            "boolean[:, ::1]", "uint16[:, ::1]", "int64[::1]", "int64", "int64", "int64[::1]"]
    return f"int64({', '.join(args)})"


def reset_signature(memories: list[str]) -> str:
    """The numba signature of ``reset(S, A, M0, …, E)``."""
    return f"int64({', '.join(['int64[::1]'] * 2 + [f'{d}[::1]' for d in memories])}, int64[::1])"


def step_signature(memories: list[str]) -> str:
    """The numba signature of ``step(W, M0, …)``."""
    return f"void({', '.join(['int64[::1]'] + [f'{d}[::1]' for d in memories])})"


@dataclass
class Generated:
    """The generated module's source and the state layout it works on. ``wide``: the
    module holds Python ints and runs without numba (a value may need more than 64 bits)."""

    source: str
    layout: Layout
    wide: bool = False
    workspace: Workspace | None = None  # where ``step(W)`` finds its state (not wide)


def generate(net: Network, checks: bool = True) -> Generated:
    """Flatten ``net`` into one module's source (``checks``: emit overflow checks): machine
    code over int64 when every value fits 64 bits, else the same code over Python ints."""
    try:
        return _generate(net, checks, wide=False)
    except NeedsWide:
        return _generate(net, checks, wide=True)


def _generate(net: Network, checks: bool, wide: bool) -> Generated:
    lay = Layout(wide=wide)
    cur: dict[tuple[Bus, str], Storage] = {}
    nxt: dict[tuple[Bus, str], Storage] = {}
    latched = _latched_buses(net)
    for bi, bus in enumerate(net.buses):
        for spec in bus.signals().values():
            cur[bus, spec.name] = lay.storage(f"b{bi}_{spec.name}", spec.type, spec.initial)
            if bus in latched:
                nxt[bus, spec.name] = lay.storage(f"n{bi}_{spec.name}", spec.type,
                                                  spec.initial)
    instances = [_instance(lay, net, pi, cur, nxt) for pi in range(len(net.processes))]
    for t in net.traced_signals():
        st = cur[t.bus, t.spec.name]
        place = SignalPlace(t, st)
        if isinstance(st, Slot):
            place.s_index = lay.s_vars.index(st.var)
        if st.defined is not None:
            place.d_index = lay.s_vars.index(st.defined)
            place.monitor_site = lay.site(Site("undefined_tb", str(net.src_loc), t.type,
                                               t.bus.name, t.spec.name, "the testbench"))
        lay.places.append(place)
        if t.is_input:
            lay.inputs.append(place)
    plain: list[str] = []
    for inst in instances:
        persistent = inst.ir.states is not None
        if persistent:
            lay.scalar(f"pc{inst.index}", 0)
        for local in inst.ir.locals:
            if isinstance(local.type, ArrayT):
                inst.locals[local.name] = lay.array(local.type.length, local.type.element)
                continue
            var = f"v{inst.index}_{local.name}"
            inst.locals[local.name] = Slot(var, local.type)
            if persistent or local.persistent:
                lay.scalar(var, 0)
            else:
                plain.append(var)
        bodies = [inst.ir.body] + [st.body for st in inst.ir.states or []]
        for name, vt in _for_vars(bodies):
            if name not in inst.locals:
                var = f"v{inst.index}_{name}"
                inst.locals[name] = Slot(var, vt)
                plain.append(var)
    em = Emitter(lay, checks, wide)
    for bus in net.buses:
        if bus in latched:
            for spec in bus.signals().values():
                slot = nxt[bus, spec.name]
                if isinstance(slot, ArraySlot):
                    em.dirty[slot.offset] = f"_dirty{slot.offset}"
                    plain.append(em.dirty[slot.offset])
    by_proc = dict(zip(net.processes, instances, strict=True))
    code: list[str] = []
    for p in net.depends_on_inputs() + net.clocked:
        code += em.process(by_proc[p])
    for bus in net.buses:
        if bus in latched:
            for spec in bus.signals().values():
                code += _latch(cur[bus, spec.name], nxt[bus, spec.name], em.dirty)
    for p in net.depends_on_registers():
        code += em.process(by_proc[p])
    tick_code = list(code)
    outs = set(net.outputs)
    other: list[str] = []
    for k, place in enumerate(lay.places):
        (code if place.signal.bus in outs else other).extend(_record(lay, k, place))
    if other:
        code += ["if rec_other:", *("    " + ln for ln in other)]
    drive: list[str] = []
    for k, place in enumerate(lay.inputs):
        drive += _drive(lay, place, k, wide)
    reset_code: list[str] = []
    for p in net.combinational:
        reset_code += em.process(by_proc[p])
    # the layout is complete only now (the emitter adds sites, never variables)
    load = [f"{v} = S[{i}]" for i, v in enumerate(lay.s_vars)] + [f"{v} = 0" for v in plain]
    save = [f"S[{i}] = {v}" for i, v in enumerate(lay.s_vars)]
    dtypes = [dtype for _, dtype, _ in lay.memories]
    sig = run_signature([p.signal.type for p in lay.inputs], dtypes)
    ins = "".join(f"{name}, " for name, _, _ in lay.memories)
    ins += "".join(f"in{k}, " for k in range(len(lay.inputs)))
    mems = "".join(f", {name}" for name, _, _ in lay.memories)
    helpers = "\n".join(ln for ln in HELPERS.splitlines() if not (wide and ln.startswith("@")))
    out = ["import numpy as np", "from numba import njit", helpers, *em.table_definitions()]
    if not wide:
        out.append(f'@njit("{sig}", cache=True, nogil=True)')
    out += [f"def run(S, A, {ins}drv, OUTI, OUTB, OUTH, rec, ticks, tick0, E):"]
    out += _indent([*load, f"rec_other = rec[{len(lay.places)}] != 0", "_t = 0",
                    "while _t < ticks:"])
    out += _indent(_indent(["t = tick0 + _t", *drive, *code, "_t += 1"]))
    out += _indent([*save, "return _t"])
    out += ["", ""] + ([] if wide else [f'@njit("{reset_signature(dtypes)}", cache=True, '
                                        'nogil=True)'])
    out += [f"def reset(S, A{mems}, E):"]
    out += _indent([*load, "t = 0", *reset_code, *save, "return 0"])
    ws = None if wide else Workspace.of(lay)
    if ws is not None:  # one tick of run() on a session's workspace, nothing recorded
        out += ["", "", f'@njit("{step_signature(dtypes)}", cache=True, nogil=True)',
                f"def step(W{mems}):"]
        out += _indent([f"S = W[{ws.s}:{ws.a}]", f"A = W[{ws.a}:{ws.e}]",
                        f"E = W[{ws.e}:{ws.e + 8}]",
                        f"if E[{STOPPED}] != 0:  # stopped on a failed check (session.py)",
                        '    raise RuntimeError("smeflow: stopped on a failed check")',
                        f"t = W[{ws.tick}]", *load, *tick_code,
                        *save, f"W[{ws.tick}] = t + 1"])
    return Generated("\n".join(out) + "\n", lay, wide, ws)


def _instance(lay: Layout, net: Network, pi: int, cur: dict[tuple[Bus, str], Storage],
              nxt: dict[tuple[Bus, str], Storage]) -> Instance:
    proc = net.processes[pi]
    try:
        pir = lower_process(type(proc))
    except LoweringError as exc:
        raise BackendError(f"{proc.describe()}: the compiled backend cannot translate its "
                           f"on_tick: {exc}") from exc
    ports: dict[str, PortView] = {}
    outputs = set(proc.output_buses().values())
    for port, bus in proc._sme_buses.items():
        specs = bus.signals()
        read = {n: cur[bus, n] for n in specs}
        write = {n: nxt.get((bus, n), cur[bus, n]) if bus in outputs else cur[bus, n]
                 for n in specs}
        writer = net.writer.get(bus)
        ports[port] = PortView(bus.name, read, write, {n: s.type for n, s in specs.items()},
                               f"{proc.describe()} through port '{port}'",
                               (writer is not None and not writer.is_combinational())
                               or bus in net.inputs)
    regs: dict[str, Storage] = {}
    initial = proc.initial_values()
    types = {name: spec.type for name, spec in type(proc).registers().items()}
    for name, t in types.items():
        regs[name] = lay.memory(f"r{pi}_{name}", t, initial[name])
    arrays = {name: spec.count for name, spec in type(proc).ports().items()
              if spec.count is not None}
    return Instance(pi, proc.describe(), proc.name, pir, ports, regs, types, arrays=arrays)


def _latched_buses(net: Network) -> set[Bus]:
    """The buses written by a clocked process that need a next value and a latch at the
    clock edge. A bus every clocked reader of which runs before its writer in the tick
    (``net.clocked`` order: a pipeline listed last stage first) needs neither: its readers
    have read the value of the previous tick by the time the writer stores the new one,
    so the writer stores into the bus itself, as the latch would have; the combinational
    processes read it before the clocked ones run (those that depend on the inputs) or
    after the clock edge (those that depend on registers), as with a latch. The order of
    the processes, and so which check fails first in a tick, stays the interpreter's."""
    order = {p: k for k, p in enumerate(net.clocked)}
    latched: set[Bus] = set()
    for bus, w in net.writer.items():
        if w.is_combinational():
            continue
        if any(r is w or (not r.is_combinational() and order[r] > order[w])
               for r in net.readers.get(bus, [])):
            latched.add(bus)
    return latched


def _for_vars(bodies: list[list[ir.Stmt]]) -> list[tuple[str, NumT]]:
    """The loop variables of every ``for`` in the bodies (name, type)."""
    found: list[tuple[str, NumT]] = []

    def walk(stmts: list[ir.Stmt]) -> None:
        for s in stmts:
            if isinstance(s, ir.For):
                found.append((s.var, s.var_type))
                walk(s.body)
            elif isinstance(s, ir.If):
                walk(s.then)
                walk(s.orelse)
            elif isinstance(s, ir.Match):
                for c in s.cases:
                    walk(c.body)
            elif isinstance(s, ir.While):
                walk(s.body)

    for b in bodies:
        walk(b)
    return found


def _latch(dst: Storage, src: Storage, dirty: dict[int, str]) -> list[str]:
    """The bus latch: the current value takes the next value (and its defined flag). An
    array is copied only when an element of its next value was stored this tick (the
    ``dirty`` flag of its slot); otherwise both are already equal."""
    if isinstance(dst, ArraySlot):
        assert isinstance(src, ArraySlot)
        flag = dirty[src.offset]
        lines = [f"if {flag}:",
                 f"    {flag} = 0",
                 f"    for _k in range({dst.length}):",
                 f"        A[{dst.offset} + _k] = A[{src.offset} + _k]"]
    else:
        assert isinstance(src, Slot)
        lines = [f"{dst.var} = {src.var}"]
    if dst.defined is not None and src.defined is not None:
        lines.append(f"{dst.defined} = {src.defined}")
    return lines


def _drive(lay: Layout, place: SignalPlace, k: int, wide: bool) -> list[str]:
    """Drive input ``k`` from its stimulus; a value that does not fit ends the run before
    this tick (the caller then raises the testbench's error). An array of unsigned
    words of ``n`` bits is checked by OR-ing its lanes (every lane fits if and only if
    the OR has no bit at or above ``n`` and no sign bit): one OR a lane, where the
    smallest and largest lane cost a compare and a select each, on two chains."""
    st, t = place.storage, place.signal.type
    el = t.element if isinstance(t, ArrayType) else t
    site = lay.site(Site("input", str(place.signal.bus.src_loc), t, place.signal.bus.name,
                         place.signal.spec.name))
    bad = None
    bounds: tuple[int, int] | None = None  # an integer range: checked as one interval
    if isinstance(el, EnumType):
        bad = (f"_v < 0 or _v > {len(el.members) - 1}" if el.positional else
               "not (" + " or ".join(f"_v == {c}" for c in el.codes) + ")")
    elif not isinstance(el, BoolType):
        rt = el.raw_type if isinstance(el, FixedType) else el
        assert isinstance(rt, IntegerType)
        bad = f"_v < {rt.lo} or _v > {rt.hi}"
        bounds = (rt.lo, rt.hi)
    lines = [f"if drv[{k}]:"]
    row = "_t" if wide else "np.uint64(_t)"  # unsigned: no negative-index wrap-around
    unsigned = not wide and stimulus_dtype(t).kind == "u"

    def lane(r: str, c: str) -> str:  # (an unsigned stimulus lane computes as int64)
        return f"np.int64(in{k}[{r}, {c}])" if unsigned else f"in{k}[{r}, {c}]"

    if isinstance(st, ArraySlot) and bounds is not None and bounds[0] == 0 \
            and bounds[1] & (bounds[1] + 1) == 0:
        n = lay.trip(st.length)
        # from lane 0 with _or = 0: a 32-lane word is two 16-lane vector steps (from
        # lane 1, 31 lanes left a 4-lane and a scalar remainder loop: 5 % of a P6M tick)
        lines += ["    _or = 0", f"    for _k in range({n}):",
                  f"        _or = _or | {lane(row, '_k')}",
                  f"    if _or < 0 or _or > {bounds[1]}:", f"        E[0] = {site}",
                  "        break", f"    for _k in range({n}):",
                  f"        A[{st.offset} + _k] = {lane(row, '_k')}"]
    elif isinstance(st, ArraySlot) and bounds is not None:
        # the whole word at once: its smallest and largest lane (a reduction the compiler
        # vectorises), then one copy
        lines += [f"    _lo = {lane('_t', '0')}", "    _hi = _lo",
                  f"    for _k in range(1, {st.length}):", f"        _v = {lane('_t', '_k')}",
                  "        _lo = min(_lo, _v)", "        _hi = max(_hi, _v)",
                  f"    if _lo < {bounds[0]} or _hi > {bounds[1]}:", f"        E[0] = {site}",
                  "        break", f"    for _k in range({st.length}):",
                  f"        A[{st.offset} + _k] = {lane('_t', '_k')}"]
    elif isinstance(st, ArraySlot):
        lines += ["    _bad = False", f"    for _k in range({st.length}):",
                  f"        _v = in{k}[_t, _k]"]
        if bad:
            lines += [f"        if {bad}:", "            _bad = True"]
        lines += ["    if _bad:", f"        E[0] = {site}", "        break",
                  f"    for _k in range({st.length}):",
                  f"        A[{st.offset} + _k] = "
                  + (f"(1 if in{k}[_t, _k] else 0)" if bad is None else f"in{k}[_t, _k]")]
    else:
        lines.append(f"    _v = in{k}[_t]")
        if bad:
            lines += [f"    if {bad}:", f"        E[0] = {site}", "        break",
                      f"    {st.var} = _v"]
        else:
            lines.append(f"    {st.var} = 1 if _v else 0")
    if st.defined is not None:
        lines.append(f"    {st.defined} = 1")
    return lines


def _record(lay: Layout, k: int, place: SignalPlace) -> list[str]:
    """Record signal ``k`` into its output column(s) when ``rec`` asks for it (a Bool into
    its row(s) of ``OUTB``, a row per signal or element, so that its result is that row):
    one row per tick, one column per signal (per element of an array), so that an array's elements
    are written together (one contiguous store of the word, not one strided store per
    element) and a tick's word comes out of a batch run without a transpose. The column
    is read from ``rec`` once (a store into the output could alias ``rec``, so in the
    loop it would be read again for every element) and the indices are unsigned (no
    negative-index wrap-around): recording a 32-lane word cost as much as the
    packetiser's CRC. A number ``rec`` gives a column ``c <= -2`` goes into column
    ``-2 - c`` of ``OUTH`` (``uint16``; the session does so only for a signal every value
    of which fits and that the caller asked for as ``uint16``: no int64 copy to narrow
    afterwards)."""
    st, t, wide = place.storage, place.signal.type, lay.wide
    el = t.element if isinstance(t, ArrayType) else t
    boolean = isinstance(el, BoolType)
    out, conv = ("OUTB", "{} != 0") if boolean else ("OUTI", "{}")
    row, col = ("_t", "{}") if wide else ("np.uint64(_t)", "np.uint64({})")

    def at(column: str, into: str) -> str:  # (OUTB is column-major: a Bool's ticks in a row)
        c = col.format(column)
        return f"{c}, {row}" if into == "OUTB" else f"{row}, {c}"

    check = ([f"    _rd(0, {st.defined}, {place.monitor_site}, t, E)"]
             if st.defined is not None else [])
    if isinstance(st, ArraySlot):
        def store(into: str) -> list[str]:
            return [f"    for _k in range({lay.trip(st.length)}):",
                    f"        {into}[{at('_c + _k', into)}] = "
                    + conv.format(f"A[{st.offset} + _k]")]
        lines = [f"_c = rec[{k}]", "if _c >= 0:", *check, *store(out)]
        if not boolean and not wide:
            lines += ["elif _c < -1:", *check, "    _c = -2 - _c", *store("OUTH")]
        return lines
    v = st.var
    if st.defined is not None:
        v = f"_rd({v}, {st.defined}, {place.monitor_site}, t, E)"
    lines = [f"_c = rec[{k}]", "if _c >= 0:", f"    {out}[{at('_c', out)}] = "
             f"{conv.format(v)}"]
    if not boolean and not wide:
        lines += ["elif _c < -1:", f"    OUTH[{row}, {col.format('-2 - _c')}] = {v}"]
    return lines


def _indent(lines: list[str]) -> list[str]:
    return ["    " + ln for ln in lines]
