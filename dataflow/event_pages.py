"""The catalog writer's document normalizer, with event pages handed on whole.

``TiledWriter`` passes every document through a normalizer (by default
``bluesky_tiled_plugins``' ``RunNormalizer``) that brings older documents to the current
schema: it renames data keys that clash with the table's own columns (``time``,
``seq_num``), turns ``Resource``/``Datum`` references into ``StreamResource``/
``StreamDatum`` documents and splits internal from external data. It does that event by
event: an event page is unpacked, each event deep-copied, rewritten and checked against
the event schema on its own (a ``jsonschema`` validation per event, in Python, holding the
GIL). A fly scan collects hundreds of frames in a page, so that is most of what the
RunEngine's thread does per frame while the detector's threads wait for the GIL.

:class:`PageNormalizer` is that normalizer, except that an event page none of whose
events would be rewritten — every data and timestamp key an internal key of its stream
(declared without ``external``), none named ``time`` or ``seq_num``, nothing marked
``filled``, no ``event`` patch — goes on as one page (checked once against the event-page
schema, its events unpacked by the run writer): the rows written are the ones the
event-by-event path writes. Any other page takes that path.

:class:`PageValidator` takes the same shortcut for everyone who checks an event page
against event-model's schema, bluesky's RunEngine first: it composes each page a flyer's
``collect_pages`` gives with ``validate=True``, whose schema check descends into every
item of every column (the schema's ``items: {}`` accepts any item, yet costs a validator
per item) and then again for ``unevaluatedProperties``: 0.16 ms of CPU a frame of a fly
scan on the RunEngine's thread, with the GIL held. It checks the page's outline first
and, only when that fails, the whole page, so every verdict and error is the schema's
own; :func:`tiled_writer` installs it in ``event_model.schema_validators``. It remembers
the outlines it accepted (keyed by everything the verdict depends on), so the RunEngine's
check and the normalizer's of each later page of a stream are a lookup.

:func:`stream_form` is a whole run's documents as that normalizer hands them to the
catalog: the form the catalog-side checks (provenance, repair) compare files and frames in,
whichever way a run announced them.
"""

from __future__ import annotations

import contextlib
import copy
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from bluesky_tiled_plugins.writing.tiled_writer import RESERVED_DATA_KEYS, RunNormalizer
from event_model import DocumentNames, schema_validators

from .errors import CatalogError

__all__ = ["ANNOUNCING", "TABLE_ARRAY_SIZE", "NodeNameError", "PageNormalizer",
           "PageValidator", "check_node_name", "install_page_validator", "stream_form",
           "tiled_writer"]

ANNOUNCING = frozenset({"resource", "datum", "datum_page"})
"""The documents of the older way to announce frames (``bp.fly`` of a flyer that did not
declare its stream): ``stream_form`` turns them into ``stream_resource``/``stream_datum``."""

TABLE_ARRAY_SIZE = 0
"""``TiledWriter(max_array_size=...)`` for every writer of smeflow's: each internal array
data key (any length) is stored as an array node, none in the stream's table. The default
(16) keeps arrays of up to 16 values in the table, and Tiled's SQL table store on SQLite
has no list type: a stream with such a key failed at its first event ('Unsupported PyArrow
type: list<item: double>'), e.g. ``smeflow reduce RUN --bins 10``."""


def tiled_writer(node: Any, batch_size: int | None = None, *, flushable: bool = False) -> Any:
    """The ``TiledWriter`` every smeflow writer is (the catalog's, the spool's): into
    ``node``, through :class:`PageNormalizer`, with ``max_array_size=TABLE_ARRAY_SIZE``,
    each append of event rows carried out once (``dataflow.tiled_append``);
    ``batch_size`` None keeps ``TiledWriter``'s (batches until the stop document), else
    at least 1; ``flushable``: a ``dataflow.tiled_flush.FlushableTiledWriter``. A new
    writer option goes here, once."""
    from .tiled_append import AppendOnceTiledWriter
    from .tiled_flush import FlushableTiledWriter

    install_page_validator()
    kind = FlushableTiledWriter if flushable else AppendOnceTiledWriter
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size {batch_size}: must be >= 1")
    sized = {} if batch_size is None else {"batch_size": batch_size}
    return kind(node, normalizer=PageNormalizer, max_array_size=TABLE_ARRAY_SIZE, **sized)

Document = tuple[str, dict[str, Any]]


class NodeNameError(CatalogError, ValueError):
    """An event stream or data key whose name cannot be a catalog node's name."""


_NOT_IN_NODE_NAMES = re.compile(r"[/?#%\\\x00-\x1f\x7f]")


def check_node_name(name: object, what: str) -> None:
    """Raise :class:`NodeNameError` when ``name`` cannot name a node of the catalog: Tiled
    puts node names into its URLs unquoted, so ``/`` splits one, ``?`` and ``#`` end the
    path and ``%41`` reads as ``A`` (the run failed at that stream's descriptor with
    "404 No such entry ... 'q'"); backslashes and control characters likewise."""
    if not isinstance(name, str) or not name:
        raise NodeNameError(f"{what} {name!r}: a node name must be a non-empty string")
    found = _NOT_IN_NODE_NAMES.search(name)
    if found is not None:
        raise NodeNameError(
            f"{what} {name!r}: {found.group()!r} cannot be in a catalog node's name (Tiled "
            "puts names into URLs unquoted); use names without '/', '?', '#', '%', "
            "backslashes or control characters")


class PageNormalizer(RunNormalizer):  # type: ignore[misc]  # (untyped library)
    """``RunNormalizer`` that hands an event page on whole when none of its events needs
    rewriting (see the module docstring); ``TiledWriter(normalizer=PageNormalizer)``.
    A descriptor whose stream or data keys cannot be named in the catalog is refused
    (:func:`check_node_name`) before anything of the stream is written."""

    def descriptor(self, doc: dict[str, Any]) -> None:
        """Check the stream's and its data keys' names, then normalize as usual."""
        check_node_name(doc.get("name"), "event stream")
        for key in doc.get("data_keys") or {}:
            check_node_name(key, f"data key of stream {doc.get('name')!r}")
        super().descriptor(doc)

    def event_page(self, doc: dict[str, Any]) -> None:
        """Emit ``doc`` as one page when nothing in it is rewritten, else event by event."""
        if not self._as_is(doc):
            super().event_page(doc)
            return
        # (a deep copy, as the per-event path makes of each event: the run writer keeps
        # rows until it writes a batch, and a producer may fill its arrays again)
        page = {key: _copied(value) if key in ("data", "timestamps") else value
                for key, value in doc.items() if key != "filled"}
        outline, validator = _outline(page), schema_validators[DocumentNames.event_page]
        if not validator.is_valid(_one_of_each_kind(outline)):
            validator.validate(outline)  # (the whole page's check: its own error, item index)
        self.dispatcher.process(DocumentNames.event_page, page)

    def _as_is(self, doc: dict[str, Any]) -> bool:
        """Whether the per-event path would emit the page's events unchanged (but for
        their ``filled``, empty here, which it drops and the run writer does not read)."""
        if self.patches.get("event") or doc.get("filled"):
            return False
        keys = set(doc["data"]) | set(doc["timestamps"])
        return keys <= self._int_keys and not keys & (self._ext_keys | set(RESERVED_DATA_KEYS))


_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), np.generic)


def _copied(value: Any) -> Any:
    """A deep copy of a document's values (module docstring): containers and arrays
    copied, immutable scalars shared, anything else through ``copy.deepcopy``."""
    if isinstance(value, _IMMUTABLE):
        return value
    if isinstance(value, list):
        if all(isinstance(v, _IMMUTABLE) for v in value):
            return list(value)
        return [_copied(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_copied(v) for v in value)
    return copy.deepcopy(value)


def _outline(page: dict[str, Any]) -> dict[str, Any]:
    """``page`` as the event-page schema sees it, each array column of ``data`` and
    ``timestamps`` an empty list (the schema asks only that they are arrays; anything
    else stays, and fails the check as it would, a numpy scalar or 0-d array as
    :class:`_Unsized`)."""
    out = dict(page)
    for key in ("data", "timestamps"):
        columns = page.get(key)
        if isinstance(columns, dict):
            out[key] = {k: [] if _is_array(v) else _Unsized(v) if hasattr(v, "__array__")
                        else v for k, v in columns.items()}
    return out


_ITEM_COLUMNS = ("time", "seq_num", "uid")
"""The page's own columns, whose items the event-page schema checks one by one (their
type only: ``number``, ``integer``, ``string``)."""


def _one_of_each_kind(outline: dict[str, Any]) -> dict[str, Any]:
    """``outline`` with each list of :data:`_ITEM_COLUMNS` cut to its first item of each
    kind the schema's type checks tell apart (the item's class and, for a float, whether
    it is integral: JSON Schema's ``integer`` takes ``2.0``): the schema accepts it
    exactly when it accepts ``outline``, at the cost of a few items instead of three per
    event (256 events: 14 ms of CPU, held GIL, down to 0.4)."""
    out = dict(outline)
    for key in _ITEM_COLUMNS:
        items = outline.get(key)
        if type(items) is list:
            out[key] = list(_kinds(items).values())
    return out


def _kinds(items: list[Any]) -> dict[tuple[type, bool | None], Any]:
    """The first of ``items`` of each kind the schema's type checks tell apart, by kind
    (:func:`_one_of_each_kind`)."""
    kinds: dict[tuple[type, bool | None], Any] = {}
    for item in items:
        kinds.setdefault((type(item), item.is_integer() if isinstance(item, float)
                          else None), item)
    return kinds


_PLAIN = (str, int, float, bool, type(None))
"""The item types whose kind alone (:func:`_kinds`) decides the schema's verdict on them,
and the scalars an outline's other values are keyed by exactly."""


class _NoKey(Exception):
    """A value :func:`_frozen` does not key (the check runs without its memo)."""


def _frozen(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, tuples, plain scalars) as a hashable key that
    tells apart every two values the schema could judge apart (each value with its type:
    ``1``, ``1.0`` and ``True`` differ); raises :class:`_NoKey` for anything else."""
    kind = type(value)
    if kind in _PLAIN:
        return kind, value
    if kind is list or kind is tuple:
        return kind, tuple(_frozen(v) for v in value)
    if kind is dict:
        return kind, tuple((_frozen(k), _frozen(v)) for k, v in value.items())
    raise _NoKey


def _acceptance_key(outline: dict[str, Any]) -> Any:
    """What the schema's verdict on ``outline`` (reduced by :func:`_one_of_each_kind`)
    depends on, as a hashable key: its item columns by the kinds of their items, every
    other value exactly; None when that cannot be keyed (an item or value of another
    type), so that outline is checked every time."""
    parts = []
    for key, value in outline.items():
        if key in _ITEM_COLUMNS and type(value) is list:
            kinds = frozenset(_kinds(value))
            if not all(kind in _PLAIN for kind, _ in kinds):
                return None
            parts.append((key, kinds))
        else:
            try:
                parts.append((key, _frozen(value)))
            except _NoKey:
                return None
    return tuple(parts)


def _is_array(value: Any) -> bool:
    """Whether the event-page schema takes ``value`` for a column: a list, a tuple or an
    array of at least one dimension. (event-model's type check takes anything with
    ``__array__`` for an array, then fails on a numpy scalar or 0-d array with a
    ``TypeError`` from ``len()``: the schema's ``items`` keyword.)"""
    return isinstance(value, list | tuple) or (hasattr(value, "__array__")
                                               and np.ndim(value) >= 1)


class _Unsized:
    """A numpy scalar or 0-d array column in the outline: no array to event-model's type
    check, so the schema refuses it with a ``ValidationError`` naming the column and
    showing the value, as for any other column that is not an array."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


class PageValidator:
    """event-model's event-page validator (``full``, a ``jsonschema`` validator) that
    checks a page's outline first (its data and timestamps columns emptied, one item of
    each kind of its ``time``, ``seq_num`` and ``uid``: what the schema's verdict depends
    on, module docstring) and the whole page only when the outline fails: a page is
    accepted exactly when the schema accepts it, and a refused one gets the schema's
    own error (or event-model's ``TypeError`` for a numpy scalar column). Has the
    methods callers use of a ``jsonschema`` validator (``validate``, ``is_valid``,
    ``iter_errors``); anything else is ``full``'s."""

    MEMO = 256
    """Outlines accepted that are remembered (:meth:`_outline_valid`); more start it over."""

    def __init__(self, full: Any) -> None:
        self.full = full
        self._accepted: set[Any] = set()

    def _outline_valid(self, instance: Any) -> bool:
        """Whether the schema accepts ``instance``'s outline. An accepted outline's key
        (:func:`_acceptance_key`) is remembered, so each later page of a stream with
        the same keys and kinds of items (a fly's every page, checked by the RunEngine
        and again by the catalog's normalizer: 0.55 ms of CPU each) is a lookup."""
        if not isinstance(instance, dict):
            return False
        try:
            outline = _one_of_each_kind(_outline(instance))
        except Exception:  # (an odd column: the whole check gives its own verdict)
            return False
        key = _acceptance_key(outline)
        if key is not None and key in self._accepted:
            return True
        if not self.full.is_valid(outline):
            return False
        if key is not None:
            if len(self._accepted) >= self.MEMO:
                self._accepted.clear()
            self._accepted.add(key)
        return True

    def validate(self, instance: Any) -> None:
        """Raise the schema's error when it refuses ``instance``."""
        if not self._outline_valid(instance):
            self.full.validate(instance)

    def is_valid(self, instance: Any) -> bool:
        """Whether the schema accepts ``instance``."""
        return self._outline_valid(instance) or bool(self.full.is_valid(instance))

    def iter_errors(self, instance: Any) -> Iterator[Any]:
        """The schema's errors of ``instance`` (none when its outline passes)."""
        return iter(()) if self._outline_valid(instance) else self.full.iter_errors(instance)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.full, name)


def install_page_validator() -> None:
    """Make event-model's event-page check (``schema_validators``, which bluesky's
    RunEngine and event-model's composers look up at each page) a
    :class:`PageValidator` (once: the same verdicts, without a check per item)."""
    current = schema_validators[DocumentNames.event_page]
    if not isinstance(current, PageValidator):
        schema_validators[DocumentNames.event_page] = PageValidator(current)


def stream_form(docs: Iterable[Document]) -> list[Document]:
    """A run's documents as the catalog writer's normalizer emits them: ``resource`` and
    ``datum`` become ``stream_resource`` and ``stream_datum`` (each after the event that
    names its datum), external keys leave the events, reserved keys are renamed.

    A run without its stop document (a killed one) is finished as the stop would finish
    it, without a stop in the result: the frames of events whose datum came late are
    announced; an event whose datum never came keeps no frame. Each ``stream_resource``
    names its run (``run_start``), as a ``TiledWriter`` fed these documents needs. Raises what the
    normalizer raises for a malformed document (``jsonschema.ValidationError``, ...).
    """
    out: list[Document] = []
    start: dict[str, Any] | None = None

    def emitted(name: str, doc: dict[str, Any]) -> None:
        if name == "stream_resource" and start is not None:  # (routed by it when written)
            doc.setdefault("run_start", start["uid"])
        out.append((name, doc))

    normalizer = PageNormalizer()
    normalizer.subscribe(emitted)
    stopped = False
    for name, doc in docs:
        start = doc if name == "start" else start
        stopped = stopped or name == "stop"
        normalizer(name, doc)
    if not stopped and start is not None:
        with contextlib.suppress(RuntimeError):  # an event naming a datum that never came
            normalizer("stop", {"uid": f"{start['uid']}-unfinished", "time": time.time(),
                                "run_start": start["uid"], "exit_status": "abort"})
        out = [(name, doc) for name, doc in out if name != "stop"]
    return out
