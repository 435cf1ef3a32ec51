"""DataBroker on smeflow's catalog: the v1 ``Broker`` and v2 runs, embedded or served.

databroker 2.x is a client of Tiled: its v1 ``Broker`` wraps a Tiled node of runs, and its
v2 runs are Tiled ``BlueskyRun`` nodes. So the databroker code of a beamline notebook
works on smeflow's catalog unchanged:

    from dataflow.broker import open_broker
    db = open_broker()                        # the embedded catalog (./smeflow-data)
    db[-1].table()                            # v1: the last run's primary stream
    db.v2[-1].primary.read()                  # v2: an xarray Dataset

A served catalog (``smeflow catalog serve``) is reached through a *Tiled profile*, the
way databroker 2 finds catalogs by name: ``smeflow catalog profile NAME --url URL``
(``write_profile``) writes ``NAME.yml`` into Tiled's user profile folder, and then, with
the server's key in ``TILED_API_KEY``:

    from databroker import Broker
    db = Broker.named("NAME")                 # v1
    import databroker
    run = databroker.catalog["NAME"].v2[uid]  # v2

The profile holds the server's address, never its key: Tiled reads the key from
``TILED_API_KEY`` (or asks for it). It names smeflow's catalog-of-runs client
(``dataflow.profile_client``), so its arrays index as numpy does and its sort, ``distinct``
and dict queries mean start-document keys, as ``open_broker``'s do.

``open_broker``'s ``db.v2`` also takes databroker's older dict queries the way its
tutorials mean them, as keys of the start document: ``db.v2.search({"plan_name":
"scan"})``. bluesky-tiled-plugins 2.0.12 turns such a dict into ``Key("plan_name")`` without
its ``start.`` prefix, so its own catalogs (``databroker.catalog[NAME]``, ``Catalog.client``)
find nothing for it; ``Key("plan_name") == "scan"`` works on every one.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

from sme.atomic_file import write_text_atomic

from .catalog import RAW, Catalog, CatalogError, ClientCatalog

PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""What a profile name may look like (it is also the file name)."""


def open_broker(catalog: ClientCatalog | str | os.PathLike[str] | None = None) -> Any:
    """A databroker v1 ``Broker`` over a smeflow catalog.

    Parameters
    ----------
    catalog
        An open ``Catalog`` or ``RemoteCatalog``, a catalog folder, or ``None`` for the
        default embedded catalog (``$SMEFLOW_DATA``, else ``./smeflow-data``). A folder
        is opened (created on first use) and stays open as long as the Broker is used.

    Returns
    -------
    databroker.Broker
        ``db[-1]``, ``db[uid]``, ``db(plan_name=...)``, ``db.v2`` (the Tiled catalog of
        runs, with databroker's v2 interface); ``table()`` of a stream without events is
        an empty table (``dataflow.broker_v1``).
    """
    from .broker_v1 import broker_class

    if not isinstance(catalog, ClientCatalog):
        catalog = Catalog(catalog)
    if catalog.client is None:
        raise CatalogError(f"the catalog {catalog.where} is closed")
    return broker_class()(dict_searching(catalog.client))


def dict_searching(runs: Any) -> Any:
    """``runs`` (bluesky's Tiled catalog of runs) where ``search`` takes a dict of
    start-document keys and values, ANDed: ``{"plan_name": "scan", "num_points": 3}``.

    A value that is itself a dict (a MongoDB operator such as ``{"$gt": 3}``) raises
    ``ValueError`` naming the key: databroker 2 runs no MongoDB queries — use
    ``databroker.queries`` (``Comparison``, ``In``, ...)."""
    cls = _dict_search_runs()
    if isinstance(runs, cls):
        return runs
    return cls(runs.context, item=runs.item, structure_clients=runs.structure_clients,
               include_data_sources=runs._include_data_sources)


@functools.cache
def _dict_search_runs() -> type:
    """The catalog-of-runs class of :func:`dict_searching` (made once, on first use: it
    imports bluesky-tiled-plugins)."""
    from bluesky_tiled_plugins.clients.catalog_of_bluesky_runs import CatalogOfBlueskyRuns
    from tiled.queries import Key

    from .run_keys import direction, start_key

    class DictSearchRuns(CatalogOfBlueskyRuns):  # type: ignore[misc]
        """bluesky's catalog of runs; a dict query means start-document keys."""

        def search(self, query: Any) -> Any:
            if not isinstance(query, dict):
                return super().search(query)
            found = self
            for key, value in query.items():
                if not isinstance(key, str) or isinstance(value, dict):
                    raise ValueError(
                        f"search({query!r}): {key!r}: {value!r} is no start-document key "
                        "and value (databroker 2 runs no MongoDB operators); use "
                        "databroker.queries (Key, Comparison, In, ...)")
                found = found.search(Key(key) == value)  # the base adds "start."
            return found

        def sort(self, *sorting: tuple[str, Any]) -> Any:
            """Tiled's ``sort``; a key means the start document's, as a query's does, and
            a direction is 1, -1 or Tiled's ``ASCENDING``/``DESCENDING`` (``dataflow.
            run_keys``)."""
            return super().sort(*[(start_key(key), direction(way)) for key, way in sorting])

        def distinct(self, *keys: str, **kwargs: Any) -> Any:
            """Tiled's ``distinct``; a key means the start document's, and the answer is
            under the key as given (``dataflow.run_keys``)."""
            asked = {start_key(key): key for key in keys}
            found = super().distinct(*asked, **kwargs)
            found["metadata"] = {asked.get(k, k): v for k, v in found["metadata"].items()}
            return found

        @property
        def v2(self) -> Any:
            return dict_searching(super().v2)

    return DictSearchRuns


def profile_folder() -> Path:
    """Tiled's user profile folder (``$TILED_PROFILES`` when set), where databroker's
    ``Broker.named`` and ``databroker.catalog`` look for profiles."""
    from tiled.profiles import paths

    return Path(paths[-1])


def runs_uri(url: str) -> str:
    """The address of the raw runs of a smeflow server at ``url`` (what a profile's
    ``uri`` is): ``URL/api/v1/metadata/raw``, so ``databroker.catalog[NAME]`` is the
    catalog of runs itself (``Broker.named`` would find ``raw`` under the top as well)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CatalogError(f"--url {url!r}: expected the server's address, e.g. "
                           "http://127.0.0.1:8000")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise CatalogError(f"--url {url!r}: give only scheme, host and port, no query, "
                           "fragment or credentials")
    if parts.path.rstrip("/") not in ("", "/api/v1"):
        raise CatalogError(f"--url {url!r}: give the server's address without a path, "
                           "e.g. http://127.0.0.1:8000")
    try:
        port = parts.port  # urlsplit raises past 65535 or for a port that is no number
    except ValueError:
        port = 0
    if port == 0 or parts.netloc.endswith(":"):
        raise CatalogError(f"--url {url!r}: expected a port number in 1…65535 (as "
                           "`smeflow catalog serve --port` takes), e.g. "
                           "http://127.0.0.1:8000")
    return f"{parts.scheme}://{parts.netloc}/api/v1/metadata/{RAW}"


def profile_text(name: str, url: str) -> str:
    """The YAML of a Tiled profile ``name`` for the smeflow server at ``url``."""
    import json

    from .profile_client import PROFILE_CLIENTS

    check_profile_name(name)
    # JSON strings are YAML strings: quoting this way keeps any URL intact.
    clients = "".join(f"    {json.dumps(spec)}: {json.dumps(path)}\n"
                      for spec, path in PROFILE_CLIENTS.items())
    return (f"# Tiled profile written by `smeflow catalog profile` for databroker:\n"
            f"#   Broker.named({name!r}) / databroker.catalog[{name!r}]\n"
            f"# The API key is not stored here: Tiled reads it from $TILED_API_KEY.\n"
            f"# structure_clients: smeflow's runs and arrays (numpy's indexing), from the\n"
            f"# Python that has smeflow installed (dataflow.profile_client).\n"
            f"{json.dumps(name)}:\n  uri: {json.dumps(runs_uri(url))}\n"
            f"  structure_clients:\n{clients}")


def check_profile_name(name: str) -> str:
    """``name`` when it can be a profile name (and file name), else ``CatalogError``."""
    if not PROFILE_NAME.match(name):
        raise CatalogError(f"profile name {name!r}: use letters, digits, '_', '-' and '.' "
                           "(at most 64, starting with a letter or digit)")
    return name


def write_profile(name: str, url: str, folder: str | os.PathLike[str] | None = None, *,
                  overwrite: bool = False) -> Path:
    """Write the Tiled profile ``name`` for the smeflow server at ``url``; returns its path.

    Parameters
    ----------
    name
        The profile name (``Broker.named(name)``); letters, digits, ``_ - .``.
    url
        The server's address, e.g. ``http://127.0.0.1:8000``.
    folder
        Where to write ``name.yml``; default ``profile_folder()``.
    overwrite
        Replace an existing, different profile of that name (else ``CatalogError``).
    """
    text = profile_text(name, url)
    target = Path(folder) if folder is not None else profile_folder()
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.yml"
    if path.exists() and not overwrite and _contents(path) != text.encode():
        raise CatalogError(f"profile {path} exists with other contents; pass --force to "
                           "replace it")
    write_text_atomic(path, text, fsync=True)
    return path


def _contents(path: Path) -> bytes:
    """``path``'s bytes (a profile cut short or not UTF-8 is "other contents" too)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"profile {path} cannot be read ({exc.strerror or exc}); "
                           "move it aside") from None


def cmd_profile(args: Any) -> int:
    """``smeflow catalog profile``: write the profile, say how to use it."""
    from .server import DEFAULT_HOST, DEFAULT_PORT

    url = args.url or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    path = write_profile(args.name, url, args.dir, overwrite=args.force)
    print(f"wrote {path} (runs at {runs_uri(url)})")
    print("with the server's key in $TILED_API_KEY:")
    print(f"  from databroker import Broker; db = Broker.named({args.name!r})")
    print(f"  import databroker; catalog = databroker.catalog[{args.name!r}]")
    if args.dir is not None and Path(args.dir).resolve() != profile_folder().resolve():
        print(f"(Tiled looks in {profile_folder()}: set TILED_PROFILES={args.dir} to use "
              "this folder)")
    return 0


def add_profile_command(catalog_sub: Any) -> None:
    """Add ``profile`` to the ``smeflow catalog`` sub-commands."""
    from .cli_support import add_debug, guarded

    p = catalog_sub.add_parser(
        "profile", help="write a Tiled profile so databroker finds the server by name",
        description="Write the Tiled profile NAME for a smeflow catalog server, so that "
        "databroker finds it: Broker.named(NAME) (v1) and databroker.catalog[NAME] (v2). "
        "The profile holds the address only; Tiled takes the API key from $TILED_API_KEY.",
        epilog="example: smeflow catalog profile beamline --url http://127.0.0.1:8000")
    p.add_argument("name", metavar="NAME", help="profile name (letters, digits, _ - .)")
    p.add_argument("--url", help="the server's address (default http://127.0.0.1:8000)")
    p.add_argument("--dir", metavar="DIR", help="profile folder (default: Tiled's user "
                   "profile folder, $TILED_PROFILES when set)")
    p.add_argument("--force", action="store_true", help="replace a different profile of "
                   "that name")
    add_debug(p)
    p.set_defaults(func=guarded, catalog_func=cmd_profile)


__all__ = ["add_profile_command", "check_profile_name", "cmd_profile", "open_broker",
           "profile_folder", "profile_text", "runs_uri", "write_profile"]
