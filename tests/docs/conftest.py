"""Per-document namespaces of the snippet runner (tests/docs/test_snippets.py).

``doc_<stem>`` is the namespace the python blocks of ``<stem>.md`` run in. A document sets
up what its snippets need in its own blocks, as a reader would; these fixtures only close
what the snippets leave running (motor and beam-monitor threads, a live reducer's worker,
a server) once the document has run, whether it passed or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def _close(namespace: dict[str, Any], *names: str) -> None:
    for name in names:
        thing = namespace.get(name)
        if thing is not None:
            thing.close()


@pytest.fixture
def doc_reduction() -> Iterator[dict[str, Any]]:
    """docs/reduction.md: a beamline ``bl`` and a ``LiveReducer`` ``live``."""
    namespace: dict[str, Any] = {}
    yield namespace
    _close(namespace, "live", "bl", "catalog")


@pytest.fixture
def doc_provenance() -> Iterator[dict[str, Any]]:
    """docs/provenance.md: a beamline ``bl``."""
    namespace: dict[str, Any] = {}
    yield namespace
    _close(namespace, "bl", "catalog")


@pytest.fixture
def doc_catalog_server() -> Iterator[dict[str, Any]]:
    """docs/catalog-server.md: a ``beamline`` and the in-process ``server``."""
    namespace: dict[str, Any] = {}
    yield namespace
    _close(namespace, "beamline")
    server = namespace.get("server")
    if server is not None and server.running:
        server.stop()
