"""The base of the catalog's errors, in a module of its own so that every part of
``dataflow`` can raise it without importing the catalog."""

from __future__ import annotations


class CatalogError(Exception):
    """A catalog request that cannot be answered: printed as one line by the CLI."""


__all__ = ["CatalogError"]
