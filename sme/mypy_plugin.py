"""A mypy plugin so that hardware declarations type-check as what they hold.

``UInt[8]`` and ``Int[n]`` are ints, ``Bool`` is a bool, ``UFix``/``SFix`` are
``sme.fixed.Fixed`` and ``Array[T, n]`` is a ``list`` of ``T`` — which is what a process
body reads and writes. Enable it with ``plugins = ["sme.mypy_plugin"]`` in the mypy
configuration (smeflow's own ``pyproject.toml`` does).
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.plugin import AnalyzeTypeContext, Plugin
from mypy.types import Type

_SCALARS = {
    "sme.types.UInt": "builtins.int",
    "sme.types.Int": "builtins.int",
    "sme.types.Bool": "builtins.bool",
    "sme.types.UFix": "sme.fixed.Fixed",
    "sme.types.SFix": "sme.fixed.Fixed",
}


def _scalar(target: str) -> Callable[[AnalyzeTypeContext], Type]:
    def hook(ctx: AnalyzeTypeContext) -> Type:
        return ctx.api.named_type(target, [])

    return hook


def _array(ctx: AnalyzeTypeContext) -> Type:
    args = ctx.type.args
    if not args:
        ctx.api.fail("Array needs an element type and a length: Array[T, n]", ctx.context)
        return ctx.api.named_type("builtins.list", [ctx.api.named_type("builtins.object", [])])
    return ctx.api.named_type("builtins.list", [ctx.api.analyze_type(args[0])])


class SmePlugin(Plugin):
    """Maps SME signal types in annotations to the Python types of their values."""

    def get_type_analyze_hook(self, fullname: str) -> Callable[[AnalyzeTypeContext], Type] | None:
        if fullname in _SCALARS:
            return _scalar(_SCALARS[fullname])
        if fullname == "sme.types.Array":
            return _array
        return None


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point."""
    return SmePlugin
