"""``smeflow catalog``: search and inspect the runs of the embedded catalog.

    smeflow catalog search plan_name=tomo_scan
    smeflow catalog search scan_id=3 --data ./smeflow-data
    smeflow catalog search --since 2026-05-01 --until "2026-05-02 12:00" --text CeO2
    smeflow catalog search motors=sample_x          # a list field holding a value
    smeflow catalog search --in plan_name=scan,count --contains detectors=det
    smeflow catalog show 3          # scan number
    smeflow catalog show 3f2a9c1e   # uid or uid prefix (>= 5 characters)
    smeflow catalog show 3 --plot   # ... and draw its main data into 3f2a9c1e.png

Values are JSON when they parse (``scan_id=3`` is the number 3, ``"3"`` the string).
Keys are start-document keys; ``stop.exit_status=abort`` reaches the stop document.
``KEY=VALUE`` also matches a run whose KEY is a list holding VALUE (``motors=sample_x``);
``--in KEY=V1,V2`` matches KEY equal to one of the values (Tiled's ``In``; a JSON list
works too: ``--in 'scan_id=[3, 4]'``), ``--contains KEY=VALUE`` a list KEY holding VALUE
(Tiled's ``Contains``); both may be repeated. A
search that matches nothing prints a message and exits 0; a malformed uid, an unknown
run or a missing catalog prints one line on stderr and exits 1; a malformed argument
(KEY=VALUE, a date, ``--text`` without any word) one line and exits 2. ``--text`` is
plain words, all of which a run's metadata must contain (any case; punctuation and
full-text query operators only separate words). The catalog folder is ``--data``, else
``$SMEFLOW_DATA``, else ``./smeflow-data``. Registered through the ``smeflow.commands``
entry-point group.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .broker import add_profile_command
from .catalog import (
    CatalogError,
    RunSummary,
    check_frame_files,
    parse_time,
    parse_value,
    run_details,
)
from .cli_support import (
    PROG,
    Subparsers,
    UsageError,
    add_debug,
    guarded,
    open_catalog_folder,
    run_command,
)
from .integrity import HDF5ReadError
from .provenance.cli import register_provenance_commands
from .server_cli import add_server_commands


def parse_criteria(items: Sequence[str]) -> dict[str, Any]:
    """``["plan_name=count", "scan_id=3"]`` → ``{"plan_name": "count", "scan_id": 3}``.

    A key is a Tiled key path: names separated by dots, none empty, no control
    characters (inner spaces are fine: metadata keys such as ``sample name`` have them).
    A value is a JSON number (64-bit integer or finite float), ``true``/``false`` or text;
    ``null``, lists and objects cannot be matched. A key nobody uses is not an error: it
    matches no run.

    Raises
    ------
    UsageError
        Naming the item and what is wrong with it.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UsageError(f"{item!r}: expected KEY=VALUE, e.g. plan_name=count")
        parts = key.split(".")
        if any(not p or p != p.strip() for p in parts) or not key.isprintable():
            raise UsageError(f"{item!r}: key {key!r} is not a key path (names separated "
                             "by single dots, e.g. start.plan_name, without control "
                             "characters)")
        try:
            value = parse_value(text)
        except RecursionError:
            raise UsageError(f"{item!r}: value nested too deeply") from None
        # lone surrogates are what the shell's bytes that are not UTF-8 become
        if isinstance(value, str) and not value.isprintable():
            raise UsageError(f"{item!r}: value {text!r} has control characters or bytes "
                             "that are not UTF-8")
        if value is None or isinstance(value, list | dict):
            raise UsageError(f"{item!r}: only numbers, text and true/false can be "
                             f"matched, not {text!r} (quote it for text: {key}='\"...\"')")
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{item!r}: {text!r} is not a finite number (for the text, "
                             f"write {key}='\"{text}\"')")
        if isinstance(value, int) and not isinstance(value, bool) and \
                not -2**63 <= value < 2**63:
            raise UsageError(f"{item!r}: {text!r} does not fit a 64-bit integer")
        out[key] = value
    return out



INCOMPLETE = ("incomplete (no stop document: still running, or its process was killed; "
              "smeflow catalog repair UID closes it)")


def format_summaries(rows: Sequence[RunSummary]) -> str:
    """The search result table."""
    header = ("scan_id", "uid", "plan_name", "time", "exit_status", "num_points")
    cells = [header] + [
        ("" if r.scan_id is None else str(r.scan_id), r.uid[:8], r.plan_name, r.time_text,
         r.exit_status, "" if r.num_points is None else str(r.num_points)) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_details(details: dict[str, Any]) -> str:
    """What ``show`` prints: identity, exit status, start metadata, streams and keys, and
    the runs derived from this one (reductions, see ``analysis.reduce``)."""
    start, stop = details["start"], details["stop"]
    lines = [f"run {start.get('uid')}  scan_id {start.get('scan_id')}  "
             f"plan {start.get('plan_name', '?')}"]
    summary = RunSummary(None, "", "", float(start.get("time", 0.0)), "", None)
    lines.append(f"started      {summary.time_text}")
    status = stop.get("exit_status", INCOMPLETE)
    reason = stop.get("reason")
    lines.append(f"exit_status  {status}" + (f" ({reason})" if reason else ""))
    recovery = details.get("recovery")
    if isinstance(recovery, dict):
        problems = recovery.get("problems") or []
        lines.append(f"recovered    {recovery.get('time')} from the {recovery.get('source')}"
                     + (f"; {len(problems)} problem(s): " + "; ".join(map(str, problems))
                        if problems else "; everything announced was on disk"))
    lines.append("metadata:")
    for key in sorted(start):
        if key in {"uid", "time"}:
            continue
        lines.append(f"  {key}: {json.dumps(start[key], default=str)}")
    lines.append("streams:")
    if not details["streams"]:
        lines.append("  (none)")
    for name, stream in details["streams"].items():
        n = stream["events"]
        lines.append(f"  {name} ({'?' if n is None else n} events)")
        keys = stream["data_keys"]
        width = max((len(k) for k in keys), default=0)
        for key, info in keys.items():
            rows = info["frames"] if info.get("frames") is not None else n
            shape = tuple([rows if rows is not None else "?", *info["shape"]])
            extra = "  external (HDF5)" if info["external"] else ""
            if info["external"] and not info.get("frames") and not stop:
                extra += ", no frames registered yet"
            lines.append(f"    {key.ljust(width)}  shape {shape}  dtype {info['dtype']}{extra}")
    lines.append("derived runs:")
    derived = details.get("derived") or []
    if not derived:
        lines.append("  (none)")
    for d in derived:
        when = RunSummary(None, "", "", float(d.get("time") or 0.0), "", None).time_text
        mode = {True: "live", False: "offline"}.get(d.get("live"), "?")
        reason = f" ({d['reason']})" if d.get("reason") else ""
        lines.append(f"  {d.get('uid')}  {d.get('reduction')}  {mode}  {when}  "
                     f"{d.get('exit_status')}{reason}")
    return "\n".join(lines)


def _moment(value: str | None, option: str) -> float | None:
    """``--since``/``--until`` as epoch seconds (None when not given)."""
    if value is None:
        return None
    try:
        return parse_time(value, option)
    except CatalogError as exc:
        raise UsageError(str(exc)) from None


def parse_choices(items: Sequence[str]) -> dict[str, list[Any]]:
    """``--in`` items: ``["plan_name=scan,count"]`` → ``{"plan_name": ["scan", "count"]}``
    (each value as in ``parse_criteria``; a JSON list ``scan_id=[3, 4]`` works too)."""
    out: dict[str, list[Any]] = {}
    for item in items:
        key, eq, text = item.partition("=")
        if eq and text.strip().startswith("["):
            try:
                values = json.loads(text)
            except ValueError:
                raise UsageError(f"--in {item!r}: {text!r} is not a JSON list") from None
            texts = [json.dumps(v) for v in values] if isinstance(values, list) else [text]
        else:
            texts = text.split(",") if eq else []
        if eq and not [t for t in texts if t.strip()]:
            raise UsageError(f"--in {item!r}: no values; expected KEY=V1,V2,... e.g. "
                             "plan_name=scan,count")
        for one in texts:
            try:
                ((k, v),) = parse_criteria([f"{key}={one.strip()}"]).items()
            except UsageError as exc:
                raise UsageError(f"--in {exc}") from None
            out.setdefault(k, []).append(v)
    return out


def cmd_search(args: argparse.Namespace) -> int:
    """Print the runs matching the criteria."""
    criteria = parse_criteria(args.criteria)
    try:
        holding = parse_criteria(args.contains)
    except UsageError as exc:
        raise UsageError(f"--contains {exc}") from None
    one_of = parse_choices(args.one_of)
    since, until = _moment(args.since, "--since"), _moment(args.until, "--until")
    if since is not None and until is not None and since > until:
        raise UsageError(f"--since {args.since!r} is after --until {args.until!r}")
    if args.text is not None and not any(c.isalnum() for c in args.text):
        raise UsageError(f"--text {args.text!r}: no words to search for (letters or digits)")
    with open_catalog_folder(args) as catalog:
        rows = catalog.summaries(catalog.search(criteria, since=since, until=until,
                                                text=args.text, one_of=one_of,
                                                holding=holding))
    if not rows:
        asked = [*args.criteria, *(f"--{k} {v!r}" for k in ("since", "until", "text")
                                   if (v := getattr(args, k))),
                 *(f"--in {v}" for v in args.one_of),
                 *(f"--contains {v}" for v in args.contains)]
        print(f"no runs match {' '.join(asked) or '(no criteria)'}")
        return 0
    print(format_summaries(rows))
    print(f"{len(rows)} run{'s' if len(rows) != 1 else ''}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print one run's metadata, streams and data keys; then check that its frame files
    can be read (a missing or damaged one is named on stderr, exit 1). A ``--plot`` file
    that cannot be written is refused before anything is shown."""
    if args.plot:
        _plot_target(args.plot)
    with open_catalog_folder(args) as catalog:
        run = catalog.run(args.run)
        print(format_details(run_details(run, catalog.derived)))
        try:
            check_frame_files(run)
        except HDF5ReadError as exc:
            print(f"{PROG}: error: frame file unreadable: {exc}", file=sys.stderr)
            return 1
        if args.plot is not None:
            from .plot import plot_run

            uid = str(run.metadata["start"].get("uid", "run"))
            target = _plot_target(args.plot or f"{uid[:8]}.png")
            print(f"picture: {plot_run(run, target)}")
    return 0


def _plot_target(path: str) -> Path:
    """``--plot``'s file, checked (``dataflow.plot.plot_target``)."""
    from .plot import plot_target

    try:
        return plot_target(path)[0]
    except ValueError as exc:
        raise UsageError(f"--plot {exc}") from None


def cmd_repair(args: argparse.Namespace) -> int:
    """Close a run whose process was killed (``dataflow.repair.repair_run``)."""
    from .repair import repair_run

    with open_catalog_folder(args) as catalog:
        report = repair_run(catalog, args.run)
    print("\n".join(report.lines()))
    return 0


SEARCH_EXAMPLES = """examples:
  smeflow catalog search plan_name=tomo_scan           # a start-document key
  smeflow catalog search motors=sample_x               # a list field holding a value
  smeflow catalog search --in plan_name=scan,count     # one of several values
  smeflow catalog search --in 'scan_id=[3, 4]'         # ... as a JSON list
  smeflow catalog search --contains detectors=det      # only lists holding the value
  smeflow catalog search stop.exit_status=abort --since 2026-05-01
  smeflow catalog search --text "Ce-O2 batch 7"        # words, punctuation is fine"""


def register_catalog(sub: Subparsers) -> None:
    """``smeflow catalog`` with ``search`` and ``show``."""
    p = sub.add_parser("catalog", help="search and inspect runs in the data catalog",
                       description=__doc__.split("\n\n")[0] if __doc__ else None)
    catalog_sub = p.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)

    data_help = "catalog folder (default: $SMEFLOW_DATA, else ./smeflow-data)"
    s = catalog_sub.add_parser(
        "search", help="list runs matching KEY=VALUE, time and text",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="List runs whose start document matches every KEY=VALUE (values "
        "parsed as JSON when possible; a list field matches when it holds the value), "
        "--in and --contains, started in [--since, --until), mentioning --text.",
        epilog=SEARCH_EXAMPLES)
    s.add_argument("criteria", nargs="*", metavar="KEY=VALUE")
    s.add_argument("--in", dest="one_of", action="append", default=[],
                   metavar="KEY=V1,V2", help="KEY is one of the values (repeatable)")
    s.add_argument("--contains", action="append", default=[], metavar="KEY=VALUE",
                   help="KEY is a list holding VALUE (repeatable)")
    s.add_argument("--since", metavar="DATE", help="started at or after (YYYY-MM-DD[ HH:MM])")
    s.add_argument("--until", metavar="DATE", help="started before (YYYY-MM-DD[ HH:MM])")
    s.add_argument("--text", metavar="WORDS", help="full-text search in the metadata")
    s.add_argument("--data", metavar="DIR", help=data_help)
    add_debug(s)
    s.set_defaults(func=guarded, catalog_func=cmd_search)

    sh = catalog_sub.add_parser("show", help="metadata, streams and data keys of one run")
    sh.add_argument("run", metavar="UID|SCAN_ID", help="uid, uid prefix (>= 5) or scan number")
    sh.add_argument("--data", metavar="DIR", help=data_help)
    sh.add_argument("--plot", nargs="?", const="", metavar="PNG",
                    help="also draw the run's main data (image, sinogram, patterns, "
                    "reconstruction) into the file PNG (default: UID8.png here; PNG "
                    "whatever its name, or the format its suffix names: .svg, .pdf, ...)")
    add_debug(sh)
    sh.set_defaults(func=guarded, catalog_func=cmd_show)
    r = catalog_sub.add_parser(
        "repair", help="close a run whose process was killed (stop: abort, recovered)",
        description="Recover a run without a stop document whose process was killed: "
        "rewrite it from its journal when one was left, check every frame file it "
        "announces on disk, close each one its killed writer left open for write "
        "(HDF5's flags cleared as h5clear -s --increment=0 does, the empty NXmx "
        "end_time removed; refused while any process has it open), and write a stop "
        "document (exit_status abort, reason recovered). A repair killed midway is "
        "finished by the next one; a run it recovered whose files are still open for "
        "write (repaired by an older version) gets them closed. Any other run that has "
        "a stop document is never touched.")
    r.add_argument("run", metavar="UID|SCAN_ID", help="uid, uid prefix (>= 5) or scan number")
    r.add_argument("--data", metavar="DIR", help=data_help)
    add_debug(r)
    r.set_defaults(func=guarded, catalog_func=cmd_repair)
    register_provenance_commands(catalog_sub)
    add_server_commands(catalog_sub)
    add_profile_command(catalog_sub)


def main(argv: Sequence[str] | None = None) -> int:
    """``smeflow catalog`` on its own: ``main(["search", "plan_name=count"])``."""
    return run_command("catalog", register_catalog, argv)


__all__ = ["UsageError", "format_details", "format_summaries", "main", "parse_criteria",
           "register_catalog", "run_command"]
