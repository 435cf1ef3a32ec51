"""Event rows appended to the catalog once, also when the answer to an append is lost.

``TiledWriter`` appends each batch of a stream's rows to the stream's table with a PATCH.
When the server carries it out but its answer never arrives (a read timeout under load, a
5xx from a proxy), ``TiledWriter`` sends it again and only logs that "the rows may be
duplicated": the run then reads back with more rows in its table than events (4 rows of
``x`` for 3 events, beside 3 of an array column), a wrong answer without an error. The
Tiled client itself does not retry such a request and leaves it to the caller to "inspect
the table before deciding to re-append" (``DataFrameClient.append_partition``).

:class:`AppendOnceRunWriter` does that: it counts the rows it has appended to each table,
and after an append that failed in a way the server may have carried out, it asks the
server how many rows the table holds before each new attempt: as many as before, the
append is sent again; as many as before plus the batch, it was carried out and is not
sent again; any other number is an :class:`AppendMismatch` (the table is not what this
writer made it). Errors that say the request was refused (4xx but 429) are raised as
they are. :class:`AppendOnceTiledWriter` is ``TiledWriter`` writing each run with one.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from bluesky_tiled_plugins import TiledWriter
from bluesky_tiled_plugins.writing.tiled_writer import _RunWriter
from tiled.client.utils import retry_context

from .errors import CatalogError

__all__ = ["AppendMismatch", "AppendOnceRunWriter", "AppendOnceTiledWriter", "table_rows"]

log = logging.getLogger(__name__)


class AppendMismatch(CatalogError):
    """A stream's table on the server holds neither the rows appended before a failed
    append nor those and the batch."""


def table_rows(table: Any) -> int:
    """The rows the server's appendable table ``table`` (a ``DataFrameClient``) holds now:
    the length of one of its columns, read from the server."""
    column = list(table.structure().columns)[:1]
    return len(table.read_partition(0, columns=column or None))


def _refused(err: BaseException) -> bool:
    """Whether ``err`` says the server refused the request (a 4xx other than 429):
    nothing was carried out, and sending it again would be refused again."""
    return isinstance(err, httpx.HTTPStatusError) and err.response.status_code < 500 \
        and err.response.status_code != 429


class AppendOnceRunWriter(_RunWriter):  # type: ignore[misc]  # (untyped library)
    """``TiledWriter``'s writer of one run whose appends of event rows are carried out
    once (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rows_appended: dict[str, int] = {}  # table's URI -> rows this writer appended

    def _append_with_retry(self, df_client: Any, table: Any, desc_name: str) -> None:
        """Append ``table`` (a ``pyarrow.Table``) to the stream ``desc_name``'s table
        ``df_client`` once, retrying the transient failures of the server."""
        key = str(df_client.uri)
        before = self._rows_appended.get(key, 0)
        try:
            df_client.append_partition(0, table)
        except (httpx.TransportError, httpx.HTTPStatusError) as err:
            if _refused(err):
                raise
            log.warning("appending %d rows to stream %r of run %s failed (%r); asking the "
                        "server whether it appended them before sending them again",
                        table.num_rows, desc_name, self._run_uid(), err)
            for attempt in retry_context(df_client.context):
                with attempt:
                    held = table_rows(df_client)
                    if held == before + table.num_rows:
                        log.warning("stream %r of run %s: the server had appended the %d "
                                    "rows (its answer was lost); not sent again", desc_name,
                                    self._run_uid(), table.num_rows)
                        break
                    if held != before:
                        raise AppendMismatch(
                            f"stream {desc_name!r} of run {self._run_uid()}: its table on "
                            f"the server holds {held} rows, neither the {before} appended "
                            f"before nor those and the {table.num_rows} of the append that "
                            f"failed ({err!r}); the run must be written again") from err
                    df_client.append_partition(0, table)
        self._rows_appended[key] = before + table.num_rows

    def _run_uid(self) -> str:
        """The run's start uid (for messages)."""
        node = self.root_node
        return str(getattr(node, "item", {}).get("id", "?")) if node is not None else "?"


class AppendOnceTiledWriter(TiledWriter):  # type: ignore[misc]  # (untyped library)
    """``TiledWriter`` (its arguments, without the backup ones) writing each run with an
    :class:`AppendOnceRunWriter` (module docstring)."""

    run_writer_class: type[AppendOnceRunWriter] = AppendOnceRunWriter
    """The class of each run's writer (a subclass adds to it: ``dataflow.tiled_flush``)."""

    def __init__(self, client: Any, **kwargs: Any) -> None:
        for name in ("backup_directory", "backup_dictionary"):
            if kwargs.get(name) is not None:
                raise TypeError(f"{type(self).__name__}: `{name}` is not supported")
        super().__init__(client, **kwargs)

    def _run_writer(self, doc: dict[str, Any]) -> AppendOnceRunWriter:
        """The writer of the run whose start document is ``doc`` (``run_writer_class``,
        with this writer's options)."""
        return self.run_writer_class(self.client, batch_size=self._batch_size,
                                     max_array_size=self._max_array_size,
                                     validate=self._validate, ignore_errors=self.ignore_errors)

    def _factory(self, name: str, doc: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        """``TiledWriter``'s factory of a run's callbacks, with :meth:`_run_writer`'s."""
        writer = self._run_writer(doc)
        if not self._normalizer:
            return [writer], []
        normalizer = self._normalizer(patches=self.patches,
                                      spec_to_mimetype=self.spec_to_mimetype)
        normalizer.subscribe(writer)
        return [normalizer], []
