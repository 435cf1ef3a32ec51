"""``smeflow catalog serve`` and ``smeflow catalog replay``: the catalog server and the
spool replay on the command line (``dataflow.server`` is the server itself)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from .catalog import default_data_dir
from .cli_support import UsageError, add_debug, guarded
from .errors import CatalogError
from .server import (
    API_KEY_ENV,
    DEFAULT_HOST,
    DEFAULT_PORT,
    ServerConfigError,
    database_uri,
    read_api_key,
    serve,
)
from .server_guards import DEFAULT_MAX_BODY


def parse_port(text: str) -> int:
    """``--port`` as a number in 1…65535.

    Raises
    ------
    ServerConfigError
        Naming ``--port`` and the value.
    """
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) < 65536:
        raise ServerConfigError(f"--port {text!r}: expected a port number in 1…65535")
    return int(value)


def parse_size_mb(text: str, option: str) -> int:
    """A size in MiB (a positive number, fractions allowed) as bytes."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1 << 20:  # nan fails too
        raise UsageError(f"{option} {text!r}: expected a size in MiB, > 0 (e.g. 64)")
    return max(1, int(value * 1024 * 1024))


def cmd_serve(args: argparse.Namespace) -> int:
    """``smeflow catalog serve``: the catalog server in the foreground.

    Every argument is checked before anything is logged or created: a bad one is the
    only output; a busy port is found before the data folder is created.
    """
    try:
        port = parse_port(str(args.port))
    except ServerConfigError as exc:
        raise UsageError(str(exc)) from None
    max_body = parse_size_mb(str(args.max_request_mb), "--max-request-mb")
    key = read_api_key(args.api_key_file)
    data = Path(args.data) if args.data else default_data_dir()
    database = database_uri(args.db, data.resolve())
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for chatty in ("alembic.runtime.plugins", "numexpr.utils"):  # start-up noise
            logging.getLogger(chatty).setLevel(logging.WARNING)
    serve(data, key, database=None if args.db is None else database, host=args.host,
          port=port, max_body=max_body)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """``smeflow catalog replay``: send spooled runs to the server, oldest first."""
    from .remote import RemoteCatalog
    from .spool import replay_spool

    key = read_api_key(args.api_key_file)
    folder = Path(args.spool)
    if not folder.is_dir():
        raise CatalogError(f"spool folder {folder}: no such folder")
    with RemoteCatalog(args.url, key) as remote:
        done = replay_spool(folder, remote.client, include_rejected=args.rejected)
    print(f"replayed {len(done)} run{'s' if len(done) != 1 else ''}"
          + (": " + ", ".join(u[:8] for u in done) if done else ""))
    return 0


def add_server_commands(catalog_sub: Any) -> None:
    """Add ``serve`` and ``replay`` to the ``smeflow catalog`` sub-commands."""
    key_help = f"file holding the API key (mode 600); default ${API_KEY_ENV}"
    s = catalog_sub.add_parser(
        "serve", help="serve the catalog over HTTP (Tiled; API key required)",
        description="Serve the catalog of a data folder over HTTP with Tiled. Every "
        f"request needs the API key (${API_KEY_ENV} or --api-key-file). Listens on "
        "127.0.0.1 unless --host says otherwise.")
    s.add_argument("--data", metavar="DIR",
                   help="data folder (default: $SMEFLOW_DATA, else ./smeflow-data)")
    s.add_argument("--db", metavar="URI", help="sqlite:///PATH or postgresql://USER@HOST:"
                   "PORT/DB (default: DIR/catalog.db)")
    s.add_argument("--host", default=DEFAULT_HOST, help="address to listen on "
                   f"(default {DEFAULT_HOST}: this machine only)")
    s.add_argument("--port", default=str(DEFAULT_PORT),
                   help=f"port, 1…65535 (default {DEFAULT_PORT})")
    s.add_argument("--api-key-file", metavar="FILE", help=key_help)
    s.add_argument("--max-request-mb", default=str(DEFAULT_MAX_BODY // (1024 * 1024)),
                   metavar="MB", help="largest request body accepted, MiB (default "
                   f"{DEFAULT_MAX_BODY // (1024 * 1024)}); larger ones get HTTP 413")
    s.add_argument("--quiet", action="store_true", help="no request log")
    add_debug(s)
    s.set_defaults(func=guarded, catalog_func=cmd_serve)

    r = catalog_sub.add_parser(
        "replay", help="send runs spooled while the server was down",
        description="Write the runs a SpoolingWriter kept in SPOOL_DIR to the server, "
        "oldest first; each run replaces any partial copy, so replaying twice is harmless.")
    r.add_argument("spool", metavar="SPOOL_DIR")
    r.add_argument("--url", required=True, help="server address, e.g. http://127.0.0.1:8000")
    r.add_argument("--api-key-file", metavar="FILE", help=key_help)
    r.add_argument("--rejected", action="store_true",
                   help="also retry runs the server refused before (*.rejected.jsonl)")
    add_debug(r)
    r.set_defaults(func=guarded, catalog_func=cmd_replay)


__all__ = ["add_server_commands", "cmd_replay", "cmd_serve", "parse_port", "parse_size_mb"]
