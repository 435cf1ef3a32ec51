"""A run's external files refused when they are announced, not at its stop document.

A device announces the files holding its data with a ``resource`` document (ophyd.sim's
``hw().img`` writes ``.npy`` files into a temporary folder) or a ``stream_resource``
document. ``TiledWriter`` registers them with the catalog only later — at the first
datum with ``batch_size=1``, else with the stop document — and the catalog refuses a file
outside its data folders (``dataflow.assets``) with HTTP 403 then: at the stop document
the run was left without one, and the RunEngine raised the server's 403.

:class:`AssetGate`, between the RunEngine and the catalog's writer (``Catalog.subscribe``
puts it there), checks each announced file against the catalog's own policy when its
document comes. A refused file is an ``AssetUriError`` naming the document, the file, why
(the policy's reason) and what to do, raised in the RunEngine's emit: bluesky ends the run
there, its stop document saying ``exit_status 'fail'`` with that message as ``reason``,
written as any other. The refused document, and the ``datum``/``stream_datum`` documents
of a refused resource, never reach the writer: the catalog holds no reference to the
file, nothing half-registered.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from .assets import AssetUriError

__all__ = ["AssetGate", "AssetRefusals"]


class AssetRefusals(Protocol):
    """What the gate asks of a catalog's asset policy: why a URI is refused, or ``None``
    (``dataflow.assets.AssetPolicy``; a server's, ``dataflow.remote``)."""

    def refusal(self, uri: object) -> str | None:
        """Why ``uri`` is refused, or ``None`` when the catalog may read it."""

_RESOURCES = {"resource": "resource", "stream_resource": "stream_resource"}
_DATUMS = {"datum": "resource", "stream_datum": "stream_resource"}


class AssetGate:
    """A RunEngine callback: documents to ``writer``, refusing files the catalog cannot
    read (see the module docstring).

    Parameters
    ----------
    writer
        The callback writing the catalog (a ``TiledWriter``, a ``JournalingWriter``).
    policy
        The catalog's asset policy (``dataflow.assets.AssetPolicy``, or a server's).
    where
        The catalog, as the error names it (its folder, a server's address).
    raw_dir
        The folder its detectors' files go to, offered in the error.
    hint
        What else to do about a refused URI, appended to the error (default: let the
        embedded catalog read its folder).
    """

    def __init__(self, writer: Any, policy: AssetRefusals, where: str, raw_dir: str, *,
                 hint: Callable[[str], str] | None = None) -> None:
        self.writer = writer
        self.policy = policy
        self.where = where
        self.raw_dir = raw_dir
        self.hint = hint if hint is not None else _folder_hint
        self._refused: dict[str, str] = {}

    def __call__(self, name: str, doc: dict[str, Any]) -> Any:
        """Check ``doc`` when it announces a file or data in one, then write it."""
        if name in _RESOURCES:
            self._check(name, doc)
        elif name in _DATUMS:
            why = self._refused.get(str(doc.get(_DATUMS[name])))
            if why is not None:
                raise AssetUriError(f"{name} document of a refused file: {why}")
        return self.writer(name, doc)

    def _check(self, name: str, doc: dict[str, Any]) -> None:
        uri = _registered_uri(doc)
        if uri is None:  # (malformed: the writer's own error says so)
            return
        reason = self.policy.refusal(uri)
        if reason is None:
            return
        what = f"{name} document {doc.get('uid')!r}"
        if doc.get("spec"):
            what += f" (spec {doc['spec']})"
        elif doc.get("data_key"):
            what += f" (data key {doc['data_key']!r})"
        message = (f"{what}: the catalog {self.where} cannot read the data it announces: {reason}. "
                   f"Write it under {self.raw_dir}{self.hint(uri)}.")
        self._refused[str(doc.get("uid"))] = message
        raise AssetUriError(message)

    def __getattr__(self, name: str) -> Any:
        if name == "writer":  # (not set yet: no recursion)
            raise AttributeError(name)
        return getattr(self.writer, name)


def _registered_uri(doc: dict[str, Any]) -> str | None:
    """The URI the catalog's writer registers for the (stream_)resource ``doc``: its own
    conversion (``TiledWriter``'s normalizer), so the check sees what the server would."""
    from bluesky_tiled_plugins.writing.tiled_writer import RunNormalizer

    try:
        converted = RunNormalizer()._convert_resource_to_stream_resource(copy.deepcopy(doc))
    except (KeyError, RuntimeError, TypeError, ValueError):
        return None
    uri = converted.get("uri")
    return uri if isinstance(uri, str) else None


def _folder_hint(uri: str) -> str:
    """How to let the catalog read the folder of a local ``file:`` URI (else nothing)."""
    parts = urlparse(uri)
    if parts.scheme.lower() != "file" or parts.netloc.lower() not in {"", "localhost"}:
        return ""
    folder = os.path.dirname(unquote(parts.path).rstrip("/")) or "/"
    return (f", or open the catalog with Catalog(..., readable_storage=[{folder!r}]) "
            "so that it may read that folder")
