"""Drawing a network with Graphviz: processes as boxes, buses as edges.

Clocked processes are solid boxes and the buses they write are solid edges (the value
arrives at the next tick); combinational processes are rounded, dashed boxes and their
buses dashed edges (same tick). Top-level inputs come from, and outputs go to, small
port nodes. ``to_dot`` is pure; ``write_graph`` renders SVG/PNG/PDF with ``dot`` when the
suffix asks for it (Debian package ``graphviz``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .errors import SmeError
from .network import Network


class GraphError(SmeError):
    """The network could not be drawn (for example ``dot`` is not installed)."""


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(network: Network) -> str:
    """The Graphviz source of the network's drawing."""
    lines = [
        f"digraph {_q(network.name)} {{",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
        f"  label={_q(network.name)}; labelloc=t;",
    ]
    for p in network.processes:
        kind = "combinational" if p.is_combinational() else "clocked"
        style = 'style="rounded,dashed"' if p.is_combinational() else "style=solid"
        label = f"{p.name}\\n{type(p).__name__} ({kind})"
        lines.append(f"  {_q('p:' + p.name)} [shape=box, {style}, label=\"{label}\"];")
    for bus in network.buses:
        signals = ", ".join(f"{n}: {s.type!r}" for n, s in bus.signals().items())
        writer = network.writer.get(bus)
        readers = network.readers.get(bus, [])
        comb = writer is not None and writer.is_combinational()
        style = "dashed" if comb else "solid"
        label = _q(f"{bus.name}\n{signals}")
        source = _q("p:" + writer.name) if writer is not None else _q("in:" + bus.name)
        if writer is None:
            lines.append(f"  {source} [shape=cds, label={_q(bus.name)}, style=filled, "
                         "fillcolor=\"#e8f0ff\"];")
        targets = [_q("p:" + r.name) for r in readers]
        if bus in network.outputs:
            out = _q("out:" + bus.name)
            lines.append(f"  {out} [shape=cds, label={_q(bus.name)}, style=filled, "
                         "fillcolor=\"#fff0e0\"];")
            targets.append(out)
        for t in targets:
            lines.append(f"  {source} -> {t} [label={label}, style={style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_graph(network: Network, path: str | os.PathLike[str]) -> Path:
    """Write the drawing to ``path``: ``.dot``/``.gv`` as source, ``.svg``/``.png``/``.pdf``
    rendered by Graphviz's ``dot``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    source = to_dot(network)
    fmt = target.suffix.lower().lstrip(".")
    if fmt in ("dot", "gv"):
        target.write_text(source)
        return target
    if fmt not in ("svg", "png", "pdf"):
        raise GraphError(f"{target}: unknown drawing format {fmt!r}; use .dot, .svg, .png or .pdf")
    dot = shutil.which("dot")
    if dot is None:
        raise GraphError(
            f"cannot render {target}: Graphviz 'dot' is not installed "
            "(run: apt-get install -y graphviz), or write a .dot file instead"
        )
    tmp = target.with_name(f".{target.name}.tmp")
    result = subprocess.run([dot, f"-T{fmt}", "-o", str(tmp)], input=source.encode(),
                            capture_output=True, check=False)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise GraphError(f"dot failed to render {target}: {result.stderr.decode().strip()}")
    os.replace(tmp, target)
    return target
