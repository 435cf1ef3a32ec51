"""Metadata conditions of a run search that Tiled has no single query for.

A start document's field is a value (``plan_name: "scan"``) or a list of values
(``motors: ["sample_x", "sample_y"]``). A user asking for ``motors=sample_x`` means "the
scan moved sample_x", so :func:`equal_or_holding` matches a run whose field equals the
value *or* is a list holding it. Tiled queries only narrow (there is no OR): the runs
matching ``Key(key) == value`` and those matching ``Contains(key, value)`` are found
separately and the node is narrowed to their uids with ``In("uid", …)``. (SQLite's
``Contains`` also matches a field equal to the value; PostgreSQL's does not, hence both.)

:func:`one_of` is Tiled's ``In`` (the field is one of the values) and :func:`holding`
its ``Contains`` (the field is a list holding the value), for ``smeflow catalog search
--in`` and ``--contains``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["equal_or_holding", "holding", "one_of"]


def equal_or_holding(node: Any, key: str, value: Any) -> Any:
    """``node`` narrowed to the runs whose ``key`` equals ``value`` or is a list holding
    it (see the module docstring)."""
    from tiled.queries import Contains, In, Key

    equal = node.search(Key(key) == value)
    if isinstance(value, dict | list) or value is None:
        return equal
    uids = sorted(set(equal.keys()) | set(node.search(Contains(key, value)).keys()))
    if not uids:
        return equal  # no run: an empty node of the same kind
    return node.search(In("uid", uids))


def one_of(node: Any, key: str, values: Sequence[Any]) -> Any:
    """``node`` narrowed to the runs whose ``key`` is one of ``values`` (Tiled's ``In``)."""
    from tiled.queries import In

    if not values:
        raise ValueError(f"{key}: no values to choose from")
    return node.search(In(key, list(values)))


def holding(node: Any, key: str, value: Any) -> Any:
    """``node`` narrowed to the runs whose ``key`` is a list holding ``value`` (Tiled's
    ``Contains``)."""
    from tiled.queries import Contains

    return node.search(Contains(key, value))
