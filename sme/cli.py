"""The ``smeflow`` command line.

Sub-commands come from the ``smeflow.commands`` entry-point group: each entry is a
function ``register(subparsers)`` that adds its parser and sets ``func`` (a function of the
parsed arguments returning an exit status). ``sme`` registers ``demo``, ``sim`` and
``graph``; other packages add theirs the same way, so ``sme`` never imports them.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import metadata
from typing import Any

from .errors import SmeError
from .network import Network


class CliError(Exception):
    """A user error on the command line: printed as one line, exit status 2."""


def load_object(spec: str) -> Any:
    """``package.module:attr`` → the object (``attr`` may be dotted)."""
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise CliError(f"{spec!r}: expected MODULE:NAME, e.g. sme.examples.counter:build")
    if module_name.startswith("."):
        raise CliError(f"{spec!r}: module {module_name!r} is relative; give its full "
                       "dotted name")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"{spec!r}: cannot import module {module_name!r}: {exc}") from None
    except SyntaxError as exc:  # the design file itself is not valid Python
        raise CliError(f"{spec!r}: {exc.filename}:{exc.lineno}: {exc.msg}") from None
    except OSError as exc:  # e.g. a design file that exists but cannot be read
        raise CliError(f"{spec!r}: cannot read module {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(f"{spec!r}: module {module_name!r} has no {attr!r}") from None
    return obj


def load_network(spec: str) -> Network:
    """``MODULE:NAME`` naming a ``Network`` or a function of no arguments returning one."""
    obj = load_object(spec)
    if callable(obj) and not isinstance(obj, Network):
        obj = obj()
    if not isinstance(obj, Network):
        raise CliError(f"{spec!r} is not a Network (nor a function returning one): {obj!r}")
    return obj


def load_stimulus(spec: str | None, ticks: int | None) -> Iterable[Mapping[Any, Any]] | None:
    """A fresh stimulus iterator from ``--stimulus MODULE:FUNC`` (``FUNC()`` is called),
    cut to ``ticks`` items when given; None when ``spec`` is None."""
    if spec is None:
        return None
    func = load_object(spec)
    if not callable(func):
        raise CliError(f"--stimulus {spec!r} is not a function returning stimulus")
    stim = func()
    try:
        it = iter(stim)
    except TypeError:
        raise CliError(f"--stimulus {spec!r} returned {stim!r}, not an iterable of "
                       "{'bus.signal': value} mappings") from None
    return itertools.islice(it, ticks) if ticks is not None else it


def _commands() -> list[Callable[[Any], None]]:
    return [ep.load() for ep in metadata.entry_points(group="smeflow.commands")]


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="smeflow",
        description="Hardware-in-the-loop dataflow simulation and acquisition for X-ray "
        "beamlines.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _commands():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``smeflow`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except (CliError, SmeError) as exc:
        print(f"smeflow {args.command}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, CliError) else 1
    except KeyboardInterrupt:
        return 130
    return status
