"""The whole front-end firmware as one network, and each stage as a network of its own
(for per-stage VHDL testbenches)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sme import Network, Process
from sme.memory import dual_port_ram

from .binning import binning
from .buses import TABLE_WORDS, chain_buses
from .control import control
from .correct import correct
from .packetiser import packetiser
from .params import ChainParams, Table
from .receiver import receiver
from .reduce import reduce

STAGES: dict[str, Callable[[ChainParams], type[Process]]] = {
    "control": control, "receiver": receiver, "correct": correct, "binning": binning,
    "reduce": reduce, "packetiser": packetiser,
}
"""The chain's process classes by stage name, in data-flow order after ``control``."""

TABLE_NAMES = {Table.DARK: "dark", Table.GAIN: "gain", Table.MASK: "mask"}


def _table_init(t: Table, p: ChainParams) -> np.ndarray:
    """Contents of a table after reset (gain 1.0, dark 0, mask clear), flat."""
    n = p.table_depth * p.lanes
    if t is Table.GAIN:  # 1.0 (integers convert to UFix without rounding questions)
        return np.ones(n, dtype=np.int64)
    return np.zeros(n, dtype=bool if t is Table.MASK else np.int64)


def build(params: ChainParams | None = None, name: str = "detector") -> Network:
    """The firmware chain for ``params`` (64×64 frames, 16 lanes by default): inputs
    ``link``, ``ctrl``, ``tables``; output ``packet``. Without the binning stage
    (``params.binning`` false) the corrected pixels go straight to the reductions and
    the packetiser."""
    p = params or ChainParams()
    b = chain_buses(p)
    link, ctrl, tables = b.link("link"), b.ctrl("ctrl"), b.tables("tables")
    config, info = b.config("config"), b.frame_info("frame_info")
    pixels, corrected = b.pixels("pixels"), b.corrected("corrected")
    image = b.image("image") if p.binning else corrected
    results, packet = b.results("results"), b.packet("packet")
    tables_: list[Process] = []
    wr, rd, q = {}, {}, {}
    for t, word in TABLE_WORDS.items():
        tn = TABLE_NAMES[t]
        wr[t] = b.table_write[t](f"{tn}_wr")
        rd[t] = b.table_read[t](f"{tn}_rd")
        q[t] = b.table_data[t](f"{tn}_q")
        ram = dual_port_ram(word, p.table_depth, p.lanes)
        tables_.append(ram(name=f"{tn}_table", write=wr[t], read=rd[t], data=q[t],
                           mem=_table_init(t, p)))
    # Last stage first: every stage reads its input buses before the stage writing them
    # runs, so the compiled backend stores each stage's outputs in place, without a copy
    # at the clock edge (sme.compiled.codegen._latched_buses).
    procs: list[Process] = [
        packetiser(p)(name="packetiser", inp=image, results=results, info=info,
                      config=config, out=packet),
        reduce(p)(name="reduce", inp=image, config=config, out=results),
        *([binning(p)(name="binning", inp=corrected, config=config, out=image)]
          if p.binning else []),
        correct(p)(name="correct", inp=pixels, config=config, dark=q[Table.DARK],
                   gain=q[Table.GAIN], mask=q[Table.MASK], out=corrected),
        *tables_,
        receiver(p)(name="receiver", link=link, info=info, pixels=pixels,
                    dark_rd=rd[Table.DARK], gain_rd=rd[Table.GAIN], mask_rd=rd[Table.MASK]),
        control(p)(name="control", ctrl=ctrl, tables=tables, config=config, dark_wr=wr[Table.DARK],
                   gain_wr=wr[Table.GAIN], mask_wr=wr[Table.MASK]),
    ]
    return Network(name, procs, inputs=[link, ctrl, tables], outputs=[packet])


def stage_network(stage: str, params: ChainParams | None = None) -> Network:
    """One process of the chain as a network of its own, its buses named as in ``build``
    (so a trace of the whole chain can drive it): ``stage`` is a key of ``STAGES`` or a
    table memory (``"dark_table"``, ``"gain_table"``, ``"mask_table"``)."""
    from sme.process import Direction

    chain = build(params)
    by_name = {proc.name: proc for proc in chain.processes}
    proc = by_name.get(stage)
    if proc is None:
        raise ValueError(f"no stage {stage!r} in the chain; stages: {', '.join(by_name)}")
    inputs = [proc._sme_buses[port.name] for port in type(proc).ports().values()
              if port.direction is Direction.IN]
    return Network(f"{stage}_stage", [proc], inputs=inputs)
