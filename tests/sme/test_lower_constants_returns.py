"""Class constants in process bodies, and ``return`` inside nested ``elif`` branches: the
compiled backend (built on the shared front end) must agree with the interpreter."""

from __future__ import annotations

import pytest

from sme import Bool, Bus, In, Network, Out, Process, Simulator, UInt
from sme.lower import LoweringError, lower_process

LIMIT = 9


class Inp(Bus):
    """Stimulus."""

    x: UInt[4] = 0
    go: Bool = False


class Res(Bus):
    """Result."""

    y: UInt[8] = 0
    tag: UInt[2] = 0


class Early(Process):
    """Returns early from the middle of an elif chain; what follows the chain runs only on
    the paths that did not return."""

    inp: In[Inp]
    out: Out[Res]
    STEP = 3
    TABLE = (5, 6, 7, 8)

    def on_tick(self) -> None:
        self.out.tag = 0
        if self.inp.x == 0:
            self.out.y = 1
        elif self.inp.go:
            if self.inp.x > LIMIT:
                self.out.y = self.STEP
                return
            self.out.y = self.TABLE[self.inp.x & 3]
        else:
            self.out.y = 2
        self.out.tag = 3


class Clash(Process):
    """A class constant and a module constant of the same name."""

    inp: In[Inp]
    out: Out[Res]
    LIMIT = 4

    def on_tick(self) -> None:
        self.out.y = self.LIMIT + LIMIT


def test_nested_return_and_class_constants_match_the_interpreter() -> None:
    stim = [{"inp.x": x, "inp.go": go} for x in range(16) for go in (False, True)]

    def run(backend: str) -> list[tuple[int, int]]:
        net = Network("early", [Early(inp=Inp("inp"), out=Res("out"))])
        sim = Simulator(net, backend=backend)
        got = []
        for row in stim:
            sim.apply(row)
            sim.step()
            got.append((sim.peek("out.y"), sim.peek("out.tag")))
        return got

    interp = run("interp")
    assert interp[2 * 12 + 1] == (3, 0)  # x=12, go: returned before the tag
    assert interp[2 * 5 + 1] == (6, 3)
    assert run("compiled") == interp


def test_class_constant_shadowing_a_module_constant_is_an_error() -> None:
    with pytest.raises(LoweringError, match="names two different constants"):
        lower_process(Clash)
