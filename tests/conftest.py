"""Shared pytest configuration of the smeflow test suite.

Hypothesis: every property test runs under the ``smeflow`` profile unless its own
``@settings`` say otherwise: fixed examples (``derandomize``: a CI failure reproduces
from the test name alone), no example database written into the tree, no deadline and
no "too slow" health check (CI machines are shared and noisy). ``SMEFLOW_HYPOTHESIS=explore``
turns the randomisation back on for a local search.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent

settings.register_profile("smeflow", derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("explore" if os.environ.get("SMEFLOW_HYPOTHESIS") == "explore"
                      else "smeflow")


@pytest.fixture
def repo_root() -> Path:
    """The repository's top folder."""
    return ROOT
