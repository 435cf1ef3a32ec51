"""The catalog-of-runs client a smeflow Tiled profile names, so that databroker's
``Broker.named(NAME)``, ``databroker.catalog[NAME]`` and ``tiled.client.from_profile(NAME)``
read the server as smeflow's own clients do.

Without it a profile's client is Tiled's and bluesky's: its arrays read ``frames[[0, 2]]``
as ``frames[0, 2]`` (row 2 of frame 0, no error) and ``frames[[-1]]`` without its axis
(``dataflow.tiled_index``), and a dict query finds nothing (``dataflow.broker``). A Tiled
profile may map a spec to a client class by import path (``structure_clients``, Tiled's
profile reference: "map each structure family or spec you want to support to an import
path"); ``smeflow catalog profile`` writes::

    structure_clients:
      CatalogOfBlueskyRuns: "dataflow.profile_client:Runs"

The profile's node is the server's ``raw`` container, whose spec is
``CatalogOfBlueskyRuns``: Tiled makes it a ``Runs``, which then hands every node below it
smeflow's structure clients (``numpy_structure_clients``: numpy's indexing for arrays) in
place of the profile's one-entry mapping. A Python without smeflow cannot import it and
``from_profile`` fails with ``ModuleNotFoundError: No module named 'dataflow'``, never a
wrong answer.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def runs_class() -> type[Any]:
    """``Runs``: smeflow's catalog of runs (``dataflow.broker.dict_searching``'s class)
    that gives the nodes below it smeflow's structure clients."""
    from .broker import _dict_search_runs
    from .tiled_index import numpy_structure_clients

    base = _dict_search_runs()

    class Runs(base):  # type: ignore[valid-type,misc]
        """bluesky's catalog of runs, read with smeflow's structure clients."""

        def __init__(self, context: Any, *, item: Any, structure_clients: Any,
                     **kwargs: Any) -> None:
            if not hasattr(structure_clients, "set"):  # a profile's plain mapping
                structure_clients = numpy_structure_clients()
            super().__init__(context, item=item, structure_clients=structure_clients,
                             **kwargs)

    Runs.__module__ = __name__
    Runs.__qualname__ = Runs.__name__ = "Runs"
    return Runs


def __getattr__(name: str) -> Any:
    """``Runs``, made on first use (importing this module imports no Tiled)."""
    if name == "Runs":
        return runs_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PROFILE_CLIENTS = {"CatalogOfBlueskyRuns": f"{__name__}:Runs"}
"""The ``structure_clients`` of a smeflow profile."""

__all__ = ["PROFILE_CLIENTS", "runs_class"]
