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
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def broker_class() -> type[Any]:
    """databroker's ``Broker`` with ``get_table`` answering streams without events (made
    once, on first use: it imports databroker)."""
    import pandas  # type: ignore[import-untyped]
    from databroker.v1 import Broker

    class SmeflowBroker(Broker):  # type: ignore[misc]
        """databroker's v1 ``Broker``; a stream without events is an empty table."""

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

    SmeflowBroker.__module__ = __name__
    SmeflowBroker.__qualname__ = SmeflowBroker.__name__ = "Broker"
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
