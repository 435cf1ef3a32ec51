"""``smeflow export`` and ``smeflow import``: tomography scans as NeXus NXtomo files, the
layout ESRF's nabu, tomwer and tomoscan read and nxtomomill writes.

    smeflow export nxtomo 3 scan3.nx                  # a tomography run as NXtomo
    smeflow export nxtomo 3f2a9c1e scan.nx --link     # frames left in the run's files
    smeflow import nxtomo scan.nx --data ./smeflow-data   # an NXtomo scan as a run

``export nxtomo`` writes a run (``tomo_scan``, ``fly_tomo_scan``, an imported scan) as one
NXtomo entry (:mod:`analysis.nxtomo`); ``import nxtomo`` stores an NXtomo file's scan as
a run laid out as a ``tomo_scan``'s, which ``smeflow reduce`` reconstructs
(:mod:`dataflow.nxtomo_import`). A run that is not a tomography run, an unknown run, a
missing catalog, frames that are not local files, an existing output (without
``--overwrite``), or a file that is not a whole NXtomo scan print one line on stderr and
exit 1, before anything is written. Registered through the ``smeflow.commands``
entry-point group.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from dataflow.catalog import Catalog, CatalogError, default_data_dir
from dataflow.cli import run_command
from dataflow.hdf5 import HDF5ReadError
from dataflow.remote import open_catalog

Subparsers = Any  # argparse's _SubParsersAction is private


def cmd_export(args: argparse.Namespace) -> int:
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


def cmd_import(args: argparse.Namespace) -> int:
    """Store the NXtomo scan of ``args.file`` as a run; print its uid and frames."""
    from dataflow.nxtomo_import import check_nxtomo, import_nxtomo

    folder = args.data or default_data_dir()
    check_nxtomo(args.file, args.entry)  # (a bad file creates no catalog)
    with Catalog(folder) as catalog:
        done = import_nxtomo(catalog, args.file, entry=args.entry)
        scan_id = catalog.run(done.uid).metadata["start"].get("scan_id")
    frames = ", ".join(f"{n} {stream}" for stream, n in done.frames.items())
    left = f"; {done.left_out} invalid or alignment frames left out" if done.left_out else ""
    print(done.uid)
    print(f"scan {scan_id} in {folder}: {frames} frames{left}")
    return 0


def _guard(prog: str) -> Callable[[argparse.Namespace], int]:
    """The command's runner: a failure is one line on stderr and exit 1, never a
    traceback unless ``--debug``."""

    def run(args: argparse.Namespace) -> int:
        try:
            status: int = args.nxtomo_func(args)
        except (CatalogError, HDF5ReadError, OSError, ValueError) as exc:
            if args.debug:
                raise
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # never a traceback on the command line
            if args.debug:
                raise
            print(f"{prog}: internal error: {type(exc).__name__}: {exc} (--debug shows "
                  "where)", file=sys.stderr)
            return 1
        return status

    return run


def _format(sub: Subparsers, command: str, help_text: str, prog_help: str) -> Any:
    p = sub.add_parser(command, help=help_text,
                       description=__doc__.split("\n\n")[0] if __doc__ else None)
    formats = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    nx = formats.add_parser("nxtomo", help=prog_help)
    nx.add_argument("--entry", default=None if command == "import" else "entry0000",
                    help="the NXentry (export: its name, default entry0000; import: the "
                    "file's only NXtomo entry unless given)")
    nx.add_argument("--debug", action="store_true", help="on failure, show the traceback")
    return nx


def register_export(sub: Subparsers) -> None:
    """``smeflow export nxtomo RUN FILE.nx``."""
    nx = _format(sub, "export", "write a stored run as a file other tools read (NeXus "
                 "NXtomo)", "a tomography run as one NXtomo entry (nabu, tomwer, tomoscan)")
    nx.add_argument("run", metavar="UID|SCAN_ID", help="uid, uid prefix (>= 5) or scan number")
    nx.add_argument("output", metavar="FILE.nx", help="the file to write")
    nx.add_argument("--data", metavar="DIR",
                    help="catalog folder (default: $SMEFLOW_DATA, else ./smeflow-data)")
    nx.add_argument("--url", metavar="URL",
                    help="read the run from this catalog server (its frame files must be "
                    "on this machine)")
    nx.add_argument("--api-key-file", metavar="FILE",
                    help="the server's API key (default: $SMEFLOW_API_KEY)")
    nx.add_argument("--link", action="store_true",
                    help="leave the frames in the run's files (an HDF5 virtual dataset by "
                    "relative path) instead of copying them")
    nx.add_argument("--overwrite", action="store_true", help="replace FILE.nx if it exists")
    nx.set_defaults(func=_guard("smeflow export"), nxtomo_func=cmd_export)


def register_import(sub: Subparsers) -> None:
    """``smeflow import nxtomo FILE.nx``."""
    nx = _format(sub, "import", "store a scan from a file as a run (NeXus NXtomo)",
                 "an NXtomo scan as a tomography run (smeflow reduce reconstructs it)")
    nx.add_argument("file", metavar="FILE.nx", help="the NXtomo file")
    nx.add_argument("--data", metavar="DIR", help="catalog folder, created if need be "
                    "(default: $SMEFLOW_DATA, else ./smeflow-data)")
    nx.set_defaults(func=_guard("smeflow import"), nxtomo_func=cmd_import)


def export_main(argv: Sequence[str] | None = None) -> int:
    """``smeflow export`` on its own: ``export_main(["nxtomo", "3", "out.nx"])``."""
    return run_command("export", register_export, argv)


def import_main(argv: Sequence[str] | None = None) -> int:
    """``smeflow import`` on its own: ``import_main(["nxtomo", "scan.nx"])``."""
    return run_command("import", register_import, argv)


__all__ = ["cmd_export", "cmd_import", "export_main", "import_main", "register_export",
           "register_import"]
