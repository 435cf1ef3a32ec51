"""``smeflow reduce``: re-reduce a stored run offline into a new derived run.

    smeflow reduce 3f2a9c1e                 # uid, uid prefix (>= 5) or scan number
    smeflow reduce 3 --rows 100 128 --data ./smeflow-data
    smeflow reduce 4 --bins 1000 --unit q_nm^-1
    smeflow reduce 3 --scheduler local --workers 2   # on Dask workers (analysis.distributed)
    smeflow reduce --live --zmq 127.0.0.1:5578   # follow runs through the 0MQ proxy

Tomography runs get a reconstruction (``--rows``: detector rows, default all),
diffraction runs 1D patterns (``--bins``, ``--unit``); the other reduction's options are
refused, naming the run's reduction; see ``analysis.reduce``. Prints
the derived run's uid and a summary; ``smeflow catalog show RAW_UID`` lists it under
"derived runs". A malformed uid, an unknown run, a run with nothing to reduce or a
missing catalog prints one line on stderr and exits 1; a numeric option outside its
domain (:func:`check_arguments`: ``--bins`` 1..``MAX_BINS``, ``--throttle`` finite >= 0,
``--chunk``/``--workers``/``--capacity``/``--batch`` >= 1, ``--rows`` >= 0 and each
once, local ``--workers`` at most 4 per core), one line and exit 2 before any work.
Registered through the ``smeflow.commands`` entry-point group.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from analysis.dask_session import LOCAL, check_local_workers
from analysis.live_consumer import add_live_arguments, check_throttle, cmd_live
from analysis.reduce import (
    DEFAULT_BINS,
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_UNIT,
    MAX_BINS,
    check_bins,
    reduce_run,
)
from dataflow.catalog import CatalogError
from dataflow.cli import run_command
from dataflow.hdf5 import HDF5ReadError
from dataflow.remote import open_catalog
from geometry import RADIAL_UNITS
from sme.cli import given
from sme.loading import CliError

Subparsers = Any  # argparse's _SubParsersAction is private
PROG = "smeflow reduce"


def cmd_reduce(args: argparse.Namespace) -> int:
    """Reduce run ``args.run`` and print the derived run's uid and summary."""
    chunk = given(args.chunk, DEFAULT_CHUNK_FRAMES)  # (check_modes: _guarded)
    from dataflow.provenance import ProvenanceRecorder

    with open_catalog(args.data, args.url, args.api_key_file) as catalog:
        # the derived run's provenance: its output files' digests, its inputs (digests in
        # the start document) and the code version, signed when a key is given
        recorder = ProvenanceRecorder.for_catalog(catalog, signing_key=args.signing_key)
        callbacks = [catalog.derived_writer(), recorder]
        if args.scheduler is not None:
            from analysis.distributed import reduce_run_dask

            summary = reduce_run_dask(catalog, args.run, args.scheduler, args.workers,
                                      rows=args.rows, bins=args.bins, unit=args.unit,
                                      chunk_frames=chunk, device=args.device,
                                      frames_from=args.frames_from, callbacks=callbacks)
        else:
            summary = reduce_run(catalog, args.run, rows=args.rows, bins=args.bins,
                                 unit=args.unit, chunk_frames=chunk, device=args.device,
                                 callbacks=callbacks)
        recorder.wait(recorder.close_timeout)
    print(summary.uid)
    print(summary.text())
    for output in summary.outputs:
        print(f"  output {output['uri']}  sha256 {output['sha256']}")
    return 0 if summary.exit_status == "success" else 1


LOWEST = {"--chunk": ("chunk", 1), "--workers": ("workers", 1),
          "--capacity": ("capacity", 1), "--batch": ("batch", 1)}
"""The integer options of the command with a lower bound only: option -> (attribute,
lowest value). ``--rows`` (each >= 0), ``--bins`` and ``--throttle`` have their own."""


def check_arguments(args: argparse.Namespace) -> None:
    """Every numeric option's domain, before any work: a ``--bins`` outside
    1..``MAX_BINS`` (``--bins 100000000`` got the process killed for want of memory), a
    negative or non-finite ``--throttle`` (-1 and nan were taken as none), a ``--chunk``,
    ``--workers``, ``--capacity`` or ``--batch`` below 1, a negative or repeated
    ``--rows`` ROW (each failed only after the catalog was opened, exit 1), more
    ``--workers`` than :func:`analysis.dask_session.max_local_workers` with ``--scheduler
    local`` (``--workers 100000`` started processes until the machine ran out).
    ``CliError`` (exit 2), one line ``--OPTION: ...``.

    (Not argparse ``type=`` callables: argparse's own error prints the usage block before
    its line, and every ``smeflow`` command answers a bad value in one line.)"""
    try:
        if args.bins is not None:
            check_bins(args.bins, "--bins")
        if args.throttle is not None:
            check_throttle(args.throttle, "--throttle")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    for option, (attribute, lowest) in LOWEST.items():
        value = getattr(args, attribute)
        if value is not None and value < lowest:
            raise CliError(f"{option}: expected an integer >= {lowest}, got {value}")
    if args.scheduler == LOCAL and args.workers is not None:  # (tcp://: not this machine)
        too_many = check_local_workers(args.workers, "--workers")
        if too_many is not None:
            raise CliError(too_many)
    for i, row in enumerate(args.rows or ()):
        if row < 0:
            raise CliError(f"--rows: expected detector rows >= 0, got {row}")
        if row in args.rows[:i]:
            raise CliError(f"--rows: row {row} given twice")


LIVE_ONLY = {"--zmq": "zmq", "--capacity": "capacity", "--batch": "batch",
             "--throttle": "throttle"}
"""The options of the live consumer alone (option -> attribute; None when not given)."""
OFFLINE_ONLY = {"--chunk": "chunk", "--scheduler": "scheduler", "--workers": "workers",
                "--frames-from": "frames_from", "--signing-key": "signing_key"}
"""The options of an offline reduction alone: the live consumer reduces each frame as it
arrives, in its own process, and signs no provenance record."""
SCHEDULER_ONLY = {"--workers": "workers", "--frames-from": "frames_from"}


def check_modes(args: argparse.Namespace) -> None:
    """An option of the other mode is refused, not ignored: ``--zmq``, ``--capacity``,
    ``--batch`` and ``--throttle`` need ``--live`` (they were taken and did nothing
    offline), the options of :data:`OFFLINE_ONLY` are not with ``--live`` (ignored there),
    ``--workers`` and ``--frames-from`` need ``--scheduler``. ``CliError`` (exit 2), one
    line naming the option, before any work."""
    if args.live:
        for option, attribute in OFFLINE_ONLY.items():
            if getattr(args, attribute) is not None:
                raise CliError(f"{option}: not with --live (an offline reduction's option; "
                               "the live consumer reduces each frame as it arrives, in this "
                               "process, and signs no provenance record)")
        return
    for option, attribute in LIVE_ONLY.items():
        if getattr(args, attribute) is not None:
            raise CliError(f"{option}: needs --live (an option of the live consumer; an "
                           "offline reduction would ignore it)")
    if args.scheduler is None:
        for option, attribute in SCHEDULER_ONLY.items():
            if getattr(args, attribute) is not None:
                raise CliError(f"{option}: needs --scheduler local|tcp://HOST:PORT")


def _guarded(args: argparse.Namespace) -> int:
    """Run the command; user-facing failures become one line on stderr (exit 1; exit 2
    for an option out of range, :func:`check_arguments`)."""
    from analysis.cl import OpenCLUnavailable, check_choice

    try:
        check_arguments(args)
        check_modes(args)
        check_choice(args.device)
        if args.live or args.run is None:  # cmd_live names a missing or extra UID
            return cmd_live(args)
        return cmd_reduce(args)
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except (CatalogError, HDF5ReadError, OSError, ValueError, OpenCLUnavailable) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # never a traceback on the command line
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def register_reduce(sub: Subparsers) -> None:
    """``smeflow reduce UID``."""
    p = sub.add_parser("reduce", help="re-reduce a stored run into a new derived run",
                       description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("run", metavar="UID|SCAN_ID", nargs="?",
                   help="uid, uid prefix (>= 5) or scan number (not with --live)")
    p.add_argument("--data", metavar="DIR",
                   help="catalog folder (default: $SMEFLOW_DATA, else ./smeflow-data); with "
                   "--url, the server's data folder (derived files go to its raw/)")
    p.add_argument("--url", metavar="URL",
                   help="write to this catalog server (smeflow catalog serve) over HTTP")
    p.add_argument("--api-key-file", metavar="FILE",
                   help="the server's API key (default: $SMEFLOW_API_KEY)")
    p.add_argument("--rows", type=int, nargs="+", metavar="ROW",
                   help="tomography: detector rows to reconstruct (default: all)")
    p.add_argument("--bins", type=int,
                   help=f"diffraction: number of bins, 1 to {MAX_BINS} (default "
                   f"{DEFAULT_BINS})")
    p.add_argument("--unit",
                   help=f"diffraction: the radial unit, one of {', '.join(RADIAL_UNITS)} "
                   f"(pyFAI's names; default {DEFAULT_UNIT})")
    p.add_argument("--chunk", type=int, metavar="FRAMES",  # (None: not given)
                   help=f"not with --live: frames per chunk (default "
                   f"{DEFAULT_CHUNK_FRAMES})")
    p.add_argument("--device", metavar="CHOICE",
                   help="OpenCL device: gpu, cpu, any or PLATFORM:DEVICE")
    p.add_argument("--scheduler", metavar="local|tcp://HOST:PORT",
                   help="reduce on Dask workers: a local cluster or a running scheduler")
    p.add_argument("--workers", type=int, metavar="N",
                   help="with --scheduler: local workers to start (default 2, at most 4 "
                        "per core), or workers to wait for on a remote scheduler (default 1)")
    p.add_argument("--frames-from", choices=["files", "tiled"],
                   help="with --scheduler: the workers open the raw files (shared file "
                        "system, the default) or fetch the frames from the --url server")
    p.add_argument("--signing-key", metavar="KEY.pem",
                   help="not with --live: sign the derived run's provenance record "
                   "(smeflow catalog keygen)")
    add_live_arguments(p)
    p.set_defaults(func=_guarded)


def main(argv: Sequence[str] | None = None) -> int:
    """``smeflow reduce`` on its own: ``main(["3f2a9c1e", "--data", "DIR"])``."""
    return run_command("reduce", register_reduce, argv)


__all__ = ["LIVE_ONLY", "OFFLINE_ONLY", "check_arguments", "check_modes", "cmd_reduce",
           "main", "register_reduce"]
