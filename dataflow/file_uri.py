"""Local paths as the URIs a Tiled catalog keeps (``file://localhost/…``,
``sqlite:///…``), and the paths such a URI cannot carry.

Tiled (0.2) keeps a path in its URIs as it is, without percent-escapes: its
``ensure_uri`` writes ``file://localhost<path>`` for a folder and its ``path_from_uri``
reads the URI's path part back as it stands, not decoded. A quoted URI
(``Path.as_uri()``: ``a%23b`` for ``a#b``) would thus be opened as another path, and an
unquoted one is cut short wherever URL parsing sees a delimiter. The characters a path
may hold but such a URI cannot:

- ``#`` starts a fragment and ``?`` a query: the rest of the path is lost (a catalog
  in ``a#b`` put its tables in a file ``a`` next to the folder, and its runs failed at
  the stop);
- ``%`` followed by two hex digits reads as an escape to anyone who decodes (SQLAlchemy
  does for ``sqlite:///`` paths, and the catalog's asset policy checks the decoded path
  too: ``a%41b`` becomes ``aAb``, and every read of its arrays was refused);
- ``;`` in a URI's last segment starts its parameters (``x;y.h5`` reads as ``x``);
- control characters and backslashes, which the asset policy refuses in any URI
  (``dataflow.assets``).

Such a path is refused with :class:`UriPathError` (``FrameWriter``: its own
``UnsafePathError``) naming the character, before
anything is written (``Catalog(folder)``, the catalog server's data folder,
``FrameWriter``); spaces, other punctuation and any Unicode letter are kept as they are.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import CatalogError

__all__ = ["UriPathError", "check_uri_path", "file_uri", "uri_path_problem"]

_ANYWHERE = re.compile(r"[#?\x00-\x1f\x7f\\]|%[0-9A-Fa-f]{2}")


class UriPathError(CatalogError, ValueError):
    """A path that a catalog's URIs cannot carry (see the module docstring)."""


def uri_path_problem(path: str | os.PathLike[str], *, last: bool = True) -> str | None:
    """Why ``path`` cannot be carried by a catalog URI, naming the character, or None.
    ``last``: the path is a URI's last segment (a file, or a folder URI of its own),
    where ``;`` is refused too; a folder whose URIs always go on below it takes ``;``."""
    text = os.fspath(path)
    found = _ANYWHERE.search(text)
    if found is None and last and ";" in Path(text).name:
        return f"';' in its name {Path(text).name!r} (a URI's ;parameters)"
    if found is None:
        return None
    char = found.group()
    why = {"#": "a URI fragment", "?": "a URI query"}.get(char)
    if why is None:
        why = ("read as a percent-escape" if char.startswith("%")
               else "a control character or backslash")
    return f"{char!r} at character {found.start()} ({why})"


def check_uri_path(path: str | os.PathLike[str], what: str, *, last: bool = True,
                   error: type[Exception] = UriPathError) -> None:
    """Raise ``error`` naming ``what`` (e.g. ``"catalog folder"``), the path and the
    character when a catalog URI cannot carry ``path``."""
    problem = uri_path_problem(path, last=last)
    if problem is not None:
        raise error(
            f"{what} {os.fspath(path)!r}: {problem}; a Tiled catalog keeps paths unescaped "
            "in its URIs and cannot store this one; choose a name without it")


def file_uri(path: str | os.PathLike[str], error: type[Exception] = UriPathError) -> str:
    """``file://localhost<path>`` of an absolute ``path`` as Tiled reads it back (checked:
    :func:`check_uri_path`)."""
    check_uri_path(path, "file", error=error)
    return f"file://localhost{os.fspath(path)}"
