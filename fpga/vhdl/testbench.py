"""The trace-replay testbench ``tb_<N>`` (template).

Row 0 of the CSV trace is the reset state: its inputs are driven with ``rst`` high for one
rising edge, then every non-input signal is compared. Row ``k`` (k ≥ 1) drives its inputs,
gives one rising edge, and compares. Top-level outputs are compared on the ports, internal
buses through the probe signals of ``<N>_pkg``; a ``U`` cell is not compared. Mismatches
are reported as ``MISMATCH tick=<row> signal=<bus.signal> expected=<v> got=<v>`` (the first
ten), then ``RESULT ticks=<n> mismatches=<m>``, and the run ends with
``std.env.finish(0)`` on success and ``finish(1)`` otherwise; a watchdog ends a hung run
with ``finish(2)``. The clock is driven by the replay process, so it stops with it.
"""

from __future__ import annotations

from sme.lower.ir import ArrayT, BoolT, EnumT, NumT, VType, vtype_of
from sme.network import Network

from .names import TypeNames
from .regions import TopNames

IND = "  "
MAX_REPORTED = 10


def _parse(t: VType, text: str, types: TypeNames) -> str:
    """VHDL that turns the CSV text ``text`` into a value of ``t``."""
    if isinstance(t, NumT):
        kind = "signed" if t.signed else "unsigned"
        return f"{kind}(dec_to_bits({text}, {t.width}))"
    if isinstance(t, BoolT):
        return f"to_sl({text})"
    if isinstance(t, EnumT):
        return f"{types.enum_from_text(t)}({text})"
    raise TypeError(t)


def _differs(t: VType, text: str, got: str, types: TypeNames) -> str:
    if isinstance(t, EnumT):
        return f"{types.enum_from_text(t)}({text}) /= {got}"
    return f"not same({text}, {got})"


def _text(t: VType, got: str, types: TypeNames) -> str:
    if isinstance(t, EnumT):
        return f"{types.enum_text(t)}({got})"
    return f"to_dec({got})"


def emit_testbench(net: Network, pkg: str, ticks: int, names: TopNames) -> str:
    """The VHDL of ``tb_<N>`` for ``net`` (``ticks``: the recorded trace's length, used for
    the watchdog's default)."""
    types = names.types
    inputs, outputs = set(net.inputs), set(net.outputs)
    tb = f"tb_{net.name}"
    decls: list[str] = []
    drive: list[str] = []
    check: list[str] = []
    port_map = [f"{IND * 3}clk => clk", f"{IND * 3}rst => rst"]
    for sig in net.traced_signals():
        t = vtype_of(sig.type)
        name = names.signal(sig.bus, sig.spec.name)
        if sig.bus in inputs or sig.bus in outputs:
            decls.append(f"{IND}signal {name} : {types.vtype(t)};")
            port_map.append(f"{IND * 3}{name} => {name}")
            got = name
        else:
            got = names.probe(sig.bus, sig.spec.name)
        label = f"{sig.bus.name}.{sig.spec.name}"
        lines = drive if sig.is_input else check
        lines.append(f"{IND * 3}read_field(l, fld);  -- {label}")
        if sig.is_input:
            if isinstance(t, ArrayT):
                lines += [f"{IND * 3}if fld.all /= \"U\" then",
                          f"{IND * 4}for k in 0 to {t.length - 1} loop",
                          f"{IND * 5}{name}(k) <= {_parse(t.element, 'word(fld.all, k)', types)};",
                          f"{IND * 4}end loop;", f"{IND * 3}end if;"]
            else:
                lines.append(f"{IND * 3}if fld.all /= \"U\" then {name} <= "
                             f"{_parse(t, 'fld.all', types)}; end if;")
            continue
        if isinstance(t, ArrayT):
            e = t.element
            lines += [f"{IND * 3}if fld.all /= \"U\" then",
                      f"{IND * 4}for k in 0 to {t.length - 1} loop",
                      f"{IND * 5}if {_differs(e, 'word(fld.all, k)', f'{got}(k)', types)} then",
                      f"{IND * 6}mismatch(\"{label}[\" & integer'image(k) & \"]\", "
                      f"word(fld.all, k), {_text(e, f'{got}(k)', types)});",
                      f"{IND * 5}end if;", f"{IND * 4}end loop;", f"{IND * 3}end if;"]
        else:
            lines += [f"{IND * 3}if fld.all /= \"U\" and {_differs(t, 'fld.all', got, types)} then",
                      f"{IND * 4}mismatch(\"{label}\", fld.all, {_text(t, got, types)});",
                      f"{IND * 3}end if;"]
    out = [f"-- {tb}: replays the CSV trace of the Python simulation of '{net.name}' and "
           "compares every traced signal after every rising edge.",
           "-- Top-level outputs are compared on the ports of the top level, internal buses "
           f"through the probe signals of {pkg}.",
           "library ieee;", "use ieee.std_logic_1164.all;", "use ieee.numeric_std.all;",
           "use std.textio.all;", "use work.tb_sme_pkg.all;", f"use work.{pkg}.all;", "",
           f"entity {tb} is", f"{IND}generic (", f"{IND * 2}TRACE : string := \"trace.csv\";",
           f"{IND * 2}MAX_TICKS : natural := {ticks + 1}", f"{IND});", f"end entity {tb};", "",
           f"architecture sim of {tb} is",
           f"{IND}constant PERIOD : time := 10 ns;",
           f"{IND}signal clk : std_logic := '0';",
           f"{IND}signal rst : std_logic := '1';"]
    out += decls
    out += ["begin", f"{IND}dut : entity work.{net.name}", f"{IND * 2}generic map (PROBES => true)",
            f"{IND * 2}port map (", ",\n".join(port_map), f"{IND * 2});", "",
            f"{IND}watchdog : process", f"{IND}begin",
            f"{IND * 2}wait for (MAX_TICKS + 10) * PERIOD;",
            f"{IND * 2}report \"WATCHDOG: the testbench did not finish within \" & "
            "integer'image(MAX_TICKS + 10) & \" clock periods\" severity note;",
            f"{IND * 2}std.env.finish(2);", f"{IND}end process watchdog;", "",
            f"{IND}replay : process",
            f"{IND * 2}file f : text;",
            f"{IND * 2}variable st : file_open_status;",
            f"{IND * 2}variable l, fld : line;",
            f"{IND * 2}variable row : natural := 0;",
            f"{IND * 2}variable errors : natural := 0;",
            f"{IND * 2}procedure mismatch(name, expected, got : string) is",
            f"{IND * 2}begin",
            f"{IND * 3}errors := errors + 1;",
            f"{IND * 3}if errors <= {MAX_REPORTED} then",
            f"{IND * 4}report \"MISMATCH tick=\" & integer'image(row) & \" signal=\" & name & "
            "\" expected=\" & expected & \" got=\" & got severity error;",
            f"{IND * 3}end if;",
            f"{IND * 2}end procedure;",
            f"{IND}begin",
            f"{IND * 2}file_open(st, f, TRACE, read_mode);",
            f"{IND * 2}assert st = open_ok report \"cannot open \" & TRACE severity failure;",
            f"{IND * 2}readline(f, l);  -- header",
            f"{IND * 2}while not endfile(f) loop",
            f"{IND * 3}readline(f, l);"]
    out += drive
    out += [f"{IND * 3}if row = 0 then", f"{IND * 4}rst <= '1';", f"{IND * 3}else",
            f"{IND * 4}rst <= '0';", f"{IND * 3}end if;",
            f"{IND * 3}wait for PERIOD / 2;", f"{IND * 3}clk <= '1';",
            f"{IND * 3}wait for PERIOD / 2;"]
    out += check
    out += [f"{IND * 3}clk <= '0';", f"{IND * 3}row := row + 1;", f"{IND * 2}end loop;",
            f"{IND * 2}file_close(f);",
            f"{IND * 2}report \"RESULT ticks=\" & integer'image(row - 1) & \" mismatches=\" & "
            "integer'image(errors) severity note;",
            f"{IND * 2}if errors = 0 then", f"{IND * 3}std.env.finish(0);", f"{IND * 2}else",
            f"{IND * 3}std.env.finish(1);", f"{IND * 2}end if;", f"{IND * 2}wait;",
            f"{IND}end process replay;", "end architecture sim;", ""]
    return "\n".join(out)
