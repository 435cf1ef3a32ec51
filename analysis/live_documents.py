"""One raw run's documents as the live reducer reads them: as the catalog's writer sees them.

Frames are announced in two ways. A declared stream (a step scan, ``fly_tomo_scan``) has
``stream_resource``/``stream_datum`` documents; a flyer collected into a stream it did not
declare (``bp.fly([DetectorFlyer(...)])``, docs/catalog.md) has ``resource`` documents,
one ``datum`` per frame and the datum ids in its events. The catalog's writer brings the
second form to the first with ``bluesky_tiled_plugins``' ``RunNormalizer``
(``dataflow.event_pages.PageNormalizer``); :class:`RunDocuments` passes a run's documents
of that form through the same normalizer, so the live reducer follows ``stream_resource``
and ``stream_datum`` whichever way the frames came, and reads each frame where the catalog
says it is. Documents of the first form are handed on untouched (no second copy and
schema check per event on the live path).
"""

from __future__ import annotations

from typing import Any

from dataflow.event_pages import PageNormalizer

__all__ = ["RunDocuments"]

Document = tuple[str, dict[str, Any]]


class RunDocuments:
    """One raw run's ``resource``/``datum`` route through the catalog's normalizer:
    ``docs(name, doc, by_datum)`` returns the documents the live reducer handles for
    ``doc``. ``resource``, ``datum``, ``datum_page`` and, when ``by_datum`` (its stream's
    frames are named by datum ids), ``event``/``event_page`` go through the normalizer:
    nothing (kept until an event names it) or the event followed by the
    ``stream_resource`` (first time) and ``stream_datum`` of its frames. Descriptors and
    the stop are shown to it too (it learns the streams' keys; at the stop it emits the
    frames of events whose datum came late) and handed on as they are; every other
    document is handed on untouched. Raises what the normalizer raises (a malformed
    document; an event naming a datum that never came, at the stop)."""

    def __init__(self) -> None:
        self._out: list[Document] = []
        self._normalizer = PageNormalizer()
        self._normalizer.subscribe(self._emitted)

    def _emitted(self, name: str, doc: dict[str, Any]) -> None:
        self._out.append((name, doc))

    def __call__(self, name: str, doc: dict[str, Any], by_datum: bool) -> list[Document]:
        if name in ("resource", "datum", "datum_page") or \
                (by_datum and name in ("event", "event_page")):
            return self._normalized(name, doc)
        if name in ("descriptor", "stop"):
            return [(n, d) for n, d in self._normalized(name, doc) if n != name] + \
                [(name, doc)]
        return [(name, doc)]

    def _normalized(self, name: str, doc: dict[str, Any]) -> list[Document]:
        try:
            self._normalizer(name, doc)
            return self._out
        finally:
            self._out = []
