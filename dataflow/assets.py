"""Where a catalog may read data from: one policy for every asset URI, at registration
and at every read.

A Tiled catalog keeps, for each piece of data, the URI of the file (or database) holding
it. Tiled's own guard only looks at ``file:`` URIs, yet its ``path_from_uri`` turns
``sqlite:`` and ``duckdb:`` URIs into file paths too, so a client allowed to write could
register ``sqlite:////etc/shadow`` as an HDF5 file and make the server read it. The policy
here is the one rule for all of them:

- a ``file:`` URI is served only when its path — as written and percent-decoded, with
  ``..`` and symlinks resolved — lies inside one of the catalog's data folders (``raw/``,
  ``storage/`` and any folder configured as readable), on this host (``file://localhost/``
  or ``file:///``), without query, fragment or parameters;
- any other scheme is served only when the URI is exactly one of the catalog's own table
  stores (its ``tables.db``, or its PostgreSQL database), which Tiled writes itself; a
  client can never register one;
- everything else is refused, naming the URI and the reason: at registration with HTTP
  403 before Tiled sees the request (``dataflow.server_guards.ConfinedAssets``), and at
  read time — for records already stored, whose URI may have been rewritten in the
  database — with HTTP 403 by the adapters of ``guard_adapters``.

``guard_adapters`` replaces the catalog's table of readers (Tiled's
``adapters_by_mimetype``) with checking subclasses of the same readers; the HDF5 reader
also refuses frames that are not completely on disk (``dataflow.integrity``) and frames
whose checksum does not match (HTTP 422, naming the file and the frame), so a damaged file
is an error, never zeros or changed pixels.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from .errors import CatalogError

_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
_LOCAL_HOSTS = {"", "localhost"}
READ_REFUSED = 403
"""HTTP status of an asset refused by the policy."""
TABLE_MIMETYPES = frozenset({"application/x-tiled-sql-table", "application/x-ragged+sql"})
"""Tiled's readers of its own SQL table stores: the only ones that may read them."""
DAMAGED = 422
"""HTTP status of frames that are missing, cut off or fail their checksum (Tiled answers
422 for stored data it cannot serve as described, too)."""


class AssetUriError(CatalogError, PermissionError):
    """An asset URI the catalog refuses to register or to read."""


class AssetPolicy:
    """Which asset URIs a catalog serves (see the module docstring).

    Parameters
    ----------
    roots
        Folders whose files may be served (resolved once, symlinks included).
    own_storage
        The exact URIs of the catalog's own table stores.
    """

    def __init__(self, roots: Iterable[str | os.PathLike[str]],
                 own_storage: Iterable[str] = ()) -> None:
        self.roots = tuple(dict.fromkeys(Path(os.path.realpath(r)) for r in roots))
        self.own_storage = frozenset(own_storage)

    @classmethod
    def of_adapter(cls, adapter: Any) -> AssetPolicy:
        """The policy of a Tiled catalog adapter: its readable folders and its table
        stores (``adapter.context.readable_storage``, which includes the writable)."""
        from tiled.storage import FileStorage

        roots: list[Path] = []
        own: list[str] = []
        for uri, storage in adapter.context.readable_storage.items():
            if isinstance(storage, FileStorage):
                roots.append(Path(storage.path))
            else:
                own.append(str(uri))
        return cls(roots, own)

    def refusal(self, uri: object, *, table_store: bool = False) -> str | None:
        """Why ``uri`` is refused (``None`` when it may be served). ``table_store``: the
        reader is Tiled's table reader, for which the catalog's own table stores are
        allowed too (never when a client registers data)."""
        if not isinstance(uri, str) or not uri:
            return f"asset URI {uri!r}: not a URI"
        if _CONTROL.search(uri):
            return f"asset URI {uri!r}: control characters or backslashes"
        parts = urlparse(uri)
        scheme = parts.scheme.lower()
        if scheme != "file":
            if table_store and uri in self.own_storage:
                return None
            what = ("only the catalog's own table storage may" if scheme in
                    {"sqlite", "duckdb", "postgresql"} else "no asset may")
            return (f"asset URI {uri}: scheme {parts.scheme or '(none)'!r} refused ({what} "
                    f"use it; data must be file: URIs inside {self._where()})")
        if parts.netloc.lower() not in _LOCAL_HOSTS:
            return (f"asset URI {uri}: names host {parts.netloc!r}; only files on this "
                    "machine (file://localhost/…) are served")
        if parts.params or parts.query or parts.fragment:
            return f"asset URI {uri}: a file URI with ;parameters, ?query or #fragment"
        for text in dict.fromkeys((parts.path, unquote(parts.path))):
            if not text.startswith("/"):
                return f"asset URI {uri}: not an absolute path"
            real = Path(os.path.realpath(text))
            if not any(real == root or root in real.parents for root in self.roots):
                return (f"asset URI {uri}: resolves to {real}, outside {self._where()}")
        return None

    def check(self, uri: object, *, table_store: bool = False) -> None:
        """Raise ``AssetUriError`` with the reason when ``uri`` is refused."""
        reason = self.refusal(uri, table_store=table_store)
        if reason is not None:
            raise AssetUriError(reason)

    def _where(self) -> str:
        return "the catalog's data folders (" + ", ".join(map(str, self.roots)) + ")"

    def __repr__(self) -> str:
        return f"<AssetPolicy roots={list(map(str, self.roots))} own={sorted(self.own_storage)}>"


def data_uris(value: Any) -> Iterator[str]:
    """Every ``data_uri`` value anywhere in a JSON value (a request body), whatever its
    type (a non-string is yielded too, so the policy refuses it)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "data_uri":
                yield item
            else:
                yield from data_uris(item)
    elif isinstance(value, list):
        for item in value:
            yield from data_uris(item)


def _refuse(status: int, detail: str) -> Exception:
    from fastapi import HTTPException

    return HTTPException(status_code=status, detail=detail)


class GuardedAdapters(Mapping[str, Any]):
    """Tiled's table of readers by mimetype, each reader checking its assets against
    ``policy`` before it opens anything (and the HDF5 reader checking frames)."""

    def __init__(self, inner: Mapping[str, Any], policy: AssetPolicy) -> None:
        self.inner = inner
        self.policy = policy
        self._guarded: dict[str, Any] = {}

    def __getitem__(self, mimetype: str) -> Any:
        if mimetype not in self._guarded:
            self._guarded[mimetype] = _guarded_class(self.inner[mimetype], mimetype,
                                                     self.policy)
        return self._guarded[mimetype]

    def __iter__(self) -> Iterator[str]:
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)

    def __contains__(self, mimetype: object) -> bool:
        return mimetype in self.inner


def _guarded_class(cls: Any, mimetype: str, policy: AssetPolicy) -> Any:
    """A subclass of the reader ``cls`` whose ``from_catalog`` checks every asset URI."""
    from .hdf5 import HDF5_MIMETYPE

    base = cls
    table_store = mimetype in TABLE_MIMETYPES
    if mimetype == HDF5_MIMETYPE:
        from .frame_adapter import checked_hdf5_adapter

        base = checked_hdf5_adapter(cls)

    def from_catalog(klass: Any, data_source: Any, node: Any, /, *args: Any,
                     **kwargs: Any) -> Any:
        uris = [asset.data_uri for asset in (data_source.assets or [])]
        uris += [u for u in (kwargs.get("data_uris") or []) if u is not None]
        for uri in uris:
            reason = policy.refusal(uri, table_store=table_store)
            if reason is not None:
                raise _refuse(READ_REFUSED, f"refusing to read {reason}")
        return super(guarded, klass).from_catalog(data_source, node, *args, **kwargs)

    guarded: type[Any] = type(f"Guarded{cls.__name__}", (base,),
                   {"from_catalog": classmethod(from_catalog), "__module__": __name__})
    return guarded


def guard_adapters(adapter: Any, policy: AssetPolicy | None = None) -> Any:
    """Make the Tiled catalog ``adapter`` read only what ``policy`` (default: its own
    folders and table stores) allows; returns ``adapter``."""
    context = adapter.context
    policy = policy or AssetPolicy.of_adapter(adapter)
    inner = context.adapters_by_mimetype
    if isinstance(inner, GuardedAdapters):
        inner = inner.inner
    context.adapters_by_mimetype = GuardedAdapters(inner, policy)
    return adapter


__all__ = ["DAMAGED", "READ_REFUSED", "AssetPolicy", "AssetUriError", "GuardedAdapters",
           "data_uris", "guard_adapters"]
