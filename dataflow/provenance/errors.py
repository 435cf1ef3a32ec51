"""The errors of the provenance package: each prints as one line naming what was wrong."""

from __future__ import annotations

from ..catalog import CatalogError


class ProvenanceError(CatalogError):
    """A provenance record, key, URI or file that cannot be used: printed as one line."""


class KeyFileError(ProvenanceError, ValueError):
    """A signing or public key file that is missing, malformed, or unsafe."""
