"""A ``TiledWriter`` that can write what it holds before the stop document comes.

``bluesky_tiled_plugins.TiledWriter`` keeps a run's event rows and frame announcements
(``stream_datum``) until the stop document (or ``batch_size`` of them), then writes them
and the stop in one go: at the stop of a reduction's derived run it creates the rows'
table and appends to it, registers the volume's file node with an empty data source and
sends that data source again with its frames, then writes the stop — five catalog
requests, each costing the client as much as the reduction's last task's round trip.
The stop document of a derived run carries the SHA-256 of its output file, which is
computed after the file is closed, so all of that waited for the digest.

:class:`FlushableTiledWriter` is ``TiledWriter`` with two differences:

- :meth:`~FlushableTiledWriter.flush` writes now what the writer holds for an open run
  (its event rows and frame announcements), as the stop would write it; the stop then
  writes only the stop itself. ``analysis.derived_run.DerivedRun`` calls it once
  its volume's documents are out, so that those writes run while the volume's digest
  is being computed (in another thread) instead of after it.
- A file node is registered with the data source of its first frames in one request
  (the node is created with it), not created empty and then given its data source in a
  second request. The catalog then holds the same node, data source and assets (a
  server that streams changes to subscribers announces the node with its frames, where
  ``TiledWriter``'s second request would have sent them as an update of the empty node).

Everything else — normalizer, batching of events, what is stored where — is
``TiledWriter``'s own code; the tests write the same documents through both writers and
compare every document, table and array read back.
"""

from __future__ import annotations

from typing import Any

from bluesky_tiled_plugins.writing.consolidators import consolidator_factory

from .tiled_append import AppendOnceRunWriter, AppendOnceTiledWriter

__all__ = ["FlushableTiledWriter"]


class _FlushableRunWriter(AppendOnceRunWriter):
    """``TiledWriter``'s writer of one run (its appends carried out once,
    ``dataflow.tiled_append``), with :meth:`flush` and file nodes registered with their
    first data source in one request (module docstring)."""

    stopped = False

    def flush(self) -> None:
        """Write the event rows and frame announcements held so far."""
        if self.root_node is None or self.stopped:
            return
        for desc_name, rows in self._internal_data_cache.items():
            if rows:
                self._write_internal_data(rows, desc_node=self._desc_nodes[desc_name])
                rows.clear()
        for sres_uid in list(self._external_data_cache):  # (in order: a file's place)
            self._write_external_data(self._external_data_cache.pop(sres_uid))

    def _write_external_data(self, doc: dict[str, Any]) -> None:
        """Register the frames of ``doc``: a new file node with its data source in one
        request, an existing one through ``TiledWriter``'s update."""
        sres_uid, desc_uid = doc["stream_resource"], doc["descriptor"]
        resource = self._stream_resource_cache.get(sres_uid)
        desc_node = self._desc_nodes.get(desc_uid)
        if sres_uid in self._sres_nodes or resource is None or desc_node is None or \
                f"{desc_node.item['id']}_{resource['data_key']}" in self._sres_nodes:
            super()._write_external_data(doc)
            return
        full_data_key = f"{desc_node.item['id']}_{resource['data_key']}"
        consolidator = consolidator_factory(resource, desc_node.metadata)
        consolidator.consume_stream_datum(doc)
        data_source = consolidator.get_data_source()
        node = desc_node.new(key=consolidator.data_key,
                             structure_family=data_source.structure_family,
                             data_sources=[data_source], metadata={}, specs=[],
                             access_tags=self.access_tags)
        self._consolidators[sres_uid] = self._consolidators[full_data_key] = consolidator
        self._sres_nodes[sres_uid] = self._sres_nodes[full_data_key] = node

    def stop(self, doc: dict[str, Any]) -> None:
        """``TiledWriter``'s stop, after writing what is held (file nodes as above)."""
        self.flush()
        super().stop(doc)
        self.stopped = True


class FlushableTiledWriter(AppendOnceTiledWriter):
    """``TiledWriter`` (its arguments, without the backup ones) whose :meth:`flush` writes
    what it holds for its open runs before their stop documents (module docstring)."""

    run_writer_class = _FlushableRunWriter

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self._runs: dict[str, _FlushableRunWriter] = {}  # (by start uid)

    def _run_writer(self, doc: dict[str, Any]) -> _FlushableRunWriter:
        """A flushable writer of the run whose start document is ``doc``, kept for
        :meth:`flush`."""
        writer = super()._run_writer(doc)
        assert isinstance(writer, _FlushableRunWriter)
        self._runs = {uid: run for uid, run in self._runs.items() if not run.stopped}
        self._runs[doc["uid"]] = writer
        return writer

    def flush(self, run_uid: str | None = None) -> None:
        """Write the event rows and frame announcements held for the open run whose start
        document has ``run_uid`` (default: every open run) now, as its stop document would
        (the stop then writes only itself); other runs keep their batches."""
        for uid, run in list(self._runs.items()):
            if run_uid is None or uid == run_uid:
                run.flush()
