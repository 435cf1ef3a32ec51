"""Looking up runs in any Tiled client of a runs catalog: the embedded one
(``dataflow.catalog.Catalog``) or one reached over HTTP (``dataflow.remote``), on SQLite or
PostgreSQL.

Run references (uid, uid prefix, scan number) and their errors, searches by metadata,
time and free text, one-line summaries, the details ``smeflow catalog show`` prints, and
the check of a run's frame files before Tiled reads them. The layout names (``RAW``,
``DERIVED``) live here because the lookups need them; ``dataflow.catalog`` builds on this
module and re-exports its names.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from . import run_search
from .errors import CatalogError

RAW = "raw"
DERIVED = "derived"
LAYOUT = (RAW, DERIVED)
"""The containers of runs at the top of a catalog (module docstring)."""
_UID_RE = re.compile(r"^[0-9a-f][0-9a-f-]{4,35}$")
_FULL_UID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


NO_STOP = "incomplete"
"""Exit status shown for a run without a stop document: it is still running, or the
process that acquired it died (killed, crashed) before closing it; its documents and
frames up to that moment are in the catalog (with a batching writer, in its journal
until ``smeflow catalog repair`` recovers them)."""


class MalformedUidError(CatalogError, ValueError):
    """A run reference that is neither a (partial) uid nor a scan number."""


class RunNotFoundError(CatalogError, LookupError):
    """No run matches a uid or scan number."""



def parse_time(value: str | float | datetime, what: str = "time") -> float:
    """A point in time as seconds since the epoch.

    Accepts a number (epoch seconds), a ``datetime`` or an ISO 8601 string
    (``2026-05-01``, ``2026-05-01 14:30``, ``2026-05-01T14:30:00+02:00``); times
    without a zone are local time.

    Raises
    ------
    CatalogError
        Naming ``what`` and the value: not a date, not finite, or out of range.
    """
    moment = value if isinstance(value, datetime) else None
    seconds: float = 0.0
    if isinstance(value, int | float):
        seconds = value
    elif moment is None:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise CatalogError(f"{what} {value!r}: not a date; use YYYY-MM-DD, "
                                   "'YYYY-MM-DD HH:MM[:SS]' or seconds since 1970") from None
    try:  # nan, inf, and dates the platform cannot convert (year 1) are refused too
        seconds = moment.timestamp() if moment is not None else seconds
        if math.isfinite(seconds):
            return float(seconds)
    except (OverflowError, OSError, ValueError):
        pass
    raise CatalogError(f"{what} {value!r}: not a time this machine can convert (a finite "
                       "number of seconds since 1970, or a date)")


@dataclass(frozen=True)
class RunSummary:
    """One line about a run, as ``smeflow catalog search`` prints it."""

    scan_id: int | None
    uid: str
    plan_name: str
    time: float
    exit_status: str
    num_points: int | None

    @property
    def time_text(self) -> str:
        """Local start time, to the second."""
        return datetime.fromtimestamp(self.time).strftime("%Y-%m-%d %H:%M:%S")


def summarize(start: Mapping[str, Any], stop: Mapping[str, Any] | None) -> RunSummary:
    """A ``RunSummary`` from a run's start and (possibly missing) stop documents."""
    stop = stop or {}
    num = start.get("num_points")
    if not isinstance(num, int):
        events = stop.get("num_events") or {}
        num = events.get("primary") if isinstance(events, Mapping) else None
    scan_id = start.get("scan_id")
    return RunSummary(
        scan_id=scan_id if isinstance(scan_id, int) else None, uid=str(start["uid"]),
        plan_name=str(start.get("plan_name", "")), time=float(start.get("time", 0.0)),
        exit_status=str(stop.get("exit_status", NO_STOP)),
        num_points=num if isinstance(num, int) else None)



# -- queries on any Tiled client of a runs catalog (embedded or over HTTP) -----------------


_TEXT_WORD = re.compile(r"[^\W_]+")
"""A word of a free-text search: letters and digits (anything else separates words)."""


def search_runs(client: Any, criteria: Mapping[str, Any] | None = None, *,
                since: str | float | datetime | None = None,
                until: str | float | datetime | None = None,
                text: str | None = None, one_of: Mapping[str, Sequence[Any]] | None = None,
                holding: Mapping[str, Any] | None = None, **key_values: Any) -> Any:
    """Runs of ``client`` matching every condition (see ``Catalog.search``).

    Works on any Tiled client node of a runs catalog: the embedded one or one reached
    over HTTP (``dataflow.remote.RemoteCatalog``), on SQLite or PostgreSQL. ``text`` is
    plain words: a run matches when its metadata has every word (letters and digits,
    any case); quotes, operators and other punctuation only separate words. Text without
    any word raises ``CatalogError``.
    """
    from bluesky_tiled_plugins.queries import TimeRange
    from tiled.queries import FullText

    node = client
    for key, value in {**(criteria or {}), **key_values}.items():
        node = run_search.equal_or_holding(node, key, value)
    for key, values in (one_of or {}).items():
        node = run_search.one_of(node, key, values)
    for key, value in (holding or {}).items():
        node = run_search.holding(node, key, value)
    if since is not None or until is not None:
        t0 = parse_time(since, "since") if since is not None else None
        t1 = parse_time(until, "until") if until is not None else None
        if t0 is not None and t1 is not None and t0 > t1:
            raise CatalogError(f"since {since!r} is after until {until!r}")
        node = node.search(TimeRange(since=t0, until=t1, timezone="UTC"))
    if text:
        # Each word is its own FullText query on its lowercase letters and digits, so no
        # text is ever read as query syntax: SQLite's FTS5 MATCH would take quotes,
        # AND/OR/NOT, '*', '^' and 'col:' as operators, PostgreSQL's to_tsquery '&', '|',
        # '!' and spaces. Both databases fold case and split words at punctuation.
        words = [w.lower() for w in _TEXT_WORD.findall(text)]
        if not words:
            raise CatalogError(f"text {text!r}: no words to search for (letters or digits)")
        for word in dict.fromkeys(words):
            node = node.search(FullText(word))
    return node


def run_summaries(node: Any) -> list[RunSummary]:
    """One ``RunSummary`` per run of a Tiled node, oldest first."""
    out = [summarize(run.metadata.get("start") or {"uid": key}, run.metadata.get("stop"))
           for key, run in node.items()]
    return sorted(out, key=lambda s: s.time)


def highest_scan_id(client: Any) -> int:
    """The highest ``scan_id`` of any run of ``client`` (0 when there is none)."""
    latest = client.sort(("start.scan_id", -1)).values().head(1)
    if not latest:
        return 0
    value = latest[0].metadata.get("start", {}).get("scan_id", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def is_full_uid(text: str) -> bool:
    """A whole uid as bluesky writes it (lower-case hex in groups of 8-4-4-4-12)."""
    return _FULL_UID_RE.match(text) is not None


def is_uid_like(ref: str | int) -> bool:
    """A string that can be (the start of) a uid."""
    return isinstance(ref, str) and _UID_RE.match(ref.strip().lower()) is not None


def find_run(client: Any, ref: str | int, where: str) -> Any:
    """The run of ``client`` with uid, uid prefix or scan number ``ref`` (see ``Catalog.run``).

    A string of decimal digits is a scan number first; when no run has that number and the
    digits can be a uid prefix (five or more), it is looked up as one, since uids are hex
    and their first characters are sometimes all digits. Five or more digits starting
    with 0 are only ever a uid prefix (nobody writes scan 12 as 00012). ``where`` names
    the catalog in error messages (a folder or a server address).
    """
    if isinstance(ref, bool):
        raise MalformedUidError(f"run {ref!r}: expected a uid or a scan number")
    if isinstance(ref, int) and ref >= 10**18:  # (str() of a huge int is itself an error)
        shown = ref if ref.bit_length() <= 64 else "(more than 64 bits)"
        raise MalformedUidError(f"scan number {shown}: too large")
    text = str(ref).strip()
    uid = text.lower()
    if isinstance(ref, str) and text.startswith("0") and len(text) >= 5 \
            and text.isascii() and text.isdigit():
        return run_by_uid_prefix(client, uid, where)
    if isinstance(ref, int) or (text.isascii() and text.isdigit()):
        can_be_uid = isinstance(ref, str) and _UID_RE.match(uid) is not None
        if len(text) > 18 and not can_be_uid:  # more than any scan counter (or SQLite) holds
            raise MalformedUidError(f"scan number {text[:20]}{'...' * (len(text) > 20)}: "
                                    "too large")
        scan_id = int(text)
        if scan_id < 1 and not can_be_uid:
            raise MalformedUidError(f"scan number {scan_id}: must be >= 1")
        if 1 <= scan_id < 10**18:
            from tiled.queries import Key

            by_number = client.search(Key("scan_id") == scan_id).values()
            if len(by_number):
                return by_number.last()  # scan numbers may repeat if a counter was reset
        if not can_be_uid:
            raise RunNotFoundError(f"no run with scan number {scan_id} in {where}")
        try:
            return run_by_uid_prefix(client, uid, where)
        except RunNotFoundError:
            raise RunNotFoundError(f"no run with scan number {text} nor a uid starting "
                                   f"with {uid!r} in {where}") from None
    if not _UID_RE.match(uid):
        raise MalformedUidError(
            f"run {text!r}: not a uid (hex digits and dashes, at least 5 characters, "
            "e.g. 3f2a9c1e) nor a scan number")
    if _FULL_UID_RE.match(uid):
        try:
            return client[uid]
        except KeyError:
            raise RunNotFoundError(f"no run with uid {uid} in {where}") from None
    return run_by_uid_prefix(client, uid, where)


def run_by_uid_prefix(client: Any, prefix: str, where: str) -> Any:
    """The one run of ``client`` whose uid starts with ``prefix`` (lowercase hex).

    Raises
    ------
    RunNotFoundError, CatalogError
        No run, or several runs, with that prefix in ``where``.
    """
    from tiled.queries import Like

    found = client.search(Like("start.uid", f"{prefix}%")).values().head(2)
    if not found:
        raise RunNotFoundError(f"no run whose uid starts with {prefix!r} in {where}")
    if len(found) > 1:
        raise CatalogError(f"uid prefix {prefix!r} matches several runs; give more characters")
    return found[0]


def derived_beside(run: Any) -> Any:
    """The container of derived runs of the catalog ``run`` is in (the run's own container
    in a catalog without the layout); ``None`` for a run without a parent."""
    from tiled.client.container import Container

    container = getattr(run, "parent", None)
    if container is None or container.item["id"] != RAW \
            or container.item["attributes"]["ancestors"]:  # not the top's raw container
        return container
    top = container.parent
    if isinstance(top, Container) and DERIVED in set(top):
        return Container.__getitem__(top, DERIVED)
    return container


def run_details(run: Any, derived_runs: Any = None) -> dict[str, Any]:
    """What ``smeflow catalog show`` prints: start/stop metadata and every stream's keys.

    Returns ``{"start": ..., "stop": ..., "streams": {name: {"events": n,
    "data_keys": {key: {"shape": [...], "dtype": ..., "external": bool}}}},
    "derived": [{"uid", "reduction", "live", "time", "exit_status", "reason"}, ...]}``,
    the derived runs being the reductions of this run (start ``raw_uid`` == its uid) in
    ``derived_runs`` (a container; default: the ``derived`` container beside the run's,
    or the run's own in a catalog without the layout), oldest first.
    """
    from tiled.queries import Key

    md = run.metadata
    stop = md.get("stop") or {}
    num_events = stop.get("num_events") or {}
    streams: dict[str, Any] = {}
    for name in run:
        node = run[name]
        stream_md = node.metadata or {}
        keys = {}
        for key, desc in (stream_md.get("data_keys") or {}).items():
            keys[key] = {"shape": list(desc.get("shape") or []),
                         "dtype": desc.get("dtype_numpy") or desc.get("dtype", "?"),
                         "external": "external" in desc}
            if "external" in desc:  # frames the catalog knows (none yet: not registered)
                keys[key]["frames"] = stream_length(node, key)
        events = num_events.get(name)
        if events is None and not stop:  # an incomplete run: what was written so far
            events = stream_length(node, "seq_num")
        streams[name] = {"events": events, "data_keys": keys}
    derived: list[dict[str, Any]] = []
    uid = (md.get("start") or {}).get("uid")
    root = derived_runs if derived_runs is not None else derived_beside(run)
    if uid and root is not None:
        for child in root.search(Key("raw_uid") == uid).values():
            d_start = child.metadata.get("start") or {}
            d_stop = child.metadata.get("stop") or {}
            derived.append({"uid": d_start.get("uid"), "reduction": d_start.get("reduction"),
                            "live": d_start.get("live"), "time": d_start.get("time", 0.0),
                            "exit_status": d_stop.get("exit_status", "(running)"),
                            "reason": d_stop.get("reason", "")})
    derived.sort(key=lambda d: float(d["time"] or 0.0))
    return {"start": dict(md.get("start") or {}), "stop": dict(stop), "streams": streams,
            "derived": derived, "recovery": md.get("recovery")}


def stream_length(node: Any, key: str) -> int:
    """Rows of ``node[key]`` (0 when the key was never written, as in a killed run)."""
    try:
        return int(node[key].shape[0]) if key in node else 0
    except Exception:  # a table Tiled cannot size yet
        return 0


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (``3``, ``true``, ``"x"``), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def check_frame_files(run: Any) -> list[Path]:
    """The external HDF5 frame files of ``run``, each opened and checked (``FrameReader``).

    Call it before reading a run's frames through Tiled: Tiled opens them in SWMR mode,
    where a truncated file hangs instead of failing, and a missing or corrupt one raises
    h5py's error without saying which run file it was.

    Raises
    ------
    HDF5ReadError
        Naming the first file that is missing, truncated or corrupt (and the run's key).
    """
    from .hdf5 import HDF5ReadError, open_frames

    files: list[Path] = []
    for name in run:
        stream = run[name]
        for key, desc in ((stream.metadata or {}).get("data_keys") or {}).items():
            if "external" not in desc or key not in stream:  # none registered (killed run)
                continue
            for source in stream[key].data_sources() or []:
                dataset = (source.parameters or {}).get("dataset", "/entry/data/data")
                for asset in source.assets:
                    path = Path(urlparse(asset.data_uri).path)
                    try:
                        open_frames(path, dataset).close()
                    except HDF5ReadError as exc:
                        raise HDF5ReadError(f"{exc} (data key {name}/{key})") from None
                    files.append(path)
    return files


__all__ = [
    "DERIVED",
    "LAYOUT",
    "NO_STOP",
    "RAW",
    "MalformedUidError",
    "RunNotFoundError",
    "RunSummary",
    "check_frame_files",
    "derived_beside",
    "find_run",
    "highest_scan_id",
    "is_full_uid",
    "is_uid_like",
    "parse_time",
    "parse_value",
    "run_by_uid_prefix",
    "run_details",
    "run_summaries",
    "search_runs",
    "stream_length",
    "summarize",
]
