"""databroker's v1 ``Broker``, with ``table()`` of a stream that holds no event.

databroker 2.0.2's ``Broker.get_table`` (``Header.table``) takes the stream's first
descriptor unasked: a run aborted before its first event (or ``count(dets, 0)``, or a
stream name the run does not have) has none, and ``db[-1].table()`` raised
``IndexError: list index out of range``. A stream whose descriptor was written but that
got no event (``declare_stream``, then the plan failed) gave a table with the ``time``
column only, its readings' columns lost. databroker answered an empty DataFrame for a
run without events before 2.x (bluesky/databroker#42), and 2.0.2's own ``get_table``
still ends with that "no data" case, which the ``IndexError`` never lets it reach;
reading a stream of 0 events is bluesky/databroker#771 (open).

``Broker`` here answers those cases with an empty table (index ``seq_num``): with the
stream's columns when its descriptor says them (``fields`` and ``fill`` applied as
databroker applies them: external columns only with ``fill``; a column's dtype from its
``dtype_numpy``, arrays as objects, ``time`` as datetime64), with no columns when the
run has no descriptor of that stream. Everything else is databroker's ``get_table``.
``header.data(field)`` of such a stream yields nothing (databroker 1.x: the field of no
event; 2.0.2 raised ``KeyError: 'det_roi_sum'``, or ``KeyError: ''`` without a
descriptor), and a field the stream's descriptor does not have is a ``KeyError`` naming
the run, the stream and its fields.

The headers of a search (``db(plan_name=...)``) are this ``Broker``'s too: databroker's
``Results`` makes a plain databroker ``Broker`` for them, whose ``table()`` of a run
without events raised the ``IndexError`` and lost the columns of a declared stream,
while ``db[-1].table()`` of the same run answered.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any


@functools.cache
def broker_class() -> type[Any]:
    """databroker's ``Broker`` with ``get_table`` answering streams without events (made
    once, on first use: it imports databroker)."""
    import pandas  # type: ignore[import-untyped]
    from databroker.v1 import Broker, Header, Results

    class SmeflowHeader(Header):  # type: ignore[misc]
        """databroker's ``Header``; ``data()`` of a stream without events yields nothing."""

        def data(self, field: str, stream_name: str = "primary",
                 fill: bool = True) -> Iterator[Any]:
            descriptors = [d for d in self.descriptors if d.get("name") == stream_name]
            keys: set[str] = set()
            for descriptor in descriptors:
                keys.update(descriptor.get("data_keys", {}))
            if fill and descriptors and field not in keys:
                raise KeyError(f"run {self.start['uid']}: stream {stream_name!r} has no "
                               f"field {field!r} (its fields: {', '.join(sorted(keys))})")
            if fill and (not descriptors or field not in self.v2[stream_name]["data"]):
                return  # no events: nothing to yield, as databroker 1.x
            yield from super().data(field, stream_name=stream_name, fill=fill)

    class SmeflowResults(Results):  # type: ignore[misc]
        """databroker's search results, read by this ``Broker`` (databroker's own
        ``Results`` makes each header a plain databroker ``Broker``'s)."""

        def __init__(self, catalog: Any, broker: Any) -> None:
            super().__init__(catalog)
            self._broker = broker

        def __iter__(self) -> Iterator[Any]:
            for _uid, run in self._catalog.items():
                yield SmeflowHeader(run, self._broker)

    class SmeflowBroker(Broker):  # type: ignore[misc]
        """databroker's v1 ``Broker``; a stream without events is an empty table."""

        def __getitem__(self, key: Any) -> Any:
            found = super().__getitem__(key)
            if isinstance(found, list):
                return [SmeflowHeader(h.v2, self) for h in found]
            return SmeflowHeader(found.v2, self)

        def __call__(self, text_search: Any = None, **kwargs: Any) -> Any:
            found = super().__call__(text_search, **kwargs)
            return SmeflowResults(found._catalog, type(self)(found._catalog))

        def get_table(self, headers: Any, stream_name: str = "primary", fields: Any = None,
                      fill: Any = False, **kwargs: Any) -> Any:
            headers = headers if isinstance(headers, list | tuple) else [headers]
            tables = []
            for header in headers:
                descriptors = [d for d in header.descriptors if d.get("name") == stream_name]
                table = None
                if descriptors:
                    table = super().get_table(header, stream_name=stream_name,
                                              fields=fields, fill=fill, **kwargs)
                if table is None or len(table) == 0:
                    table = empty_table(descriptors, fields, fill)
                tables.append(table)
            if not tables:
                return super().get_table(headers, stream_name=stream_name, fields=fields,
                                         fill=fill, **kwargs)
            result = tables[0] if len(tables) == 1 else pandas.concat(tables)
            result.index.name = "seq_num"
            return result

    for cls, name in ((SmeflowBroker, "Broker"), (SmeflowHeader, "Header"),
                      (SmeflowResults, "Results")):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__ = name
    return SmeflowBroker


def empty_table(descriptors: list[Any], fields: Any, fill: Any) -> Any:
    """The table of a stream without events: the columns its descriptors name (after
    ``fields`` and ``fill``, as databroker chooses them), or none without a descriptor."""
    import numpy as np
    import pandas

    if not descriptors:
        table = pandas.DataFrame()
    else:
        keys: dict[str, Any] = {}
        for descriptor in descriptors:
            keys.update(descriptor.get("data_keys", {}))
        wanted = set(fields or [])
        columns: dict[str, Any] = {}
        for name, key in keys.items():
            if (wanted and name not in wanted) or (key.get("external") and not fill):
                continue
            scalar = not key.get("shape") and not key.get("external")
            dtype = np.dtype(key["dtype_numpy"]) if scalar and key.get("dtype_numpy") \
                else np.dtype(object)
            columns[name] = pandas.Series([], dtype=dtype)
        columns["time"] = pandas.Series([], dtype="datetime64[ns]")
        table = pandas.DataFrame(columns)
    table.index = pandas.RangeIndex(1, 1, name="seq_num")
    return table


__all__ = ["broker_class", "empty_table"]
