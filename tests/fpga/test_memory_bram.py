"""Memories (``sme.memory``) in hardware: the exported VHDL keeps the storage array out of
the reset branch and reads it on the clock edge, the template synthesis tools map to block
RAM. Each memory runs the same in the interpreter, the compiled backend and GHDL, and
Yosys (reading GHDL's synthesis netlist) finds one memory with a clocked read port in it,
while a reset storage array gives it none."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fpga.export import export
from fpga.pytest_plugin import HardwareTester
from sme import Network, UInt
from sme.memory import (
    dual_port_ram,
    ram_port,
    read_data,
    read_port,
    rom,
    single_port_ram,
    true_dual_port_ram,
    write_port,
)

pytestmark = pytest.mark.ghdl

WORD, DEPTH = UInt[12], 64


def _rom() -> Network:
    contents = (np.arange(DEPTH) * 37) % 4096
    return Network("rom_net", [rom(WORD, DEPTH)(read=read_port(WORD, DEPTH)("addr"),
                                                data=read_data(WORD, DEPTH)("data"),
                                                mem=contents)])


def _spram() -> Network:
    return Network("spram_net", [single_port_ram(WORD, DEPTH)(
        port=ram_port(WORD, DEPTH)("port"), data=read_data(WORD, DEPTH)("data"),
        mem=[(7 * a) % 4096 for a in range(DEPTH)])])


def _dpram() -> Network:
    return Network("dpram_net", [dual_port_ram(WORD, DEPTH)(
        write=write_port(WORD, DEPTH)("wr"), read=read_port(WORD, DEPTH)("addr"),
        data=read_data(WORD, DEPTH)("data"))])


def _stimulus(net: Network, ticks: int = 200) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    names = {f"{b.name}.{s}" for b in net.inputs for s in b.signals()}
    rows = []
    for _ in range(ticks):
        row: dict[str, Any] = {}
        for name in names:
            if name.endswith("addr"):
                row[name] = int(rng.integers(0, 8))  # few addresses: reads hit the writes
            elif name.endswith("we"):
                row[name] = bool(rng.random() < 0.4)
            else:
                row[name] = int(rng.integers(0, 4096))
        rows.append(row)
    return rows


def _tdpram() -> Network:
    return Network("tdpram_net", [true_dual_port_ram(WORD, DEPTH)(
        a=ram_port(WORD, DEPTH)("pa"), b=ram_port(WORD, DEPTH)("pb"),
        data_a=read_data(WORD, DEPTH)("qa"), data_b=read_data(WORD, DEPTH)("qb"),
        mem=[(11 * a) % 4096 for a in range(DEPTH)])])


MEMORIES = {"rom": _rom, "single_port_ram": _spram, "dual_port_ram": _dpram,
            "true_dual_port_ram": _tdpram}


def _reset_branch(vhdl: str) -> str:
    m = re.search(r"if rst = '1' then(.*?)\n\s*else\n", vhdl, re.S)
    assert m is not None, "no reset branch in the process"
    return m.group(1)


def _process_file(folder: Path, net: Network) -> Path:
    (proc,) = net.processes
    return folder / f"{type(proc).__name__}.vhd"


@pytest.mark.parametrize("kind", list(MEMORIES))
def test_memory_storage_is_not_reset_and_matches_python(kind: str,
                                                       sme_hw: HardwareTester) -> None:
    net = MEMORIES[kind]()
    sme_hw.all_backends(net, _stimulus(net))
    vhdl = _process_file(sme_hw.export(net).out_dir, net).read_text()
    assert re.search(r"variable mem : \w+ := mem_init;", vhdl)  # initial contents kept
    reset = _reset_branch(vhdl)
    assert re.search(r"data\w*_rdata_next :=", reset)  # the output register is reset ...
    assert "mem :=" not in reset           # ... the storage array is not


def test_true_dual_port_collisions_are_simulated_alike(sme_hw: HardwareTester) -> None:
    """Both ports on one address every tick, writing at random: GHDL stores port b's word
    as the Python backends do (the collision rule of sme.memory)."""
    net = _tdpram()
    rng = np.random.default_rng(3)
    rows = [{"pa.addr": 5, "pb.addr": 5, "pa.we": bool(rng.random() < 0.7),
             "pb.we": bool(rng.random() < 0.7), "pa.wdata": int(rng.integers(0, 4096)),
             "pb.wdata": int(rng.integers(0, 4096))} for _ in range(60)]
    sme_hw.all_backends(net, rows)


def _yosys_memories(folder: Path, entity: str) -> tuple[str, str]:
    """GHDL's synthesis of ``entity`` as Verilog, read by Yosys: its notes and statistics."""
    sources = [folder / "sme_pkg.vhd", *sorted(folder.glob("*_pkg.vhd")),
               folder / f"{entity}.vhd"]
    sources = list(dict.fromkeys(p for p in sources if p.name != "tb_sme_pkg.vhd"))
    synth = subprocess.run(["ghdl", "--synth", "--std=08", "--out=verilog",
                            *map(str, sources), "-e", entity],
                           capture_output=True, text=True, cwd=folder, timeout=600, check=False)
    assert synth.returncode == 0, synth.stderr
    (folder / f"{entity}.v").write_text(synth.stdout)
    stat = subprocess.run(["yosys", "-q", "-p", f"read_verilog {entity}.v; proc; opt; "
                           "memory -nomap; opt_clean; tee -o stat.txt stat; "
                           "tee -a stat.txt select -count t:$mem_v2 r:RD_CLK_ENABLE=1"],
                          capture_output=True, text=True, cwd=folder, timeout=600, check=False)
    assert stat.returncode == 0, stat.stderr
    return synth.stderr, (folder / "stat.txt").read_text()


def test_yosys_infers_a_block_ram(tmp_path: Path) -> None:
    for tool in ("ghdl", "yosys"):
        assert shutil.which(tool), f"{tool} is not installed (the Makefile installs it)"
    net = _spram()
    export(net, tmp_path / "ok")
    entity = type(net.processes[0]).__name__
    notes, stat = _yosys_memories(tmp_path / "ok", entity)
    assert re.search(rf'found RAM "[\w.]*mem", width: 12 bits, depth: {DEPTH}', notes)
    assert re.search(r"\$mem_v2\s+1\b", stat), stat
    assert re.search(r"^1 objects\.$", stat, re.M), stat  # its read port is clocked
    # the same design with its storage reset is flip-flops, no memory
    bad = tmp_path / "reset"
    export(net, bad)
    text = (bad / f"{entity}.vhd").read_text()
    text = text.replace("if rst = '1' then", "if rst = '1' then\n        mem := mem_init;", 1)
    (bad / f"{entity}.vhd").write_text(text)
    notes, stat = _yosys_memories(bad, entity)
    assert "found RAM" not in notes
    assert "$mem_v2" not in stat


def test_yosys_infers_a_true_dual_port_ram(tmp_path: Path) -> None:
    """One memory with two clocked (read-first) read ports and two write ports."""
    net = _tdpram()
    export(net, tmp_path)
    entity = type(net.processes[0]).__name__
    notes, stat = _yosys_memories(tmp_path, entity)
    assert re.search(rf'found RAM "[\w.]*mem", width: 12 bits, depth: {DEPTH}', notes)
    assert re.search(r"\$mem_v2\s+1\b", stat), stat
    assert re.search(r"^1 objects\.$", stat, re.M), stat
    subprocess.run(["yosys", "-q", "-p", f"read_verilog {entity}.v; proc; opt; memory -nomap; "
                    "opt_clean; tee -o dump.txt dump t:$mem_v2"],
                   capture_output=True, text=True, cwd=tmp_path, timeout=600, check=True)
    dump = (tmp_path / "dump.txt").read_text()
    params = dict(re.findall(r"parameter \\(\w+) (\S+)", dump))
    assert (params["RD_PORTS"], params["WR_PORTS"]) == ("2", "2"), params
    assert params["RD_CLK_ENABLE"] == "2'11"           # both reads registered
    assert params["RD_TRANSPARENCY_MASK"] == "4'0000"  # read-first on both ports
