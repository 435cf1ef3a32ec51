"""Tools of the differential fuzzers (``fpga.fuzz``, ``fpga.fuzz_language``): where the
generator's random decisions come from (``Choices``: a seeded ``random.Random``, or a
hypothesis ``draw`` so that hypothesis can shrink a failing module), loading a
generated module from a file (the translators read process source code, so it must live on
disk), shrinking a failing process body statement by statement, and hypothesis strategies
of stimuli and signal values. ``fpga.fuzz`` re-exports them.
"""

from __future__ import annotations

import ast
import importlib.util
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar

__all__ = ["Choices", "RandomChoices", "hypothesis_choices", "load_module", "reduce_body",
           "stimulus_strategy", "value_strategy"]

T = TypeVar("T")


class Choices(Protocol):
    """The source of every random decision of the generator."""

    def integer(self, lo: int, hi: int) -> int:
        """An integer in ``lo..hi`` (inclusive)."""

    def pick(self, options: Sequence[T]) -> T:
        """One of ``options``."""

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""


class RandomChoices:
    """``Choices`` from a seeded ``random.Random``."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        """An integer in ``lo..hi``."""
        return self.rng.randint(lo, hi)

    def pick(self, options: Sequence[T]) -> T:
        """One of ``options``."""
        return options[self.rng.randrange(len(options))]

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""
        return self.rng.random() < p


class _DrawChoices:
    def __init__(self, draw: Callable[[Any], Any]) -> None:
        from hypothesis import strategies as st

        self.draw, self.st = draw, st

    def integer(self, lo: int, hi: int) -> int:
        return int(self.draw(self.st.integers(lo, hi)))

    def pick(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]

    def chance(self, p: float) -> bool:
        # draws 0 ("no") as the simplest value, so shrinking removes optional parts
        return self.integer(0, 999) >= 1000 - int(p * 1000)


def hypothesis_choices(draw: Callable[[Any], Any]) -> Choices:
    """``Choices`` drawn from a hypothesis ``draw`` (inside ``@st.composite``)."""
    return _DrawChoices(draw)



def reduce_body(source: str, process: str, still_fails: Callable[[str], bool]) -> str:
    """Shrink the ``on_tick`` of class ``process`` in module ``source``: delete statements
    one at a time, outermost first (nested ones too), keeping each deletion after which
    ``still_fails(new_source)`` is still true; return the reduced source (one greedy
    delta-debugging pass: about one ``still_fails`` call per statement)."""
    tree = ast.parse(source)
    body = _on_tick(tree, process)
    slots = _statement_slots(body)
    i = 0
    while i < len(slots):
        owner, attr, index = slots[i]
        block: list[ast.stmt] = getattr(owner, attr)
        if isinstance(block[index], ast.Pass):
            i += 1
            continue
        removed = block.pop(index)
        if not block:
            block.append(ast.Pass())
        if still_fails(ast.unparse(tree)):
            slots = _statement_slots(body)  # the same position now holds the next statement
            continue
        if len(block) == 1 and isinstance(block[0], ast.Pass):
            block.pop()
        block.insert(index, removed)
        i += 1
    return ast.unparse(tree)


def _on_tick(tree: ast.Module, process: str) -> ast.FunctionDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == process:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "on_tick":
                    return item
    raise ValueError(f"no class {process} with on_tick in the source")


def _statement_slots(node: ast.AST) -> list[tuple[ast.AST, str, int]]:
    """(owner, field, index) of every statement under ``node``, outermost first."""
    slots: list[tuple[ast.AST, str, int]] = []
    for attr in ("body", "orelse"):
        block = getattr(node, attr, None)
        if isinstance(block, list):
            slots += [(node, attr, i) for i in range(len(block))]
    for attr in ("body", "orelse"):
        for stmt in getattr(node, attr, None) or []:
            slots += _statement_slots(stmt)
    for case in getattr(node, "cases", None) or []:
        slots += [(case, "body", i) for i in range(len(case.body))]
        for stmt in case.body:
            slots += _statement_slots(stmt)
    return slots


_loaded = 0


def load_module(source: str, folder: str | Path, name: str | None = None) -> ModuleType:
    """Write ``source`` to ``folder/<name>.py`` and import it under a unique module name
    (the translators read process source code from the file)."""
    global _loaded
    _loaded += 1
    mod_name = name or f"smeflow_fuzz_{_loaded}_{abs(hash(source)) % 10**8}"
    path = Path(folder) / f"{mod_name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(mod_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[mod_name]
        raise
    return module


def stimulus_strategy(network: Any, min_ticks: int = 1, max_ticks: int = 200) -> Any:
    """A hypothesis strategy of stimulus lists for ``network``: one ``{"bus.signal": value}``
    per tick, a value for every top-level input signal, from the signal's whole range."""
    from hypothesis import strategies as st

    columns = [(t.name, value_strategy(t.type)) for t in network.traced_signals()
               if t.is_input]
    tick = st.fixed_dictionaries({name: s for name, s in columns})
    return st.lists(tick, min_size=min_ticks, max_size=max_ticks)


def value_strategy(t: Any) -> Any:
    """A hypothesis strategy of the values of signal type ``t``."""
    from hypothesis import strategies as st

    from sme.types import ArrayType, BoolType, EnumType, Fixed, FixedType, IntegerType

    if isinstance(t, BoolType):
        return st.booleans()
    if isinstance(t, EnumType):
        return st.sampled_from(t.members)
    if isinstance(t, FixedType):
        raw = st.integers(t.raw_type.lo, t.raw_type.hi)
        return raw.map(lambda r: Fixed(r, t.frac_bits))
    if isinstance(t, IntegerType):
        return st.integers(t.lo, t.hi)
    if isinstance(t, ArrayType):
        return st.lists(value_strategy(t.element), min_size=t.length, max_size=t.length)
    raise TypeError(f"no strategy for signal type {t!r}")
