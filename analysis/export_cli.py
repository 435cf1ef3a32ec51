"""``smeflow export``: a stored run in a file layout other tools read.

    smeflow export nxtomo 3 scan3.nx                  # a tomography run as NeXus NXtomo
    smeflow export nxtomo 3f2a9c1e scan.nx --link     # frames left in the run's files
    smeflow export nxtomo 3 scan3.nx --data ./smeflow-data --overwrite

``nxtomo`` writes a tomography run (``tomo_scan``, ``fly_tomo_scan``) as one NXtomo
entry, what ESRF's nabu, tomwer and tomoscan read (:mod:`analysis.nxtomo`). A run that is
not a tomography run, an unknown run, a missing catalog, frames that are not local files
or an existing output (without ``--overwrite``) print one line on stderr and exit 1,
before anything is written. Registered through the ``smeflow.commands`` entry-point
group.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from dataflow.catalog import CatalogError
from dataflow.cli import run_command
from dataflow.hdf5 import HDF5ReadError
from dataflow.remote import open_catalog

Subparsers = Any  # argparse's _SubParsersAction is private
PROG = "smeflow export"


def cmd_nxtomo(args: argparse.Namespace) -> int:
    """Export run ``args.run`` as the NXtomo file ``args.output``; print what was written."""
    from analysis.nxtomo import export_nxtomo

    with open_catalog(args.data, args.url, args.api_key_file) as catalog:
        run = catalog.run(args.run)
        done = export_nxtomo(run, args.output, entry=args.entry, link=args.link,
                             overwrite=args.overwrite)
    frames = ", ".join(f"{n} {kind}" for kind, n in done.frames.items())
    how = "linked to the run's files" if done.linked else "copied"
    print(f"{done.path}  {done.entry}: {frames} frames ({how})")
    return 0


def _guarded(args: argparse.Namespace) -> int:
    """Run the sub-command; a failure is one line on stderr and exit 1, never a traceback
    unless ``--debug``."""
    try:
        status: int = args.export_func(args)
    except (CatalogError, HDF5ReadError, OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # never a traceback on the command line
        if args.debug:
            raise
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc} (--debug shows where)",
              file=sys.stderr)
        return 1
    return status


def register_export(sub: Subparsers) -> None:
    """``smeflow export FORMAT ...``."""
    p = sub.add_parser("export", help="write a stored run in a layout other tools read "
                       "(NeXus NXtomo)", description=__doc__.split("\n\n")[0] if __doc__ else None)
    formats = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    nx = formats.add_parser("nxtomo", help="a tomography run as one NeXus NXtomo entry "
                            "(nabu, tomwer, tomoscan)")
    nx.add_argument("run", metavar="UID|SCAN_ID", help="uid, uid prefix (>= 5) or scan number")
    nx.add_argument("output", metavar="FILE.nx", help="the file to write")
    nx.add_argument("--data", metavar="DIR",
                    help="catalog folder (default: $SMEFLOW_DATA, else ./smeflow-data)")
    nx.add_argument("--url", metavar="URL",
                    help="read the run from this catalog server (its frame files must be "
                    "on this machine)")
    nx.add_argument("--api-key-file", metavar="FILE",
                    help="the server's API key (default: $SMEFLOW_API_KEY)")
    nx.add_argument("--entry", default="entry0000", help="the NXentry's name (default "
                    "entry0000)")
    nx.add_argument("--link", action="store_true",
                    help="leave the frames in the run's files (an HDF5 virtual dataset by "
                    "relative path) instead of copying them")
    nx.add_argument("--overwrite", action="store_true", help="replace FILE.nx if it exists")
    nx.add_argument("--debug", action="store_true", help="on failure, show the traceback")
    nx.set_defaults(func=_guarded, export_func=cmd_nxtomo)


def main(argv: Sequence[str] | None = None) -> int:
    """``smeflow export`` on its own: ``main(["nxtomo", "3", "out.nx", "--data", "DIR"])``."""
    return run_command("export", register_export, argv)


__all__ = ["cmd_nxtomo", "main", "register_export"]
