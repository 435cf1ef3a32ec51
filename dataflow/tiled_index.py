"""numpy's indexing for the arrays of smeflow's Tiled clients (frames above all).

Tiled's array client (tiled 0.2.20) turns a list index into a tuple index: ``NDSlice``
unpacks a single list argument as it unpacks a tuple, so ``frames[[0, 2]]`` reads
``frames[0, 2]`` — row 2 of frame 0 instead of frames 0 and 2, a wrong answer without an
error — and ``frames[[-1]]`` the last frame without its axis. ``frames[True]`` reads frame
1. An index array (``np.array([0, 2])``, a boolean mask) is refused with a ``TypeError``
about ``NDSlice``; so is ``np.int64(1)``. The server cannot tell: it receives the tuple.

``IndexedArrayClient`` answers every index as numpy does (numpy's "Indexing on ndarrays":
integer and boolean arrays, lists, several of them broadcast together, ``None``,
``Ellipsis``, numpy integer scalars). It reads only what the index touches — ints and
slices as Tiled reads them, each index array as the runs of consecutive positions it
names — and lets numpy apply the index to that, so the answer is numpy's by
construction; an index out of range or of a wrong type is numpy's ``IndexError``, raised
before anything is read. ``numpy_structure_clients()`` is Tiled's default ("numpy")
dispatch with this client for arrays; every client smeflow opens (``Catalog``,
``RemoteCatalog``, Dask workers reading frames from a server) uses it. A plain
``tiled.client.from_uri`` outside smeflow keeps Tiled's own behaviour: pass it
``structure_clients=numpy_structure_clients()``.
"""

from __future__ import annotations

import builtins
import copy
from typing import Any

import numpy as np

_INDEXED: list[type[Any]] = []


def numpy_structure_clients() -> Any:
    """Tiled's "numpy" structure clients (with the ones its entry points register, e.g.
    bluesky's runs), arrays answered by ``IndexedArrayClient``, a run's streams by
    ``dataflow.run_streams.EventStream``."""
    from tiled.client.container import DEFAULT_STRUCTURE_CLIENT_DISPATCH, Container

    from .run_streams import stream_class
    from .tiled_app import fix_structure_clients_copy

    fix_structure_clients_copy()  # (a real copy: the defaults stay Tiled's)
    if Container.STRUCTURE_CLIENTS_FROM_ENTRYPOINTS is None:
        Container.discover_clients_from_entrypoints()
    clients = copy.copy(DEFAULT_STRUCTURE_CLIENT_DISPATCH["numpy"])
    indexed = indexed_array_client()
    clients.set("array", lambda: indexed)
    clients.set("BlueskyEventStream", stream_class)  # columns name device and units
    return clients


def indexed_array_client() -> type[Any]:
    """``IndexedArrayClient``, defined once on first use (Tiled is imported only then)."""
    if _INDEXED:
        return _INDEXED[0]
    from tiled.client.array import ArrayClient

    class IndexedArrayClient(ArrayClient):  # type: ignore[misc]
        """Tiled's array client, indexed as a numpy array is (module docstring)."""

        def __getitem__(self, key: Any) -> Any:
            index = key if isinstance(key, tuple) else (key,)
            if all(_basic(p) for p in index) and sum(p is Ellipsis for p in index) < 2:
                plain = tuple(int(p) if isinstance(p, np.integer) else p for p in index)
                return super().__getitem__(plain if isinstance(key, tuple) else plain[0])
            reads, applied = plan(index, tuple(int(n) for n in self.shape))
            return _fetch(lambda parts: np.asarray(super(IndexedArrayClient, self).read(
                parts)), reads)[applied]

    IndexedArrayClient.__module__ = __name__
    IndexedArrayClient.__qualname__ = "IndexedArrayClient"
    _INDEXED.append(IndexedArrayClient)
    return IndexedArrayClient


def _basic(part: Any) -> bool:
    """An index part Tiled reads as numpy does: an int (not a bool), a slice, ``...``."""
    if isinstance(part, bool | np.bool_):
        return False
    return isinstance(part, int | np.integer | builtins.slice) or part is Ellipsis


Read = builtins.slice | list[builtins.slice]
"""What to read along one axis: a slice, or the runs of positions an index array names."""


def plan(index: tuple[Any, ...], shape: tuple[int, ...]) -> tuple[list[Read], tuple[Any, ...]]:
    """For numpy index ``index`` into an array of ``shape``: what to read along each axis
    (every axis kept) and the index that, applied to what was read, gives numpy's answer.

    Raises ``IndexError`` as numpy does for an index that does not fit ``shape``."""
    parts = [_as_index(p) for p in index]
    if sum(p is Ellipsis for p in parts) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(_axes(p) for p in parts if p is not Ellipsis)
    if used > len(shape):
        raise IndexError(f"too many indices for array: array is {len(shape)}-dimensional, "
                         f"but {used} were indexed")
    # The axes no part names are read whole. A ``...`` stays in the applied index even when
    # it stands for no axis: numpy then still counts the advanced indices on either side
    # of it as separated, and puts their axes first.
    fill = [builtins.slice(None)] * (len(shape) - used)
    reads: list[Read] = []
    applied: list[Any] = []
    for part in parts:
        axis = len(reads)
        if part is Ellipsis:
            reads.extend(fill)
            applied.append(Ellipsis)
        elif part is None or (isinstance(part, np.ndarray) and part.ndim == 0
                            and part.dtype == np.bool_):
            applied.append(part)  # a new axis: nothing read for it
        elif isinstance(part, builtins.slice):
            reads.append(part)
            applied.append(builtins.slice(None))
        elif isinstance(part, int):
            i = _in_range(np.asarray(part), axis, shape[axis])
            reads.append(builtins.slice(int(i), int(i) + 1))
            applied.append(0)
        elif part.dtype == np.bool_:
            size = shape[axis:axis + part.ndim]
            for k, (have, want) in enumerate(zip(part.shape, size, strict=True)):
                if have != want:
                    raise IndexError(f"boolean index did not match indexed array along "
                                     f"axis {axis + k}; size of axis is {want} but size of "
                                     f"corresponding boolean axis is {have}")
            for k, positions in enumerate(part.nonzero()):
                picked, local = _runs(positions, axis + k, shape[axis + k])
                reads.append(picked)
                applied.append(local)
        else:
            picked, local = _runs(part, axis, shape[axis])
            reads.append(picked)
            applied.append(local)
    if not any(p is Ellipsis for p in parts):
        reads.extend(fill)
    return reads, tuple(applied)


def _as_index(part: Any) -> Any:
    """One part of an index as numpy sees it: int, slice, ``...``, ``None``, or an
    integer or boolean array (``IndexError`` for anything else, as numpy)."""
    if part is None or part is Ellipsis or isinstance(part, builtins.slice):
        return part
    if isinstance(part, int | np.integer) and not isinstance(part, bool | np.bool_):
        return int(part)
    if isinstance(part, list | tuple) and len(part) == 0:
        return np.zeros(0, dtype=np.intp)
    try:
        array = np.asarray(part)
    except (ValueError, TypeError):
        array = np.asarray(None)
    if array.dtype.kind in "biu":  # (not timedelta64, which numpy's issubdtype calls integer)
        return array
    if isinstance(part, np.ndarray):
        raise IndexError("arrays used as indices must be of integer (or boolean) type")
    raise IndexError("only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) "
                     "and integer or boolean arrays are valid indices")


def _axes(part: Any) -> int:
    """How many axes of the array an index part consumes."""
    if part is None:
        return 0
    if isinstance(part, np.ndarray):
        return part.ndim if part.dtype == np.bool_ else 1
    return 1


def _in_range(positions: np.ndarray[Any, Any], axis: int, size: int) -> np.ndarray[Any, Any]:
    bad = (positions < -size) | (positions >= size)
    if bad.any():
        raise IndexError(f"index {int(positions[bad].flat[0])} is out of bounds for axis "
                         f"{axis} with size {size}")
    return np.where(positions < 0, positions + size, positions)


def _runs(positions: np.ndarray[Any, Any], axis: int,
          size: int) -> tuple[list[builtins.slice], np.ndarray[Any, Any]]:
    """The runs of consecutive positions an integer index array names along an axis of
    ``size``, and the index array rebased onto those runs read one after another."""
    absolute = _in_range(positions.astype(np.intp), axis, size)
    unique = np.unique(absolute)
    breaks = np.flatnonzero(np.diff(unique) != 1) + 1
    runs = [builtins.slice(int(run[0]), int(run[-1]) + 1)
            for run in np.split(unique, breaks) if len(run)]
    return runs, np.searchsorted(unique, absolute)


def _fetch(read: Any, reads: list[Read]) -> np.ndarray[Any, Any]:
    """``reads`` (one per axis) read with ``read(tuple of slices)``; an axis read as runs is
    read run by run and joined along that axis."""
    for axis, part in enumerate(reads):
        if isinstance(part, list):
            if not part:
                return _fetch(read, [*reads[:axis], builtins.slice(0, 0), *reads[axis + 1:]])
            pieces = [_fetch(read, [*reads[:axis], run, *reads[axis + 1:]]) for run in part]
            return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=axis)
    result: np.ndarray[Any, Any] = read(tuple(reads))
    return result


__all__ = ["indexed_array_client", "numpy_structure_clients", "plan"]
