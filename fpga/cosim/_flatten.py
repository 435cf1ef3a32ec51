"""A wrapper entity that shows array ports to cocotb as flat bit vectors.

GHDL's VPI does not expose the elements of a top-level port whose type is an array of
vectors (``array_u16_4_t``): cocotb cannot index it. For a network with such ports the
lock-step builds ``<network>_cosim``: the same ports, except that each array port becomes
one ``std_logic_vector`` holding element ``i`` in bits ``(i+1)·w - 1 … i·w``, wired to the
exported entity. Scalar ports keep their declarations (read from the exported entity).
"""

from __future__ import annotations

import re
from pathlib import Path

from sme.types import ArrayType, BoolType, EnumType

from ._ports import Port, TopLevel

_PORT = re.compile(r"^\s*(\w+)\s*:\s*(in|out)\s+([^:;]+?)\s*(?::=.*)?;?\s*$")


class FlattenError(Exception):
    """The exported entity cannot be wrapped (an unexpected declaration)."""


def _declarations(top_vhd: Path, entity: str) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """Context clauses and ``{port: (mode, type)}`` of ``entity`` in ``top_vhd``."""
    text = top_vhd.read_text()
    context = [ln for ln in text.splitlines() if re.match(r"^\s*(library|use)\s", ln)]
    m = re.search(rf"entity\s+{entity}\s+is(.*?)end\s+entity", text, re.S | re.I)
    if m is None:
        raise FlattenError(f"{top_vhd}: no entity {entity}")
    body = m.group(1)
    start = body.find("port (")
    ports: dict[str, tuple[str, str]] = {}
    for line in body[start + len("port ("):].splitlines():
        pm = _PORT.match(line)
        if pm:
            ports[pm.group(1).lower()] = (pm.group(2), pm.group(3).strip())
    return context, ports


def _element(p: Port, i: int, flat: str) -> str:
    """VHDL for element ``i`` of the flat vector ``flat`` in the element's type."""
    assert isinstance(p.type, ArrayType)
    el = p.type.element
    w = el.width
    if isinstance(el, BoolType):
        return f"{flat}({i})"
    bits = f"{flat}({(i + 1) * w - 1} downto {i * w})"
    if isinstance(el, EnumType):
        raise FlattenError(f"port {p.name}: arrays of enums are not supported in lock-step")
    return f"{'signed' if p.signed else 'unsigned'}({bits})"


def write_wrapper(top: TopLevel, export_dir: Path, out_dir: Path) -> str | None:
    """Write ``<network>_cosim.vhd`` into ``out_dir`` when ``top`` has array ports and
    return the wrapper's entity name (None when no wrapper is needed)."""
    arrays = [p for p in (*top.inputs, *top.outputs) if isinstance(p.type, ArrayType)]
    if not arrays:
        return None
    context, decls = _declarations(export_dir / f"{top.name}.vhd", top.name)
    name = f"{top.name}_cosim"
    flat = {p.name for p in arrays}
    ports, signals, wiring, maps = [], [], [], []
    for port, (mode, vtype) in decls.items():
        if port in flat:
            p = next(a for a in arrays if a.name == port)
            assert isinstance(p.type, ArrayType)
            n = p.type.width
            ports.append(f"    {port} : {mode} std_logic_vector({n - 1} downto 0)")
            signals.append(f"  signal {port}_a : {vtype};")
            w = p.type.element.width
            for i in range(p.type.length):
                if mode == "in":
                    wiring.append(f"  {port}_a({i}) <= {_element(p, i, port)};")
                elif isinstance(p.type.element, BoolType):
                    wiring.append(f"  {port}({i}) <= {port}_a({i});")
                else:
                    wiring.append(f"  {port}({(i + 1) * w - 1} downto {i * w}) <= "
                                  f"std_logic_vector({port}_a({i}));")
            maps.append(f"      {port} => {port}_a")
        else:
            ports.append(f"    {port} : {mode} {vtype}")
            maps.append(f"      {port} => {port}")
    text = "\n".join([
        f"-- {name}: {top.name} with its array ports flattened for cocotb (generated).",
        *context, "", f"entity {name} is", "  port (", ";\n".join(ports), "  );",
        f"end entity {name};", "", f"architecture wrap of {name} is", *signals, "begin",
        *wiring, f"  dut : entity work.{top.name}", "    port map (", ",\n".join(maps),
        "    );", "end architecture wrap;", ""])
    (out_dir / f"{name}.vhd").write_text(text)
    return name
