"""The ``smeflow catalog verify`` and ``smeflow catalog keygen`` commands."""

from __future__ import annotations

from typing import Any

from ..catalog_db import check_pages, check_records
from ..cli_support import add_debug, guarded, open_catalog_folder
from .keys import generate_key, key_id, load_public_key, public_key_path
from .verify import EXIT_STATUS, verify_catalog_run


def _cmd_verify(args: Any) -> int:
    """``verify UID``: print the report of ``verify_catalog_run``; exit 0 when every check
    passed, 1 when one failed, 3 when the run has no record (``EXIT_STATUS``)."""
    trusted = [load_public_key(p) for p in args.trusted_key] if args.trusted_key else None
    with open_catalog_folder(args) as catalog:
        for db in ("catalog.db", "tables.db"):  # every page (seconds for a large catalog)
            check_pages(catalog.root / db)
        check_records(catalog.root / "catalog.db")  # every run's stored JSON decodes
        report = verify_catalog_run(catalog, args.run, trusted_keys=trusted)
    print("\n".join(report.lines()))
    return EXIT_STATUS[report.outcome]


def _cmd_keygen(args: Any) -> int:
    """``keygen PATH``: a new Ed25519 key pair (``keys.generate_key``)."""
    public = generate_key(args.path)
    print(f"wrote private key {args.path} (mode 600, keep it secret) and public key "
          f"{public_key_path(args.path)}; key id {key_id(public)[:16]}")
    return 0


def register_provenance_commands(catalog_sub: Any) -> None:
    """Add ``verify`` and ``keygen`` to the ``smeflow catalog`` sub-commands."""
    v = catalog_sub.add_parser(
        "verify", help="check a run's files, digests and signature",
        description="Check the catalog's databases (SQLite's quick_check; every "
        "run's stored metadata decodes), re-hash "
        "every file of a run and compare with its provenance "
        "record; check the record's signature. Prints one line per check; exit status "
        "0 when every check passes, 1 when one fails, 3 when the run has no provenance "
        "record (unverifiable: its frames and events checked, no failure among them).")
    v.add_argument("run", metavar="UID|SCAN_ID", help="uid, uid prefix (>= 5) or scan number")
    v.add_argument("--data", metavar="DIR",
                   help="catalog folder (default: $SMEFLOW_DATA, else ./smeflow-data)")
    v.add_argument("--trusted-key", metavar="PUBKEY.pem", action="append", default=[],
                   help="require a signature by this public key (repeatable)")
    add_debug(v)
    v.set_defaults(func=guarded, catalog_func=_cmd_verify)

    k = catalog_sub.add_parser("keygen", help="create an Ed25519 key for signing records",
                               description="Write a new Ed25519 private key to PATH "
                               "(mode 600) and its public key to PATH.pub; never "
                               "overwrites.")
    k.add_argument("path", metavar="PATH")
    add_debug(k)
    k.set_defaults(func=guarded, catalog_func=_cmd_keygen)

