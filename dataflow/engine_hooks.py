"""Adding smeflow's RunEngine preprocessors (``dataflow.run_files``, ``dataflow.fly_streams``)
to a RunEngine, each once however often a catalog subscribes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["add_preprocessor"]


def add_preprocessor(RE: Any, preprocessor: Callable[..., Any]) -> None:
    """Append ``preprocessor`` to ``RE.preprocessors`` unless it is there already (an
    object without that list, such as a plain callback host, is left alone)."""
    preprocessors = getattr(RE, "preprocessors", None)
    if preprocessors is not None and preprocessor not in preprocessors:
        preprocessors.append(preprocessor)
