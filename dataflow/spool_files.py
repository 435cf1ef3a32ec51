"""The spool file format: a run's documents as JSON lines ``[name, doc]``, one per
document, in order — what ``dataflow.spool`` writes while the catalog server is away and
``dataflow.journal`` keeps beside a run as it is written.

``encode_document`` writes a line (numpy values as plain numbers and lists),
``read_spool`` reads a file back, refusing a damaged one with the file and line
(``SpoolError``) but dropping a last line the writer was cut short in, and
``spool_files`` lists a folder's spooled runs, oldest first.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CatalogError

log = logging.getLogger(__name__)

SPOOL_SUFFIX = ".jsonl"
REJECTED_SUFFIX = ".rejected.jsonl"
Document = tuple[str, dict[str, Any]]


class SpoolError(CatalogError):
    """A spool file that cannot be read (named with its line)."""


def json_default(value: Any) -> Any:
    """``json.dumps``'s ``default`` for bluesky documents: numpy values as plain numbers or
    lists, sets and tuples as lists, paths as text (the spool and the provenance ledger)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_document(name: str, doc: Any) -> str:
    """One spool line: ``[name, doc]`` as JSON (numpy values as plain numbers/lists)."""
    return json.dumps([name, doc], default=json_default, separators=(",", ":"), allow_nan=True)


def decode_document(line: str) -> Document:
    """The ``(name, doc)`` of one ``[name, doc]`` JSON line (a spool or ledger line);
    ``ValueError`` for anything else."""
    item = json.loads(line)
    if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
            and isinstance(item[1], dict)):
        raise ValueError("expected [name, document]")
    return item[0], item[1]


def read_spool(path: str | os.PathLike[str]) -> list[Document]:
    """The documents of one spool file, in order.

    A last line cut short (the process died while writing it: no newline after it) is
    dropped with a warning; any other unreadable line — bytes that are not UTF-8 (a
    flipped byte, a file saved as UTF-16 or Latin-1), a whole line that is not a
    ``[name, doc]`` — is an error naming the file and line.
    """
    path = Path(path)
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out: list[Document] = []
    for number, line in enumerate(lines, 1):
        try:
            name, doc = decode_document(line.decode("utf-8"))
        except ValueError as exc:
            if number == len(lines) and not data.endswith(b"\n"):
                log.warning("%s:%d: incomplete last line dropped", path, number)
                break
            why = (f"not UTF-8 at byte {exc.start} of the line"
                   if isinstance(exc, UnicodeDecodeError) else str(exc))
            raise SpoolError(f"{path}:{number}: not a spooled document ({why})") from None
        out.append((name, doc))
    if not out or out[0][0] != "start":
        raise SpoolError(f"{path}: does not begin with a start document")
    return out


def spool_files(folder: str | os.PathLike[str], include_rejected: bool = False) -> list[Path]:
    """The spool files of ``folder``, oldest run first."""
    files = sorted(Path(folder).glob(f"*{SPOOL_SUFFIX}"))
    return [f for f in files if include_rejected or not f.name.endswith(REJECTED_SUFFIX)]
