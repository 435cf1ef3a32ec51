"""The catalog server's configuration, checked before anything starts: the API key
(``read_api_key``: ``$SMEFLOW_API_KEY`` or a mode-600 file) and the catalog database URI
(``database_uri``: SQLite or PostgreSQL, passwords never shown: ``redact``)."""

from __future__ import annotations

import os
import stat
from collections.abc import MutableMapping
from pathlib import Path
from urllib.parse import urlsplit

from .errors import CatalogError

API_KEY_ENV = "SMEFLOW_API_KEY"
MIN_KEY_LENGTH = 16


class ServerConfigError(CatalogError):
    """The server cannot start as asked: API key, database URI, folder or address."""


def check_key(key: str, where: str) -> str:
    """``key`` stripped, when it is letters and digits, at least ``MIN_KEY_LENGTH`` long.

    Raises
    ------
    ServerConfigError
        Naming ``where`` (never the key).
    """
    key = key.strip()
    if not key:
        raise ServerConfigError(f"{where} is empty: an API key is required")
    if not key.isalnum() or not key.isascii():
        raise ServerConfigError(f"{where}: the API key must be letters and digits only "
                                "(generate one: python -c 'import secrets; "
                                "print(secrets.token_hex(32))')")
    if len(key) < MIN_KEY_LENGTH:
        raise ServerConfigError(f"{where}: the API key is {len(key)} characters; use at "
                                f"least {MIN_KEY_LENGTH} (e.g. secrets.token_hex(32))")
    return key


def read_api_key(key_file: str | os.PathLike[str] | None = None,
                 environ: MutableMapping[str, str] | None = None) -> str:
    """The API key: from ``key_file`` when given, else from ``$SMEFLOW_API_KEY``.

    The file must exist, be a regular file readable by nobody but its owner and group
    (``chmod 600``), and hold the key (letters and digits, >= 16) on its first line.

    Raises
    ------
    ServerConfigError
        No key, an empty or malformed key, or an unusable file (named in the message;
        the key itself never is).
    """
    env = os.environ if environ is None else environ
    if key_file is None:
        value = env.get(API_KEY_ENV)
        if value is None:
            raise ServerConfigError(f"no API key: set ${API_KEY_ENV} or pass --api-key-file "
                                    "FILE (every request to the server needs the key)")
        return check_key(value, f"${API_KEY_ENV}")
    path = Path(key_file)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ServerConfigError(f"API key file {path}: no such file") from None
    if not stat.S_ISREG(info.st_mode):
        raise ServerConfigError(f"API key file {path}: not a regular file")
    if info.st_mode & 0o007:
        raise ServerConfigError(f"API key file {path}: readable by other users "
                                f"(mode {stat.filemode(info.st_mode)}); run chmod 600 {path}")
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise ServerConfigError(f"API key file {path}: not ASCII text") from None
    first = text.strip().splitlines()[0] if text.strip() else ""
    return check_key(first, f"API key file {path}")


def redact(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def database_uri(db: str | None, data_dir: Path) -> str:
    """The catalog database: ``db`` checked, or the data folder's ``catalog.db``.

    Accepts ``sqlite:///PATH`` and ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB``
    (``postgresql+asyncpg://`` too). A relative SQLite ``PATH`` (``sqlite:///rel/c.db``)
    is taken from the current folder and returned absolute (``sqlite:////cwd/rel/c.db``),
    so the server finds the same file after a restart; its folder must exist (a new
    database file is created in it, folders never are).

    Raises
    ------
    ServerConfigError
        Naming ``--db`` (password masked): not one of those URIs, an SQLite path that
        is a folder or in a folder that does not exist.
    """
    if db is None:
        return f"sqlite:///{data_dir / 'catalog.db'}"
    text = db.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in {"sqlite", "sqlite+aiosqlite"}:
        rest = text.split("://", 1)[1]
        name, question, query = rest[1:].partition("?")
        if not rest.startswith("/") or not name:
            raise ServerConfigError(f"--db {redact(db)!r}: expected sqlite:///PATH (three "
                                    "slashes, then the database file)")
        if name == ":memory:":
            raise ServerConfigError(f"--db {db!r}: an in-memory database would lose the "
                                    "catalog when the server stops; give a file")
        path = Path(os.path.abspath(name))  # relative to the current folder; .. removed
        if path.is_dir():
            raise ServerConfigError(f"--db {db!r}: {path} is a folder, not a database file")
        if not path.parent.is_dir():
            raise ServerConfigError(f"--db {db!r}: folder {path.parent} does not exist "
                                    "(create it first)")
        return f"{scheme}:///{path}{question}{query}"
    if scheme in {"postgresql", "postgresql+asyncpg"}:
        parts = urlsplit(text)
        if not parts.hostname or not parts.path.strip("/"):
            raise ServerConfigError(f"--db {redact(db)!r}: expected "
                                    "postgresql://USER@HOST:PORT/DATABASE")
        return text
    raise ServerConfigError(f"--db {redact(db)!r}: not a database URI; expected "
                            "sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE")


def _is_postgres(uri: str) -> bool:
    return uri.lower().startswith("postgresql")


def _tables_uri(database: str, data_dir: Path) -> str:
    """Event tables go to PostgreSQL with a PostgreSQL catalog, else to ``tables.db``."""
    if _is_postgres(database):
        return "postgresql://" + database.split("://", 1)[1]
    return f"sqlite:///{data_dir / 'tables.db'}"


__all__ = ["API_KEY_ENV", "MIN_KEY_LENGTH", "ServerConfigError", "check_key", "database_uri",
           "read_api_key", "redact"]
