"""The base of the catalog's errors, in a module of its own so that every part of
``dataflow`` can raise it without importing the catalog."""

from __future__ import annotations

from typing import Any


class CatalogError(Exception):
    """A catalog request that cannot be answered: printed as one line by the CLI."""


def refusal(exc: BaseException) -> str | None:
    """The catalog's own words when ``exc`` is its refusal of a request (a Tiled
    ``ClientError``: an HTTP error answer with a ``detail``, e.g. 422 naming a damaged
    frame file), else None: what a command prints as the error instead of the client's
    exception with the request's URL."""
    response: Any = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if response is None or not isinstance(status, int) or not 400 <= status < 600:
        return None
    try:
        detail = response.json().get("detail")
    except Exception:  # (an answer that is not JSON: no words of the catalog's)
        return None
    if not isinstance(detail, str) or not detail.strip():
        return None
    return f"{detail.strip()} (the catalog's answer, HTTP {status})"


__all__ = ["CatalogError", "refusal"]
