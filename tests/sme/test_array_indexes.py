"""Array indexes run from 0 to length - 1 in every backend (docs/semantics.md): a negative
run-time index read ``buf[4]`` for ``buf[-3]`` in both software backends (Python's count
from the end) while the exported VHDL stops on it under GHDL (``index (-3) out of bounds
(0 to 6)``, tests/fpga/test_cosim_lockstep.py) and SME's C# arrays throw. Now it is one
``ArrayIndexError`` naming array, index, bounds, process, line and tick, the same in the
interpreter and the compiled backend, step and batch."""

from __future__ import annotations

import re

import numpy as np
import pytest

from sme import Array, ArrayIndexError, Bus, In, Int, Network, Out, Process, Simulator, UInt
from sme.errors import BackendError
from sme.lower.errors import LoweringError

BACKENDS = ("interp", "compiled")
TABLE = (10, 20, 30, 40, 50)


class Ask(Bus):
    a: UInt[8] = 3


class Got(Bus):
    y: UInt[8] = 0


class Back(Bus):
    arr: Array[UInt[8], 4] = [0] * 4


class BufRead(Process):
    inp: In[Ask]
    out: Out[Got]
    buf: Array[UInt[8], 7] = [1, 2, 3, 4, 5, 6, 7]

    def on_tick(self) -> None:
        self.out.y = self.buf[self.inp.a - 3]


class TableRead(Process):
    inp: In[Ask]
    out: Out[Got]

    def on_tick(self) -> None:
        self.out.y = TABLE[self.inp.a - 3]


class LocalRead(Process):
    inp: In[Ask]
    out: Out[Got]

    def on_tick(self) -> None:
        near: Array[UInt[8], 3] = [7, 8, 9]
        self.out.y = near[self.inp.a - 3]


class RegisterWrite(Process):
    inp: In[Ask]
    out: Out[Got]
    buf: Array[UInt[8], 7] = [1, 2, 3, 4, 5, 6, 7]

    def on_tick(self) -> None:
        self.buf[self.inp.a - 3] = 9
        self.out.y = self.buf[0]


class OutputWrite(Process):
    inp: In[Ask]
    back: Out[Back]

    def on_tick(self) -> None:
        self.back.arr[self.inp.a - 3] = 1


def net(cls: type[Process]) -> Network:
    inp = Ask("inp")
    out = {"back": Back("back")} if cls is OutputWrite else {"out": Got("out")}
    return Network("indexes", [cls(name="p", inp=inp, **out)], inputs=[inp])


def line_of(code: str) -> int:
    """The line of this file holding ``code`` (once)."""
    with open(__file__) as f:
        (n,) = [i for i, ln in enumerate(f, 1) if ln.strip().startswith(code)]
    return n


def error(cls: type[Process], backend: str, batch: bool, a: list[int]) -> str:
    """The ``ArrayIndexError``'s message, for input a per tick."""
    sim = Simulator(net(cls), backend=backend, trace=False)
    with pytest.raises(ArrayIndexError) as info:
        if batch:
            sim.run_batch({"inp.a": np.array(a)}, len(a))
        else:
            sim.run(stimulus=[{"inp.a": x} for x in a])
    assert isinstance(info.value, IndexError)
    return str(info.value)


def same_error(cls: type[Process], a: list[int]) -> str:
    """The one error both backends raise, step and batch."""
    got = {error(cls, b, batch, a) for b in BACKENDS for batch in (False, True)}
    assert len(got) == 1, got
    return got.pop()


@pytest.mark.parametrize(("cls", "name", "length", "code"), [
    (BufRead, r"self\.buf", 7, "self.out.y = self.buf[self.inp"),
    (TableRead, "TABLE", 5, "self.out.y = TABLE["),
    (LocalRead, "near", 3, "self.out.y = near["),
])
@pytest.mark.parametrize("past_the_end", [False, True])
def test_an_index_read_outside_the_array_is_one_error_in_both_backends(
        cls: type[Process], name: str, length: int, code: str, past_the_end: bool) -> None:
    a = 3 + length if past_the_end else 0
    message = same_error(cls, [3, 4, a])
    where = f"{re.escape(__file__)}:{line_of(code)}"
    assert re.fullmatch(rf"{name}\[{a - 3}\]: index out of range 0\.\.{length - 1} \(read by "
                        rf"{cls.__name__} 'p' \(created at .*\) at {where}\) \(tick 2\)",
                        message), message


@pytest.mark.parametrize(("cls", "array", "length"), [(RegisterWrite, "p.buf", 7),
                                                      (OutputWrite, "back.arr", 4)])
@pytest.mark.parametrize("past_the_end", [False, True])
def test_an_index_written_outside_the_array_is_one_error_in_both_backends(
        cls: type[Process], array: str, length: int, past_the_end: bool) -> None:
    a = 3 + length if past_the_end else 1
    message = same_error(cls, [3, a])
    assert message == f"{array}[{a - 3}]: index out of range 0..{length - 1} (tick 1)"


class ConstantNegative(Process):
    inp: In[Ask]
    out: Out[Got]
    buf: Array[Int[8], 7] = [0] * 7

    def on_tick(self) -> None:
        self.out.y = self.buf[-1] + self.inp.a


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_constant_negative_index_is_refused_before_any_tick(backend: str) -> None:
    inp, out = Ask("inp"), Got("out")
    with pytest.raises((LoweringError, BackendError), match=r"index -1 is out of range 0\.\.6; "
                       "SME arrays have no negative indexes"):
        Simulator(Network("c", [ConstantNegative(name="c", inp=inp, out=out)], inputs=[inp]),
                  backend=backend, trace=False)
