"""The reductions that exist (``REDUCTIONS``) and the error of every reduction step."""

from __future__ import annotations

__all__ = ["REDUCTIONS", "ReductionError"]

REDUCTIONS = ("tomo_fbp", "azint1d")


class ReductionError(ValueError):
    """A run that cannot be reduced (names the run and the missing or bad key)."""
