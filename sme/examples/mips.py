"""A small MIPS-like CPU with its program in a RAM, after SME C#'s SimpleMIPS example.

``Cpu`` is a state process in the await style: it fetches an instruction (address out,
two ticks for the RAM to answer), decodes it, and executes it; loads and stores wait for
the RAM the same way. The RAM is ``sme.memory.single_port_ram`` (read-first, one tick of
latency), holding the program from address 0 and the data the program stores. The
subset: ``sll srl sra jr addu subu and or xor nor slt sltu`` (R format), ``j jal beq bne
addiu slti sltiu andi ori xori lui lw sw``, and ``0xFFFFFFFF`` to halt (``done`` is set
and stays set). Register 0 reads as zero; register 29 (the stack pointer) starts at the
top of memory.

``assemble`` turns a few lines of assembly into words; ``reference_run`` is an instruction
-level model of the same CPU written separately, which the tests compare the hardware's
memory with. ``FIBONACCI`` stores the first ``N_FIB`` Fibonacci numbers on the stack.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from sme import Array, Bool, Bus, In, Network, Out, Process, UInt, wrap
from sme.memory import address_width, single_port_ram

DEPTH = 128
"""Words of RAM (program and data)."""
ADDR = address_width(DEPTH)
HALT = 0xFFFFFFFF
N_FIB = 12

Ram = single_port_ram(UInt[32], DEPTH)
RamPort: Any = Ram.ports()["port"].bus_type   # the RAM's buses (made for its word type)
ReadData: Any = Ram.ports()["data"].bus_type


class Status(Bus):
    """The CPU's program counter (word address) and whether it has halted."""

    pc: UInt[ADDR] = 0
    done: Bool = False


def signed32(x: int) -> int:
    """A 32-bit word read as two's complement."""
    return x - (1 << 32) if x >= (1 << 31) else x


def sext16(x: int) -> int:
    """A 16-bit immediate, sign-extended."""
    return x - (1 << 16) if x >= (1 << 15) else x


class Cpu(Process):
    """Fetch, decode, execute, one instruction after the other (see the module docstring)."""

    rdata: In[ReadData]
    mem: Out[RamPort]
    status: Out[Status]
    pc: UInt[ADDR] = 0
    regs: Array[UInt[32], 32] = [0] * 29 + [DEPTH * 4, 0, 0]

    def on_tick(self) -> Any:
        while True:  # the next fetch in the tick the instruction ends
            self.mem.addr = self.pc          # fetch
            self.mem.we = False
            yield
            yield
            instr = self.rdata.rdata
            self.pc = wrap(self.pc + 1)
            op = instr >> 26
            rs = (instr >> 21) & 31
            rt = (instr >> 16) & 31
            rd = (instr >> 11) & 31
            shamt = (instr >> 6) & 31
            funct = instr & 63
            imm = instr & 0xFFFF
            ext = sext16(imm)
            a = self.regs[rs]
            b = self.regs[rt]
            value: UInt[32] = 0
            dest = 0                         # register written (0: none)
            if instr == HALT:
                self.status.done = True
                while True:
                    yield
            elif op == 0:
                dest = rd
                if funct == 0:
                    value = wrap(b << shamt)
                elif funct == 2:
                    value = b >> shamt
                elif funct == 3:
                    value = wrap(signed32(b) >> shamt)
                elif funct == 8:
                    self.pc = wrap(a)
                    dest = 0
                elif funct == 33:
                    value = wrap(a + b)
                elif funct == 35:
                    value = wrap(a - b)
                elif funct == 36:
                    value = a & b
                elif funct == 37:
                    value = a | b
                elif funct == 38:
                    value = a ^ b
                elif funct == 39:
                    value = wrap(~(a | b))
                elif funct == 42:
                    value = 1 if signed32(a) < signed32(b) else 0
                elif funct == 43:
                    value = 1 if a < b else 0
            elif op == 2:
                self.pc = wrap(instr)
            elif op == 3:
                value = self.pc
                dest = 31
                self.pc = wrap(instr)
            elif op == 4:
                if a == b:
                    self.pc = wrap(self.pc + ext)
            elif op == 5:
                if a != b:
                    self.pc = wrap(self.pc + ext)
            elif op == 9:
                value = wrap(a + ext)
                dest = rt
            elif op == 10:
                value = 1 if signed32(a) < ext else 0
                dest = rt
            elif op == 11:
                value = 1 if a < wrap_to_32(ext) else 0
                dest = rt
            elif op == 12:
                value = a & imm
                dest = rt
            elif op == 13:
                value = a | imm
                dest = rt
            elif op == 14:
                value = a ^ imm
                dest = rt
            elif op == 15:
                value = imm << 16
                dest = rt
            elif op == 35:
                self.mem.addr = wrap((a + ext) >> 2)
                yield
                yield
                value = self.rdata.rdata
                dest = rt
            elif op == 43:
                self.mem.addr = wrap((a + ext) >> 2)
                self.mem.wdata = b
                self.mem.we = True
                yield
                self.mem.we = False
            if dest != 0:
                self.regs[dest] = value
            self.status.pc = self.pc


def wrap_to_32(x: int) -> int:
    """``x`` as an unsigned 32-bit word (two's complement of a negative ``x``)."""
    return x + (1 << 32) if x < 0 else x


# -- assembler and reference model -------------------------------------------------------

_R = {"sll": 0, "srl": 2, "sra": 3, "jr": 8, "addu": 33, "subu": 35, "and": 36, "or": 37,
      "xor": 38, "nor": 39, "slt": 42, "sltu": 43}
_I = {"beq": 4, "bne": 5, "addiu": 9, "slti": 10, "sltiu": 11, "andi": 12, "ori": 13,
      "xori": 14, "lui": 15, "lw": 35, "sw": 43}
_J = {"j": 2, "jal": 3}
_NAMES = {"zero": 0, "v0": 2, "v1": 3, "a0": 4, "a1": 5, "t0": 8, "t1": 9, "t2": 10,
          "t3": 11, "s0": 16, "s1": 17, "sp": 29, "ra": 31}


def _reg(text: str) -> int:
    name = text.strip().lstrip("$")
    return int(name) if name.isdigit() else _NAMES[name]


def assemble(source: str) -> list[int]:
    """Words of a program in the subset above (``label:`` lines, ``#`` comments,
    ``halt``); branch targets are labels."""
    lines = [ln.split("#")[0].strip() for ln in source.splitlines()]
    labels: dict[str, int] = {}
    code: list[str] = []
    for ln in lines:
        if ln.endswith(":"):
            labels[ln[:-1]] = len(code)
        elif ln:
            code.append(ln)
    words = []
    for pc, ln in enumerate(code):
        op, _, rest = ln.partition(" ")
        args = [a.strip() for a in rest.split(",")] if rest else []
        if op == "halt":
            words.append(HALT)
        elif op in _R:
            if op == "jr":
                words.append(_reg(args[0]) << 21 | _R[op])
            elif op in ("sll", "srl", "sra"):
                words.append(_reg(args[1]) << 16 | _reg(args[0]) << 11
                             | (int(args[2]) & 31) << 6 | _R[op])
            else:
                words.append(_reg(args[1]) << 21 | _reg(args[2]) << 16 | _reg(args[0]) << 11
                             | _R[op])
        elif op in ("lw", "sw"):
            m = re.fullmatch(r"(-?\d+)\((\$?\w+)\)", args[1])
            assert m is not None, ln
            words.append(_I[op] << 26 | _reg(m[2]) << 21 | _reg(args[0]) << 16
                         | int(m[1]) & 0xFFFF)
        elif op in ("beq", "bne"):
            offset = labels[args[2]] - (pc + 1)
            words.append(_I[op] << 26 | _reg(args[0]) << 21 | _reg(args[1]) << 16
                         | offset & 0xFFFF)
        elif op == "lui":
            words.append(_I[op] << 26 | _reg(args[0]) << 16 | int(args[1]) & 0xFFFF)
        elif op in _I:
            words.append(_I[op] << 26 | _reg(args[1]) << 21 | _reg(args[0]) << 16
                         | int(args[2], 0) & 0xFFFF)
        elif op in _J:
            words.append(_J[op] << 26 | labels[args[0]])
        else:
            raise ValueError(f"unknown instruction {ln!r}")
    return words


def reference_run(program: list[int], max_steps: int = 100_000) -> list[int]:
    """The memory after running ``program`` on an instruction-level model of ``Cpu``."""
    mem = program + [0] * (DEPTH - len(program))
    regs = [0] * 32
    regs[29] = DEPTH * 4
    pc, mask = 0, (1 << 32) - 1
    for _ in range(max_steps):
        instr = mem[pc]
        pc = (pc + 1) % DEPTH
        if instr == HALT:
            return mem
        op, rt, rd = instr >> 26, instr >> 16 & 31, instr >> 11 & 31
        imm, a, b = instr & 0xFFFF, regs[instr >> 21 & 31], regs[instr >> 16 & 31]
        ext, dest, value = sext16(imm), 0, 0
        if op == 0:
            funct, sh = instr & 63, instr >> 6 & 31
            dest = rd
            value = {0: b << sh, 2: b >> sh, 3: signed32(b) >> sh, 33: a + b, 35: a - b,
                     36: a & b, 37: a | b, 38: a ^ b, 39: ~(a | b),
                     42: int(signed32(a) < signed32(b)), 43: int(a < b)}.get(funct, 0)
            if funct == 8:
                pc, dest = a % DEPTH, 0
        elif op in (2, 3):
            if op == 3:
                dest, value = 31, pc
            pc = instr & (DEPTH - 1)
        elif op in (4, 5):
            if (a == b) == (op == 4):
                pc = (pc + ext) % DEPTH
        elif op == 35:
            dest, value = rt, mem[((a + ext) >> 2) % DEPTH]
        elif op == 43:
            mem[((a + ext) >> 2) % DEPTH] = b
        else:
            dest = rt
            value = {9: a + ext, 10: int(signed32(a) < ext), 11: int(a < (ext & mask)),
                     12: a & imm, 13: a | imm, 14: a ^ imm, 15: imm << 16}[op]
        if dest:
            regs[dest] = value & mask
    raise RuntimeError("the program did not halt")


FIBONACCI = f"""
        ori $t0, $zero, 0          # fib(i)
        ori $t1, $zero, 1          # fib(i + 1)
        ori $s0, $zero, {N_FIB}    # numbers left
loop:
        addiu $sp, $sp, -4
        sw $t0, 0($sp)
        addu $t2, $t0, $t1
        or $t0, $t1, $zero
        or $t1, $t2, $zero
        addiu $s0, $s0, -1
        bne $s0, $zero, loop
        jal check
        halt
check:                             # sum the stored numbers back into v0 (uses lw, jr)
        ori $v0, $zero, 0
        ori $t3, $zero, {N_FIB}
again:
        lw $t2, 0($sp)
        addu $v0, $v0, $t2
        addiu $sp, $sp, 4
        addiu $t3, $t3, -1
        slt $t2, $zero, $t3
        bne $t2, $zero, again
        sw $v0, -{4 * (N_FIB + 1)}($sp)    # below the numbers
        jr $ra
"""


def build(source: str = FIBONACCI) -> Network:
    """The CPU and its RAM, loaded with ``source`` (the Fibonacci program by default)."""
    program = assemble(source)
    port, rdata = RamPort(name="memin"), ReadData(name="memout")
    return Network("mips", [
        Cpu(rdata=rdata, mem=port, status=Status()),
        Ram(name="ram", port=port, data=rdata, mem=program + [0] * (DEPTH - len(program))),
    ])


def stimulus(ticks: int = 600) -> Iterator[dict[str, Any]]:
    """The CPU has no inputs: ``ticks`` empty stimulus items (the program ends before)."""
    for _ in range(ticks):
        yield {}
