"""Fixtures of the ``sme`` tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def compiled_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A fresh compiled-simulation cache folder for one test module
    (``$SMEFLOW_CACHE_DIR``): its tests compile from scratch, apart from the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SMEFLOW_CACHE_DIR", str(tmp_path_factory.mktemp("smeflow-cache")))
    yield
    mp.undo()
