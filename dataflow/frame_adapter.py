"""The catalog's reader of HDF5 frames: Tiled's own, refusing frames that are not on disk.

Tiled reads an external HDF5 dataset lazily through dask, in SWMR mode: a truncated file,
a chunk that was never written, or a flipped bit come back as zeros or changed pixels
with no error. ``checked_hdf5_adapter`` derives from Tiled's HDF5 reader a class whose
array reads first check, for the frames a request touches, that every byte is on disk
(``dataflow.integrity.check_file_size`` and ``check_frames``) and afterwards compare whole
frames with the CRC-32 the writer stored (``verify_read``). A damaged file is answered
with HTTP 422 naming the file and the frame (any Tiled client raises it as an error); an
h5py failure inside the read is reported the same way instead of a bare server error. A
frame index past the frames the catalog announces is the client's mistake: HTTP 400 saying
how many frames the stream has, as Tiled answers a block index out of range. A read whose
answer would exceed Tiled's ``response_bytesize_limit`` (300 MB) is refused from the
array's shape and dtype before anything is read, with Tiled's own HTTP 400 (Tiled checks
the size of what it has read).

A file its writer closed but that is shorter than its superblock says (the disk filled
up) is first opened through ``dataflow.cut_short.CutShortFile`` (without SWMR, so lost
metadata fails at once instead of being retried for minutes); every read of it then
verifies each frame it touches against its stored CRC-32 (``verify_stored``), so the
frames flushed intact before the disk filled up are served and the others refused.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from .cut_short import CutShortFile, verify_stored
from .integrity import (
    HDF5ReadError,
    check_file_size,
    check_frames,
    frame_range,
    verify_read,
    whole_frames,
)
from .regular_file import NotRegularFileError, h5_open

T = TypeVar("T")
DAMAGED = 422


def _refuse(detail: str) -> Exception:
    from fastapi import HTTPException

    return HTTPException(status_code=DAMAGED, detail=detail)


def _out_of_range(i: int, n: int) -> Exception:
    """A frame index past either end: the client's mistake (400), not missing data."""
    from fastapi import HTTPException

    return HTTPException(status_code=400, detail=f"index {i} out of range: the stream has "
                                                 f"{n} frame{'' if n == 1 else 's'}")


def _rebase(index: tuple[Any, ...], frames: range, n: int) -> tuple[Any, ...]:
    """``index`` into ``n`` frames, as an index into the stack of ``frames`` alone (the
    range ``integrity.frame_range`` gives for it)."""
    first = index[0] if index else Ellipsis
    if isinstance(first, int | np.integer):
        i = int(first)
        return (i + n - frames.start if i < 0 else i - frames.start, *index[1:])
    if isinstance(first, slice):
        picked = range(n)[first]
        stop = picked.stop - frames.start
        return (slice(picked.start - frames.start, stop if stop >= 0 else None, picked.step),
                *index[1:])
    return index  # Ellipsis, arrays: ``frames`` is every frame


@dataclass(frozen=True)
class _FrameFile:
    path: Path
    dataset: str
    swmr: bool
    cut_short: Any = None
    """The superblock of a file cut short after its writer closed it, else None."""


def _refuse_over_limit(structure: Any, index: tuple[Any, ...]) -> None:
    """Tiled's refusal of an answer over ``response_bytesize_limit`` (HTTP 400, its
    words), from the array's shape and dtype before anything is read: Tiled checks the
    size of what it read (``array/full``), after reading it whole."""
    from fastapi import HTTPException
    from tiled.server.settings import get_settings

    limit = get_settings().response_bytesize_limit
    try:  # (the selection's shape on a zero-byte view; a bad index is the read's to name)
        shape = np.broadcast_to(np.empty((), np.bool_), tuple(structure.shape))[index].shape
    except (IndexError, TypeError, ValueError):
        return
    size = math.prod(shape) * structure.data_type.to_numpy_dtype().itemsize
    if size > limit:
        raise HTTPException(status_code=400, detail=(
            f"Response would exceed {limit}. Use slicing ('?slice=...') to request smaller "
            f"chunks. (The selection {list(shape)} is {size} bytes.)"))


def checked_hdf5_adapter(base: type[Any]) -> type[Any]:
    """A subclass of Tiled's HDF5 reader ``base`` (``tiled.adapters.hdf5.HDF5Adapter``)
    whose arrays are ``CheckedFrames``."""
    from tiled.structures.core import StructureFamily

    checked = _checked_frames_class()

    def from_catalog(cls: Any, data_source: Any, node: Any, /, *args: Any,
                     **kwargs: Any) -> Any:
        if data_source.structure_family == StructureFamily.array:
            return checked.from_catalog(data_source, node, *args, **kwargs)
        return super(adapter, cls).from_catalog(data_source, node, *args, **kwargs)

    adapter: type[Any] = type(f"Checked{base.__name__}", (base,),
                   {"from_catalog": classmethod(from_catalog), "__module__": __name__})
    return adapter


_Located = tuple[_FrameFile, range, int, "np.ndarray[Any, Any] | None"]
_CHECKED: list[type[Any]] = []


def _checked_frames_class() -> type[Any]:
    """``CheckedFrames``, defined once on first use (Tiled is imported only then)."""
    if _CHECKED:
        return _CHECKED[0]
    from tiled.adapters.hdf5 import HDF5ArrayAdapter
    from tiled.ndslice import NDSlice
    from tiled.utils import path_from_uri

    EVERYTHING = NDSlice(...)

    class CheckedFrames(HDF5ArrayAdapter):  # type: ignore[misc]
        """Tiled's HDF5 array reader, checking the frames of every read."""

        _files: Sequence[_FrameFile] = ()
        _plain = True

        @classmethod
        def from_catalog(cls, data_source: Any, node: Any, /, dataset: str | None = None,
                         slice: Any = None, squeeze: bool = False, swmr: bool = True,
                         libver: str = "latest", locking: Any = None) -> Any:
            assets = data_source.assets
            uris = [a.data_uri for a in assets if a.parameter == "data_uris"] \
                or [assets[0].data_uri]
            files = []
            for u in uris:
                path = Path(path_from_uri(u))
                sb = _guard(partial(check_file_size, path, allow_cut_short=True), path, "open")
                f = _FrameFile(path, dataset or "/", swmr, sb if sb.cut_short else None)
                if f.cut_short is not None:
                    with _open(f):  # its metadata and checksums are readable
                        pass
                files.append(f)
            adapter = _guard(lambda: super(CheckedFrames, cls).from_catalog(
                data_source, node, dataset=dataset, slice=slice, squeeze=squeeze, swmr=swmr,
                libver=libver, locking=locking), files[0].path, "open")
            adapter._files = files
            adapter._plain = not slice and not squeeze
            return adapter

        def read(self, slice: Any = EVERYTHING) -> Any:
            index = tuple(slice) if slice else (Ellipsis,)
            _refuse_over_limit(self._structure, index)
            n = int(self._structure.shape[0]) if self._structure.shape else 0
            return self._checked(index, lambda: super(CheckedFrames, self).read(slice),
                                 lambda frames, stack: stack[_rebase(index, frames, n)])

        def read_block(self, block: Any, slice: Any = EVERYTHING) -> Any:
            outer = block.slice_from_chunks(self._structure.chunks)[0]
            inner = tuple(slice) if slice else ()
            if inner and not (len(inner) == 1 and inner[0] is Ellipsis):
                index: tuple[Any, ...] = (outer, Ellipsis)  # checked, not verified
                whole = False
            else:
                index, whole = (outer,), True
            rest = tuple(block.slice_from_chunks(self._structure.chunks)[1:])
            return self._checked(index, lambda: super(CheckedFrames, self).read_block(
                block, slice), lambda _, stack: stack[(np.s_[:], *rest)][inner],
                verify=whole)

        def _checked(self, index: tuple[Any, ...], read: Callable[[], Any],
                     select: Callable[[range, Any], Any], verify: bool = True) -> Any:
            """``read()`` once the frames it touches are checked, and verified after.
            When a file is cut short, the frames are read, verified and stacked here
            instead, and ``select(frames, stack)`` picks what ``read()`` would give."""
            n = int(self._structure.shape[0]) if self._structure.shape else 0
            first = index[0] if index else Ellipsis
            if isinstance(first, int | np.integer) and not -n <= int(first) < n:
                raise _out_of_range(int(first), n)
            frames = frame_range(index, n) if self._plain else range(n)
            located = self._locate(frames)
            if frames and self._plain and any(f.cut_short for f, *_ in located):
                return select(frames, self._stack(located))
            data = _guard(read, self._files[0].path if self._files else Path("?"), "read")
            shape = tuple(int(v) for v in self._structure.shape[1:])
            if verify and self._plain and whole_frames(index, shape):
                self._verify(located, frames, np.asarray(data))
            return data

        def _locate(self, frames: range) -> list[_Located]:
            """Check the part of ``frames`` each file holds; returns (file, its frames,
            position of its first frame in ``frames``, its frames read and verified when
            the file is cut short)."""
            located: list[_Located] = []
            offset = 0
            for f in self._files:
                with _open(f) as ds:
                    count = int(ds.shape[0])
                    local = range(max(frames.start - offset, 0),
                                  max(min(frames.stop - offset, count), 0))
                    if local:
                        _guard(partial(check_frames, ds, f.path, local), f.path, "check")
                        verified = None if f.cut_short is None else _guard(
                            partial(verify_stored, ds, f.path, local), f.path, "verify")
                        located.append((f, local, offset + local.start - frames.start,
                                        verified))
                offset += count
            if frames and frames.stop > offset and all(_closed(f) for f in self._files):
                last = self._files[-1].path
                raise _refuse(f"{last}: frame {offset} was never written (the run's files "
                              f"hold {offset} frames, the catalog announces "
                              f"{self._structure.shape[0]})")
            return located

        def _stack(self, located: list[_Located]) -> Any:
            """The frames located, in order (read now where not read already)."""
            parts = []
            for f, local, _, verified in located:
                if verified is None:
                    with _open(f) as ds:
                        verified = _guard(partial(_read_frames, ds, local), f.path, "read")
                parts.append(verified)
            return parts[0] if len(parts) == 1 else np.concatenate(parts)

        def _verify(self, located: list[_Located], frames: range, data: Any) -> None:
            stack = data[np.newaxis] if data.ndim == 2 else data
            for f, local, at, _ in located:
                with _open(f) as ds:
                    part = stack[at:at + len(local)]
                    index = slice(local.start, local.stop)
                    _guard(partial(verify_read, ds, f.path, index, part), f.path, "verify")

    _CHECKED.append(CheckedFrames)
    return CheckedFrames


class _open:
    """The frame dataset of a file, opened read-only (SWMR as the catalog reads it; a
    file cut short through ``CutShortFile``)."""

    def __init__(self, f: _FrameFile) -> None:
        self.f = f
        self.file: h5py.File | CutShortFile | None = None

    def __enter__(self) -> h5py.Dataset:
        if self.f.cut_short is not None:
            cut = _guard(partial(CutShortFile, self.f.path, self.f.cut_short), self.f.path,
                         "open")
            try:
                ds = _guard(partial(cut.dataset, self.f.dataset), self.f.path, "open")
            except BaseException:
                cut.close()
                raise
            self.file = cut
            return ds
        file: h5py.File | None = None
        try:
            file = h5_open(self.f.path, swmr=self.f.swmr)
            node = file[self.f.dataset]
        except NotRegularFileError as exc:
            raise _refuse(str(exc)) from None
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            if file is not None:
                file.close()
            raise _refuse(f"{self.f.path}: cannot open frame dataset {self.f.dataset!r}: "
                          f"{_first_line(exc)}") from None
        self.file = file
        if not isinstance(node, h5py.Dataset):
            file.close()
            raise _refuse(f"{self.f.path}: {self.f.dataset!r} is not a dataset")
        return node

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()


def _read_frames(ds: h5py.Dataset, frames: range) -> np.ndarray[Any, Any]:
    return np.asarray(ds[frames.start:frames.stop])


def _closed(f: _FrameFile) -> bool:
    """The file's writer closed it (no writer will add frames)."""
    try:
        from .integrity import read_superblock

        return not read_superblock(f.path).open_for_write
    except HDF5ReadError:
        return True


SWMR_CONFLICT_WAIT_S = 2.0
"""How long an open waits for another handle of this process that has the file open
without SWMR (a reader's brief checksum check, ``dataflow.hdf5_read``) to close it: HDF5
shares one open file per process and refuses a second open with the other SWMR flag."""


def _guard(call: Callable[[], T], path: Path, what: str) -> T:
    """``call()``, with damaged data and h5py failures answered as HTTP 422 (an open that
    meets this process's own non-SWMR handle of the file is tried again for up to
    ``SWMR_CONFLICT_WAIT_S``: the catalog may serve in the process that reads the file)."""
    deadline = time.monotonic() + SWMR_CONFLICT_WAIT_S
    while True:
        try:
            return call()
        except (HDF5ReadError, NotRegularFileError, OSError, RuntimeError) as exc:
            if "SWMR read access flag" in str(exc):
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                raise _refuse(f"{path}: cannot {what} frames: another handle in this "
                              "process has the file open without SWMR (h5py.File(path) "
                              "in a notebook or script serving this catalog, say), and "
                              "HDF5 opens a file once per process; close that handle, or "
                              "open the file with h5py.File(path, 'r', swmr=True)") from None
            if isinstance(exc, (HDF5ReadError, NotRegularFileError)):  # IncompleteData…
                raise _refuse(str(exc)) from None
            raise _refuse(f"{path}: cannot {what} frames (corrupt file?): "
                          f"{_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.replace("Unable to synchronously ", "unable to ")


__all__ = ["checked_hdf5_adapter"]
