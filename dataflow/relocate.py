"""Relocatable catalog folders: moved or copied, a catalog keeps working.

Tiled keeps every asset — frame files in ``raw/``, arrays it wrote in ``storage/``, the
event tables in ``tables.db`` — as an absolute URI in the catalog database, so a folder
that was moved (or copied, and the original deleted) served nothing; worse, a copy kept
reading the *original's* files and tables while they existed. The catalog folder
therefore records the root its URIs are relative to (``ROOT_FILE``), and whoever opens
it (``Catalog``, ``smeflow catalog serve``) rebases them first when the folder is no
longer there: every asset URI under the recorded root — ``file://localhost/ROOT/…`` and
``sqlite://localhost//ROOT/…`` — is rewritten onto the current root, in one transaction,
under the folder lock, and the new root is recorded with the previous ones (provenance
records keep the paths the instrument wrote; ``verify`` maps them through
``previous_roots``). URIs outside the old root are never touched.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

from sme.atomic_file import write_text_atomic

from .errors import CatalogError

ROOT_FILE = "catalog-root.json"
"""``{"root": "/abs/path", "previous": ["/older/path", ...]}`` inside the catalog folder."""


class DamagedRootFileError(CatalogError):
    """``catalog-root.json`` is there but cannot be read as the roots it records."""


def read_roots(folder: Path) -> tuple[Path | None, list[Path]]:
    """The root recorded in ``folder`` (``None`` when no file records one) and the roots
    before it.

    Raises
    ------
    DamagedRootFileError
        The file is there but damaged (cut short, not JSON, not the roots): rebuilding it
        would forget where the catalog was before, which ``verify`` needs to find the
        files its provenance records name. One line naming the file and what is wrong;
        the file is left as it is.
    """
    path = folder / ROOT_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, []
    except OSError as exc:
        raise _damaged(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _damaged(path, "is not UTF-8 text") from None
    except ValueError as exc:
        what = "is empty (0 bytes)" if not raw.strip() else f"is not JSON ({exc})"
        raise _damaged(path, what) from None
    if not isinstance(data, dict):
        raise _damaged(path, f"holds a JSON {type(data).__name__}, not an object")
    root, previous = data.get("root"), data.get("previous")
    if not isinstance(root, str) or not Path(root).is_absolute():
        raise _damaged(path, f"'root' is {root!r}, not an absolute path")
    if not isinstance(previous, list) or not all(
            isinstance(p, str) and Path(p).is_absolute() for p in previous):
        raise _damaged(path, f"'previous' is {previous!r}, not a list of absolute paths")
    return Path(root), [Path(p) for p in previous]


def _damaged(path: Path, what: str) -> DamagedRootFileError:
    return DamagedRootFileError(
        f"{path}: {what}; it records where this catalog folder was before ('catalog verify' "
        "finds moved files through it), so it is not rebuilt: restore it from a copy, or "
        "remove it to record only the present place; left as it is")


def previous_roots(folder: str | os.PathLike[str]) -> list[Path]:
    """Where the catalog in ``folder`` lived before (most recent first)."""
    return read_roots(Path(folder))[1]


def _write_roots(folder: Path, root: Path, previous: list[Path]) -> None:
    write_text_atomic(folder / ROOT_FILE, json.dumps(
        {"root": str(root), "previous": [str(p) for p in previous]}, indent=1) + "\n",
        fsync=True)


def _prefixes(old: Path, new: Path) -> list[tuple[str, str]]:
    return [(f"file://localhost{old}/", f"file://localhost{new}/"),
            (f"file://{old}/", f"file://{new}/"),
            (f"sqlite://localhost/{old}/", f"sqlite://localhost/{new}/"),
            (f"sqlite:///{old}/", f"sqlite:///{new}/")]


def rebase_assets(database: str, old: Path, new: Path) -> int:
    """Rewrite the asset URIs under ``old`` onto ``new`` in the catalog ``database``
    (any Tiled catalog URI: SQLite or PostgreSQL), in one transaction; returns how many
    were rewritten."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from tiled.utils import ensure_specified_sql_driver

    async def rebase() -> int:
        engine = create_async_engine(ensure_specified_sql_driver(database))
        changed = 0
        try:
            async with engine.begin() as conn:
                for before, after in _prefixes(old, new):
                    result = await conn.execute(
                        text("UPDATE assets SET data_uri = :after || substr(data_uri, :n) "
                             "WHERE substr(data_uri, 1, :m) = :before"),
                        {"after": after, "before": before, "n": len(before) + 1,
                         "m": len(before)})
                    changed += int(result.rowcount or 0)
        finally:
            await engine.dispose()
        return changed

    out: list[Any] = []

    def work() -> None:  # its own thread: a running event loop in the caller is fine
        try:
            out.append(asyncio.run(rebase()))
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=work, name="smeflow-catalog-rebase")
    thread.start()
    thread.join()
    if isinstance(out[0], BaseException):
        raise out[0]
    return int(out[0])


def settle_root(folder: Path, database: str) -> int:
    """Make the catalog in ``folder`` (database ``database``) work where it is now.

    Call with the folder locked, after the database exists. A catalog without a recorded
    root (a new one, or one written before roots were recorded) records its current one
    — taken from its own table store's URI when that names another place. Returns the
    number of asset URIs rebased."""
    here = folder.resolve()
    root, previous = read_roots(folder)
    if root is None:
        root = _root_of_tables(database, here)
    if root == here:
        if not (folder / ROOT_FILE).exists():
            _write_roots(folder, here, previous)
        return 0
    changed = rebase_assets(database, root, here)
    _write_roots(folder, here, [root, *[p for p in previous if p not in (root, here)]])
    return changed


def _root_of_tables(database: str, here: Path) -> Path:
    """The folder of the ``tables.db`` the catalog's assets name (its root when it was
    written), or ``here``."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from tiled.utils import ensure_specified_sql_driver

    async def find() -> str | None:
        engine = create_async_engine(ensure_specified_sql_driver(database))
        try:
            async with engine.connect() as conn:
                row = (await conn.execute(text(
                    "SELECT data_uri FROM assets WHERE data_uri LIKE 'sqlite:%/tables.db' "
                    "LIMIT 1"))).first()
        finally:
            await engine.dispose()
        return None if row is None else str(row[0])

    found: list[Any] = []
    thread = threading.Thread(target=lambda: found.append(asyncio.run(find())))
    thread.start()
    thread.join()
    if not found or not found[0]:
        return here
    path = found[0].split("://", 1)[1].removeprefix("localhost")
    return Path("/" + path.lstrip("/")).parent


__all__ = ["ROOT_FILE", "DamagedRootFileError", "previous_roots", "read_roots", "rebase_assets",
           "settle_root"]
