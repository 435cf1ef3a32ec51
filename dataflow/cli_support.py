"""What every ``smeflow catalog`` sub-command shares: the error type for bad arguments,
opening the catalog folder, and the guard that turns failures into one line.

Its own module so that the command modules (``dataflow.cli``, ``dataflow.server_cli``,
``dataflow.provenance.cli``) import it and none of them imports another.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .catalog import Catalog, default_data_dir
from .errors import CatalogError, refusal
from .integrity import HDF5ReadError

PROG = "smeflow catalog"
Subparsers = Any  # argparse's _SubParsersAction is private


class UsageError(CatalogError):
    """A malformed command-line argument (exit status 2)."""


def open_catalog_folder(args: argparse.Namespace) -> Catalog:
    """The catalog of ``--data`` (else ``$SMEFLOW_DATA``, else ``./smeflow-data``); a
    folder without a catalog is an error, never created (a damaged ``catalog.db`` is
    named by ``Catalog``)."""
    folder = Path(args.data) if args.data else default_data_dir()
    if not os.path.lexists(folder / "catalog.db"):
        raise CatalogError(f"no catalog in {folder.resolve()} (give --data DIR or set "
                           "SMEFLOW_DATA; a catalog is created by the first run written)")
    return Catalog(folder)


def guarded(args: argparse.Namespace) -> int:
    """Run the sub-command (``args.catalog_func``); a failure is one line on stderr and a
    non-zero status (2 for bad arguments), never a traceback unless ``--debug``."""
    try:
        status: int = args.catalog_func(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except (CatalogError, HDF5ReadError, OSError, ValueError) as exc:
        if getattr(args, "debug", False):
            raise
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback on the command line
        if getattr(args, "debug", False):
            raise
        if (refused := refusal(exc)) is not None:
            print(f"{PROG}: error: {refused}", file=sys.stderr)
            return 1
        first = (str(exc).strip().splitlines() or [""])[0]  # (SQLAlchemy adds its SQL)
        print(f"{PROG}: internal error: {type(exc).__name__}: {first} (--debug shows where)",
              file=sys.stderr)
        return 1
    return status


def add_debug(parser: argparse.ArgumentParser) -> None:
    """``--debug``: show the traceback of a failure instead of one line."""
    parser.add_argument("--debug", action="store_true",
                        help="on failure, show the Python traceback")


def run_command(name: str, register: Any, argv: Sequence[str] | None = None) -> int:
    """Run one ``smeflow`` command on its own (``register`` adds it to the subparsers):
    what each command module's ``main`` is, for tests and ``python -m``."""
    parser = argparse.ArgumentParser(prog="smeflow")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([name, *(sys.argv[1:] if argv is None else argv)])
    status: int = args.func(args)
    return status


__all__ = ["PROG", "UsageError", "add_debug", "guarded", "open_catalog_folder",
           "run_command"]
