"""Metadata conditions of a run search that Tiled has no single query for.

A start document's field is a value (``plan_name: "scan"``) or a list of values
(``motors: ["sample_x", "sample_y"]``). A user asking for ``motors=sample_x`` means "the
scan moved sample_x", so :func:`equal_or_holding` matches a run whose field equals the
value *or* is a list holding it. Tiled queries only narrow (there is no OR): the runs
matching ``Key(key) == value`` and those holding it (:func:`holding`) are found
separately and the node is narrowed to their uids with ``In("uid", …)``.

:func:`holding` is exact, as ``Key ==`` is: a list field with an element equal to the
value (same JSON type). Tiled's ``Contains`` alone is not: on SQLite it is ``LIKE
'%value%'`` on the field's JSON text — any substring, any case, ``%`` and ``_`` as
wildcards (``plan_name=scan`` found ``rel_scan``, ``motors=sample`` ``["sample_x"]``) —
and on PostgreSQL a scalar field "contains" itself. Its runs are the candidates; each
one's field is then checked on the metadata the same listing brings. ``Key ==`` is
checked so too for ``true``/``false``, ``0`` and ``1``, which SQLite's JSON takes for
each other.

:func:`one_of` is Tiled's ``In`` (the field is one of the values), for ``smeflow catalog
search --in``; :func:`holding` serves ``--contains``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["equal_or_holding", "holding", "one_of"]

_MISSING = object()


def equal_or_holding(node: Any, key: str, value: Any) -> Any:
    """``node`` narrowed to the runs whose ``key`` equals ``value`` or is a list holding
    it (see the module docstring)."""
    from tiled.queries import Key

    equal = node.search(Key(key) == value)
    if isinstance(value, dict | list) or value is None:
        return equal
    found = set(equal.keys())
    if isinstance(value, bool) or value in (0, 1):  # (SQLite's JSON: true == 1)
        exact = {uid for uid, run in equal.items() if _same(_field(run.metadata, key), value)}
    else:
        exact = found
    held = set(_holding_uids(node, key, value))
    if exact == found and held <= found:
        return equal
    return _uids(node, sorted(exact | held))


def _uids(node: Any, uids: list[str]) -> Any:
    """``node`` narrowed to the runs ``uids`` (an empty node of the same kind for none)."""
    from tiled.queries import In, Key

    return node.search(In("uid", uids) if uids else Key("uid") == "")


def _field(metadata: Any, key: str) -> Any:
    """A run's field ``key`` (of its start document unless it begins with ``start.`` or
    ``stop.``, as the runs catalog's queries read it), or ``_MISSING``."""
    doc, *path = key.split(".") if key.startswith(("start.", "stop.")) else \
        ["start", *key.split(".")]
    field: Any = metadata.get(doc) or {}
    for part in path:
        field = field.get(part, _MISSING) if isinstance(field, dict) else _MISSING
    return field


def _holding_uids(node: Any, key: str, value: Any) -> list[str]:
    """The uids of the runs whose ``key`` is a list with an element equal to ``value``."""
    from tiled.queries import Contains

    out = []
    for uid, run in node.search(Contains(key, _like_text(value))).items():
        field = _field(run.metadata, key)
        if isinstance(field, list) and any(_same(x, value) for x in field):
            out.append(uid)
    return out


def _like_text(value: Any) -> str:
    """Text that the JSON text of every list holding ``value`` contains (Tiled's
    ``Contains`` is ``LIKE`` on a field's text on SQLite and PostgreSQL alike; given a
    number it casts the field, which a list fails: HTTP 500 on PostgreSQL). A string's
    longest piece free of what JSON text may escape (quotes, backslashes, control and
    non-ASCII characters) or LIKE takes for its escape (the backslash); ``%`` and ``_``
    left in only widen the match."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else json.dumps(value)
    pieces = _JSON_ESCAPED.split(str(value))
    return max(pieces, key=len)


_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f\x7f-\U0010ffff]')


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``True`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def one_of(node: Any, key: str, values: Sequence[Any]) -> Any:
    """``node`` narrowed to the runs whose ``key`` is one of ``values`` (Tiled's ``In``)."""
    from tiled.queries import In

    if not values:
        raise ValueError(f"{key}: no values to choose from")
    return node.search(In(key, list(values)))


def holding(node: Any, key: str, value: Any) -> Any:
    """``node`` narrowed to the runs whose ``key`` is a list holding ``value`` (an
    element equal to it; see the module docstring)."""
    return _uids(node, _holding_uids(node, key, value))
