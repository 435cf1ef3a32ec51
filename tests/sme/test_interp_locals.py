"""The interpreter checks stores into annotated locals as the compiled backend does.

Python ignores a local's annotation, so the interpreter used to go on with a value no other
backend can hold (``n: UInt[3]`` accumulating to 12, where the compiled backend stops);
each case runs on both backends and must end the same way: the same outputs, or the same
error with the same message.
"""

from __future__ import annotations

import functools
import inspect
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sme import Bus, In, Network, Out, Process, Simulator, UInt, saturate, wrap
from sme.interp_locals import checked_on_tick
from sme.srcloc import SrcLoc


class Ctl(Bus):
    x: UInt[4] = 0


class Res(Bus):
    y: UInt[8] = 0


class Accumulates(Process):
    ctl: In[Ctl]
    res: Out[Res]

    def on_tick(self) -> None:
        n: UInt[3] = 0
        for _ in range(4):
            n = n + self.ctl.x
        self.res.y = n


class AugmentedAndWrapped(Process):
    ctl: In[Ctl]
    res: Out[Res]

    def on_tick(self) -> None:
        n: UInt[3] = 0
        m: UInt[3] = 7
        for _ in range(3):
            n += 1
            m = wrap(m + self.ctl.x)
        if n == 3:
            n = saturate(n * 9)
        self.res.y = n * 10 + m


class Stepwise(Process):
    """A generator body: the local lives across ticks."""

    ctl: In[Ctl]
    res: Out[Res]

    def on_tick(self) -> Any:
        k: UInt[4] = 0
        while True:
            k = k + self.ctl.x
            self.res.y = k
            yield


@functools.cache
def counter_of(width: int) -> type[Process]:
    """A factory's class: the local's type and the body read the factory's parameter."""

    class Counts(Process):
        ctl: In[Ctl]
        res: Out[Res]

        def on_tick(self) -> None:
            c: UInt[width] = 0
            for _ in range(width):
                c = c + self.ctl.x
            self.res.y = c

    return Counts


def outcome(cls: type[Process], backend: str, xs: list[int]) -> list[int] | tuple[str, str]:
    """The outputs after each input, or the error's type and message."""
    proc = cls(ctl=Ctl(), res=Res())  # (MADE: the line the errors name)
    sim = Simulator(Network(cls.__name__, [proc]), backend=backend, trace=False)
    got: list[int] = []
    try:
        for x in xs:
            sim.input(proc.ctl).x = x
            sim.step()
            got.append(int(sim.output(proc.res).y))
    except Exception as exc:  # the outcome compared across backends
        return type(exc).__name__, str(exc)
    return got


def _misfit(local: str, text: str, cls: Callable[[], type[Process]], store: str
            ) -> Callable[[], tuple[str, str]]:
    """The error of a store into an annotated local: local, value, range, process and the
    ``file:line`` of the store (``store``: its text in ``on_tick``)."""
    def make() -> tuple[str, str]:
        c = cls()
        lines, first = inspect.getsourcelines(c.on_tick)
        line = first + next(k for k, ln in enumerate(lines) if ln.strip() == store)
        who = f"{c.__name__} '{c.__name__.lower()}' (created at {SrcLoc(__file__, MADE)})"
        return ("ValueError", f"local {local}: {text}; stored by {who} at "
                f"{SrcLoc(__file__, line)}; if the overflow is deliberate, write wrap(...) or "
                "saturate(...)")
    return make


MADE = next(k + 1 for k, ln in enumerate(Path(__file__).read_text().splitlines())
            if ln.endswith("# (MADE: the line the errors name)"))


CASES: list[tuple[Callable[[], type[Process]], list[int],
                  list[int] | Callable[[], tuple[str, str]]]] = [
    (lambda: Accumulates, [1, 0], [4, 0]),
    (lambda: Accumulates, [1, 3], _misfit("n", "9 is out of range; UInt[3] allows 0..7",
                                          lambda: Accumulates, "n = n + self.ctl.x")),
    (lambda: AugmentedAndWrapped, [0, 3], [77, 70]),  # 3*9 saturates at 7; 7+3+3+3 wraps to 0
    (lambda: Stepwise, [5, 5, 5, 1], _misfit("k", "16 is out of range; UInt[4] allows 0..15",
                                             lambda: Stepwise, "k = k + self.ctl.x")),
    (lambda: counter_of(3), [2, 1], [6, 3]),
    (lambda: counter_of(3), [3], _misfit("c", "9 is out of range; UInt[3] allows 0..7",
                                         lambda: counter_of(3), "c = c + self.ctl.x")),
]


@pytest.mark.parametrize(("make", "xs", "want"), CASES)
def test_interpreter_and_compiled_backend_end_alike(
        make: Callable[[], type[Process]], xs: list[int],
        want: list[int] | Callable[[], tuple[str, str]]) -> None:
    cls = make()
    expected = want if isinstance(want, list) else want()
    assert outcome(cls, "interp", xs) == expected
    assert outcome(cls, "compiled", xs) == expected


def test_the_error_points_at_the_store_in_the_process_source() -> None:
    proc = Accumulates(ctl=Ctl(), res=Res())
    sim = Simulator(Network("at", [proc]), backend="interp", trace=False)
    sim.input(proc.ctl).x = 3
    with pytest.raises(ValueError, match="out of range") as caught:
        sim.step()
    frames = traceback.extract_tb(caught.value.__traceback__)
    body = [f for f in frames if f.name == "on_tick"]
    assert body and body[-1].filename == __file__
    assert body[-1].line == "n = n + self.ctl.x"


def test_a_body_without_annotated_locals_runs_as_written() -> None:
    class Plain(Process):
        ctl: In[Ctl]
        res: Out[Res]

        def on_tick(self) -> None:
            self.res.y = self.ctl.x + 1

    assert checked_on_tick(Plain.on_tick) is None
    assert outcome(Plain, "interp", [2]) == [3]
