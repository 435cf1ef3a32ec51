"""Process classes that use Python the translators do not support (one construct each)."""
# ruff: noqa
from __future__ import annotations

from sme import Array, Bool, Bus, In, Out, Process, UInt


class Src(Bus):
    a: UInt[8] = 0
    flag: Bool = False


class Dst(Bus):
    b: UInt[8] = 0


class WhileLoop(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        while self.inp.flag:
            self.out.b = 1


def _wait(ticks: int):  # type: ignore[no-untyped-def]
    for _ in range(ticks):
        yield


class YieldFromHelper(Process):
    """C#'s ``await WaitAsync(2)`` ported as ``yield from``: it said "an expression
    statement has no effect in hardware"."""

    inp: In[Src]
    out: Out[Dst]

    def on_tick(self):  # type: ignore[no-untyped-def]
        self.out.b = 1
        yield from _wait(2)
        self.out.b = 2


class TryStmt(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        try:
            self.out.b = 1
        except ValueError:
            pass


class TrueDivision(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        self.out.b = self.inp.a / 2


class FloatLiteral(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        self.out.b = self.inp.a * 0.5


class MethodCall(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        self.out.b = self.helper()

    def helper(self) -> int:
        return 1


class ForOverPort(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        for i in range(self.inp.a, 9):
            self.out.b = i


class ReturnInLoop(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        for i in range(4):
            if self.inp.flag:
                return
            self.out.b = i


class WhileNoYield(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self):  # type: ignore[no-untyped-def]
        while self.inp.flag:
            self.out.b = 1
        yield


class Comprehension(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        self.out.b = sum([1 for _ in range(3)])


class SliceRead(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        self.out.b = self.inp.a[1:2]


class StringValue(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        self.out.b = "x"


class InOperator(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        if self.inp.a in (1, 2):
            self.out.b = 1


class WriteInput(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        self.inp.a = 1


class BoolArithmetic(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        self.out.b = self.inp.flag + 1


class Accumulator(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        total = 0
        for i in range(4):
            total = total + self.inp.a
        self.out.b = total


class NoYieldPath(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self):  # type: ignore[no-untyped-def]
        while True:
            if self.inp.flag:
                yield
            self.out.b = 1


class NoYieldPass(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self):  # type: ignore[no-untyped-def]
        if self.inp.flag:
            yield
        self.out.b = 1


class Guarded(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        if self.inp.flag:
            self.out.b = 1
            return
        self.out.b = 2


class SumOfScalar(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        self.out.b = sum(self.inp.a)


class ChainReadsTarget(Process):
    inp: In[Src]
    out: Out[Dst]
    r: UInt[8] = 0

    def on_tick(self) -> None:
        self.out.b = self.r = self.out.b + 1


class ArrSrc(Bus):
    arr: Array[UInt[4], 4] = [0, 0, 0, 0]
    n: UInt[3] = 0


class EnumerateWithStart(Process):
    inp: In[ArrSrc]
    out: Out[Dst]

    def on_tick(self) -> None:
        for i, e in enumerate(self.inp.arr, 1):
            self.out.b = i + e


class EnumerateReversed(Process):
    inp: In[ArrSrc]
    out: Out[Dst]

    def on_tick(self) -> None:
        for i, e in enumerate(reversed(self.inp.arr)):
            self.out.b = i + e


class ReversedRunTimeRange(Process):
    inp: In[ArrSrc]
    out: Out[Dst]

    def on_tick(self) -> None:
        for i in reversed(range(self.inp.n)):
            self.out.b = i


class LoopVarReadAfter(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        for i in range(4):
            self.out.b = i
        self.out.b = i


class LoopVarAssigned(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        for i in range(4):
            i = 2
            self.out.b = i


class AnyOfScalar(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        self.out.b = int(any(self.inp.a))


class MatchOnInteger(Process):
    inp: In[Src]
    out: Out[Dst]

    def on_tick(self) -> None:
        match self.inp.a:  # C#'s switch on an int
            case 0:
                self.out.b = 1
            case _:
                self.out.b = 2


class PlainIntField(Process):
    inp: In[Src]
    out: Out[Dst]
    count: int = 0  # C#'s `int count = 0;` field, without a signal type

    def on_tick(self) -> None:
        self.count += 1
        self.out.b = self.count
