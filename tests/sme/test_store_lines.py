"""A value that does not fit where a process stores it names the ``file:line`` of the
store (bus signal, register, array element, annotated local), with the same message in the
interpreter and the compiled backend (whose hot path is unchanged: the line comes from the
failed check's site)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from sme import Array, Bus, Network, Out, Process, Simulator, UInt, wrap
from sme.srcloc import SrcLoc


class Word(Bus):
    value: UInt[4] = 0
    arr: Array[UInt[4], 2] = (0, 0)


class ToBus(Process):
    out: Out[Word]

    def on_tick(self) -> None:
        if self.out.value == 0:
            self.out.value = self.out.value + 1
        else:
            self.out.value = (
                self.out.value
                + 15)


class ToRegister(Process):
    out: Out[Word]
    n: UInt[4] = 14

    def on_tick(self) -> None:
        self.out.value = 1
        self.n = self.n + 1


class ToElement(Process):
    out: Out[Word]
    n: UInt[4] = 12

    def on_tick(self) -> None:
        self.n = wrap(self.n + 1)
        self.out.arr[1] = self.n + 2


class ToLocal(Process):
    out: Out[Word]
    n: UInt[4] = 14

    def on_tick(self) -> None:
        k: UInt[4] = self.n
        self.n = wrap(self.n + 1)
        k = k + 1
        self.out.value = k


STORES = {
    # the statement that overflows, and how the message names the target and the writer
    ToBus: ("self.out.value = (", "word.value: cannot store 16 (16 is out of range); UInt[4] "
            "allows 0..15; written by {who} through port 'out' at {at}; if the overflow is "
            "deliberate, write wrap(...) or saturate(...) (tick 1)"),
    ToRegister: ("self.n = self.n + 1", "to_register.n: cannot store 16 (16 is out of range); "
                 "UInt[4] allows 0..15; written by {who} at {at}; if the overflow is "
                 "deliberate, write wrap(...) or saturate(...) (tick 1)"),
    ToElement: ("self.out.arr[1] = self.n + 2", "word.arr[1]: 16 is out of range; "
                "Array[UInt[4], 2] allows 2 elements, each 0..15; written at {at} (tick 1)"),
    ToLocal: ("k = k + 1", "local k: 16 is out of range; UInt[4] allows 0..15; stored by "
              "{who} at {at}; if the overflow is deliberate, write wrap(...) or saturate(...)"),
}


def _at(cls: type[Process], text: str) -> str:
    lines, first = inspect.getsourcelines(cls.on_tick)
    return str(SrcLoc(__file__, first + next(k for k, ln in enumerate(lines)
                                             if ln.strip() == text)))


@pytest.mark.parametrize("backend", ["interp", "compiled"])
@pytest.mark.parametrize("cls", list(STORES), ids=lambda c: c.__name__)
def test_an_overflow_names_the_line_of_the_store(cls: type[Process], backend: str) -> None:
    proc: Any = cls(out=Word())
    sim = Simulator(Network("lines", [proc]), backend=backend)
    with pytest.raises(ValueError) as info:  # (SignalValueError is one)
        sim.run(ticks=3)
    text, want = STORES[cls]
    assert str(info.value) == want.format(who=proc.describe(), at=_at(cls, text))
