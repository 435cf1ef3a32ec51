"""The ``smeflow`` command line.

Sub-commands come from the ``smeflow.commands`` entry-point group: each entry is a
function ``register(subparsers)`` that adds its parser and sets ``func`` (a function of the
parsed arguments returning an exit status). ``sme`` registers ``demo``, ``sim`` and
``graph``; other packages add theirs the same way, so ``sme`` never imports them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import SmeError
from .loading import CliError, describe_exception, load_network, load_object, load_stimulus

if TYPE_CHECKING:
    from .network import Network

_T = TypeVar("_T")


def _commands(only: str | None = None) -> list[Callable[[Any], None]]:
    entries = metadata.entry_points(group="smeflow.commands")
    chosen = [ep for ep in entries if ep.name == only]
    return [ep.load() for ep in (chosen or entries)]


def _command_named(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names: its first word that is not an option (``--debug``,
    the only option before a sub-command, takes no value), or ``None``."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, with every registered sub-command; with ``only`` the name of one,
    just that one (:func:`main`: importing every command's modules cost ``smeflow proxy``
    5 s of CPU and 330 MB, the live consumer's and the demo's start as much)."""
    parser = argparse.ArgumentParser(
        prog="smeflow",
        description="Hardware-in-the-loop dataflow simulation and acquisition for X-ray "
        "beamlines.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _commands(only):
        register(sub)
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the Python traceback too")
    for p in sub.choices.values():  # `smeflow sim ... --debug` works as well
        if "--debug" not in p._option_string_actions:
            p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                           help="on an error, show the Python traceback too")
    return parser


def given(value: _T | None, default: _T) -> _T:
    """A command-line option's value, or ``default`` when it was not given: options that
    one mode of a command refuses default to None, so that giving one can be told from
    leaving it out, and take their real default here."""
    return default if value is None else value


def check_trace_memory(ticks: int, network: Network, option: str = "--ticks") -> None:
    """``CliError`` before anything is simulated when the trace of ``ticks`` ticks of
    ``network`` needs more than :data:`sme.host_memory.MEMORY_FRACTION` of the memory
    available (its floor, :func:`sme.trace.memory_floor`; :class:`sme.trace.TraceBudget`):
    the trace keeps every row, and ``--ticks 10**12`` ran on with it growing (≈ 72 bytes a
    tick for the counter) until the machine had no memory left. The message names the
    limit and the most ticks that fit under it."""
    from .trace import TraceBudget, memory_floor, size_text

    budget = TraceBudget.now(len(network.traced_signals()))
    need = memory_floor(ticks + 1, budget.signals)  # (the reset row, then one a tick)
    if need > budget.limit:
        raise CliError(f"{option} {ticks}: a trace of {ticks + 1} rows × {budget.signals} "
                       f"signals needs at least {size_text(need)} of memory, more than "
                       f"{budget.explain()}; give at most {budget.ticks} ticks")


def output_file(path: str, option: str) -> Path:
    """Check, before any work is done, that ``path`` (given as ``option``) can be written as
    a file: not a folder, and no existing ancestor that is a file."""
    p = Path(path)
    if p.is_dir():
        raise CliError(f"{option} {path}: is a folder; give a file name, e.g. "
                       f"{p / _EXAMPLE.get(option, 'out.txt')}")
    _check_ancestors(p, option, path)
    return p


def output_dir(path: str, option: str) -> Path:
    """Check, before any work is done, that ``path`` (given as ``option``) is a folder or can
    be made one."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CliError(f"{option} {path}: is a file, not a folder; give a folder for the "
                       "generated files")
    _check_ancestors(p, option, path)
    return p


_EXAMPLE = {"--csv": "trace.csv", "--vcd": "trace.vcd", "-o": "network.svg"}


def _check_ancestors(p: Path, option: str, path: str) -> None:
    for parent in p.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise CliError(f"{option} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise CliError(f"{option} {path}: the folder {parent} is not writable")
            return


def _own_code(location: str) -> bool:
    """Whether ``file:line`` is in smeflow's packages or an installed library (not the
    user's design)."""
    file = location.rpartition(":")[0]
    roots = [str(Path(__file__).resolve().parent.parent / pkg) for pkg in
             ("sme", "fpga", "devices", "dataflow", "plans", "analysis")]
    return any(file.startswith(r + os.sep) for r in roots) or "site-packages" in file \
        or file.startswith(sys.base_prefix)


ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
"""Apache Arrow's choice of allocator, which :func:`main` sets to ``"system"`` (the C
library's ``malloc``) unless the environment sets it. Arrow (pyarrow, brought by the
catalog's packages) otherwise takes its buffers from mimalloc, which keeps the memory of
freed buffers in its own arena: the catalog's writer turns each run's tables into Arrow
at the run's stop, and ≈ 6 MB of that stayed resident for the rest of ``smeflow demo``
(in its peak). ``sme`` itself does not use Arrow; the command line is one process for
every package's commands, and the variable is read once, when pyarrow is imported."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``smeflow`` console script.

    A failure is one line on stderr, ``smeflow COMMAND: error: ...``: exit status 2 for a
    usage error (``CliError``), 1 for anything else. ``--debug`` shows the traceback.
    """
    # (before the commands' modules are imported: Arrow reads it once, on its import)
    os.environ.setdefault(ARROW_POOL_VARIABLE, "system")
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_named(words))
    args = parser.parse_args(words)
    prefix = f"smeflow {args.command}"
    try:
        status: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        if isinstance(exc, (CliError, SmeError)):
            print(f"{prefix}: error: {exc}", file=sys.stderr)
            return 2 if isinstance(exc, CliError) else 1
        if isinstance(exc, OSError) and exc.filename is not None:
            print(f"{prefix}: error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        from .loading import where

        loc = where(exc)
        kind = "internal error" if not loc or _own_code(loc) else "error"
        print(f"{prefix}: {kind}: {describe_exception(exc)}"
              + ("; rerun with --debug for the traceback" if kind == "internal error" else ""),
              file=sys.stderr)
        return 1
    return status


__all__ = ["ARROW_POOL_VARIABLE", "CliError", "build_parser", "check_trace_memory",
           "load_network", "load_object", "load_stimulus", "main", "output_dir", "output_file"]
