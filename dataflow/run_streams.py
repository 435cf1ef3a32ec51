"""A run's event stream read as databroker documents it: each column says its device and
its units.

databroker's tutorial ("Get Metadata", "What configuration was used?") reads a column's
device from the Dataset ``run.primary.read()`` returns — ``da.attrs.get("object")`` is
``'quadem1'`` — to find that device's configuration (``run.primary.config["quadem1"]``);
databroker 2's own reader puts ``{"object": ..., "units_string": ...}`` on every column
(``databroker/mongo_normalized.py``). bluesky-tiled-plugins 2.0.12's stream of a SQL
catalog (``BlueskyEventStreamV3``, what smeflow's catalog holds) answers every column
with empty ``attrs``: ``attrs.get("object")`` is ``None`` without an error, and a motor's
``units`` (``'mm'`` in its descriptor) is lost.

``EventStream`` is that stream, whose ``read()`` adds the two attributes from the stream's
descriptor (``data_keys``: ``object_name``, ``units``) as databroker 2 names them. Every
client smeflow opens maps bluesky's ``BlueskyEventStream`` spec to it
(``dataflow.tiled_index.numpy_structure_clients``); a stream of a non-SQL catalog stays
bluesky's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any


def with_attrs(dataset: Any, data_keys: Mapping[str, Any]) -> Any:
    """``dataset`` (an xarray Dataset of a stream) with ``object`` and ``units_string`` on
    each column its descriptor's ``data_keys`` describe, as databroker 2 sets them."""
    for name, variable in dataset.data_vars.items():
        key = data_keys.get(name)
        if not isinstance(key, Mapping):
            continue
        if isinstance(key.get("object_name"), str):
            variable.attrs["object"] = key["object_name"]
        if isinstance(key.get("units"), str) and key["units"]:
            variable.attrs["units_string"] = key["units"]
    return dataset


@functools.cache
def stream_class() -> type[Any]:
    """``EventStream``, made once on first use (it imports bluesky-tiled-plugins)."""
    from bluesky_tiled_plugins.clients.bluesky_event_stream import (
        BlueskyEventStream,
        BlueskyEventStreamV3,
    )

    class EventStream(BlueskyEventStreamV3):  # type: ignore[misc]
        """bluesky's stream of a SQL catalog; ``read()`` names each column's device and
        units (module docstring)."""

        def __new__(cls, context: Any, *, item: Any, structure_clients: Any,
                    **kwargs: Any) -> Any:
            if not BlueskyEventStream._is_sql(item):  # a MongoDB-era stream: bluesky's
                return BlueskyEventStream(context, item=item,
                                          structure_clients=structure_clients, **kwargs)
            return super().__new__(cls, context, item=item,
                                   structure_clients=structure_clients, **kwargs)

        def read(self, *args: Any, **kwargs: Any) -> Any:
            return with_attrs(super().read(*args, **kwargs),
                              self.metadata.get("data_keys") or {})

    EventStream.__module__ = __name__
    EventStream.__qualname__ = EventStream.__name__ = "EventStream"
    return EventStream


__all__ = ["stream_class", "with_attrs"]
