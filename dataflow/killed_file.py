"""Close a frame file whose writer was killed, so that every HDF5 reader opens it.

A frame file is in SWMR mode from its creation on (``dataflow.hdf5``). A writer killed
mid-scan leaves it as its last flush made it: the superblock's consistency flags still
say "open for write", and NXmx's ``/entry/end_time`` is still the empty string the
writer fills in at its close. h5py (without ``swmr=True``) and nexusformat's ``nxload``
then refuse the file ("file is already open for write (may use <h5clear file> to clear
file consistency flags)"), and DIALS' ``nxmx`` raises ``ValueError: ISO string too
short`` on the entry's ``end_time``.

``close_killed_file`` does what HDF5's ``h5clear -s --increment=0`` does, through the
library h5py itself uses (``H5Pset`` of the private file-access property
``clear_status_flags`` that ``h5clear`` sets, an ``H5F_ACC_RDWR`` open, and
``H5Fincrement_filesize(file, 0)``), then removes the empty ``end_time``: NXmx's
definition says of it "If the data collection aborts or otherwise prevents accurate
recording of the end_time, this field should be omitted" (``end_time_estimated`` stays).
An empty ``start_time`` — a fly acquisition's file, whose writer fills it with its first
frame, killed before any frame came — goes too: no frame was collected, so there is no
start to record, and DIALS' reader raises on the empty string as on the end's.

The increment is not optional. A SWMR writer records the end of allocated space (EOA) in
the superblock once, when SWMR starts; everything it writes afterwards lies beyond that
address. HDF5 truncates a file to its EOA when it closes it, so clearing the flags alone
(``h5clear -s``) cuts a killed scan's file back to the size it had before its first frame
— every frame is lost (measured: 84849 → 19313 bytes for 6 frames of 64×64).
``H5Fincrement_filesize(file, 0)`` sets the EOA to the file's size first.

The work is done on a copy in the same folder, compared with the file as it was — every
dataset and every attribute bit for bit (of a frame dataset, its intact frames), the
empty ``end_time`` (and ``start_time``) alone gone — then renamed over it: a repair that
is killed or fails leaves the original as it was. ``before_rename`` is called with what
will have changed once the copy is checked and before the rename, so that a caller can
record it first (``dataflow.repair`` does: a repair killed after the rename still knows
the digest the file had before). A file some process still has open — this
process's HDF5 handles (``open_in_process``), or a process of this machine whose open
files list it (``/proc/<pid>/fd``, as ``fuser`` finds them: the user's own processes, or
every process when run as root) — is refused: a writer alive would go on writing into the
renamed-away file, a reader would read a file changed under it. A writer running as
another user (unless repair runs as root) or on another machine cannot be seen from here.
One repair at a time closes a folder's files (a lock on the folder).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .catalog_db import folder_lock
from .errors import CatalogError
from .hdf5_files import file_sha256, open_in_process
from .integrity import HDF5ReadError, read_superblock, write_sidecar

_BLOCK_BYTES = 16 << 20
"""Frames are compared in blocks of about this many bytes."""
_SUFFIX = ".closing"
"""The copy's name: ``<file>.closing`` beside the file."""


@dataclass(frozen=True)
class ClosedFile:
    """What ``close_killed_file`` changed in one file."""

    path: str
    sha256_before: str
    sha256: str
    frames: int
    """Intact frames (of every frame dataset) compared bit for bit with the file before."""
    end_time_removed: bool
    datasets: int = 0
    """Datasets compared bit for bit (the frame datasets among them)."""
    start_time_removed: bool = False
    """An empty ``start_time`` (a fly file killed before its first frame) was removed."""

    def as_metadata(self) -> dict[str, object]:
        """The run's ``recovery`` metadata entry for this file."""
        return {"path": self.path, "sha256_before": self.sha256_before,
                "sha256": self.sha256, "frames": self.frames, "datasets": self.datasets,
                "changed": "HDF5 consistency flags cleared (h5clear -s --increment=0)" +
                           ("; empty NXmx end_time removed" if self.end_time_removed
                            else "") +
                           ("; empty NXmx start_time removed (no frame came)"
                            if self.start_time_removed else "")}

    @classmethod
    def from_metadata(cls, entry: Mapping[str, Any]) -> ClosedFile:
        """The inverse of ``as_metadata``."""
        return cls(str(entry["path"]), str(entry["sha256_before"]), str(entry["sha256"]),
                   int(entry["frames"]), "end_time removed" in str(entry.get("changed")),
                   int(entry.get("datasets", 0)),
                   "start_time removed" in str(entry.get("changed")))


def open_for_write(path: Path) -> bool:
    """Whether the superblock of ``path`` still says a writer has the file open."""
    try:
        return read_superblock(path).open_for_write
    except HDF5ReadError:
        return False  # (not an HDF5 file we can close: the frame checks report it)


def holders(path: Path) -> list[int]:
    """Processes of this machine (other than this one) that have ``path`` open, among
    those whose open files this user may list (all of them for root)."""
    try:
        info = os.stat(path)
    except OSError:
        return []
    found: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:  # gone, or another user's
            continue
        for fd in fds:
            try:
                st = os.stat(fd)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (info.st_dev, info.st_ino):
                found.append(int(proc.name))
                break
    return found


def refuse_if_in_use(path: Path) -> None:
    """Raise ``CatalogError`` naming ``path`` and who holds it, when anyone does."""
    if open_in_process(path):
        raise CatalogError(f"{path}: still open in this process (a catalog or reader "
                           "holds it): close it before repairing its run")
    pids = holders(path)
    if pids:
        raise CatalogError(f"{path}: still open by process{'es' if len(pids) > 1 else ''} "
                           f"{', '.join(map(str, pids))} (its writer alive, or a reader): "
                           "stop it before repairing the run")


def _hdf5() -> ctypes.CDLL:
    """The HDF5 library h5py is linked with (its symbols through h5py's own module)."""
    lib = ctypes.CDLL(h5py.h5f.__file__)
    lib.H5Pset.argtypes = [ctypes.c_int64, ctypes.c_char_p, ctypes.c_void_p]
    lib.H5Pset.restype = ctypes.c_int
    lib.H5Fincrement_filesize.argtypes = [ctypes.c_int64, ctypes.c_uint64]
    lib.H5Fincrement_filesize.restype = ctypes.c_int
    return lib


def _clear_flags(path: Path) -> None:
    """``h5clear -s --increment=0`` of ``path`` (see the module docstring)."""
    lib = _hdf5()
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    clear = ctypes.c_bool(True)
    if lib.H5Pset(fapl.id, b"clear_status_flags", ctypes.byref(clear)) < 0:
        raise OSError(f"{path}: HDF5 refused the clear_status_flags property")
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDWR, fapl=fapl)
    try:
        if lib.H5Fincrement_filesize(fid.id, 0) < 0:
            raise OSError(f"{path}: HDF5 could not set its end of allocation")
    finally:
        fid.close()


def _remove_empty_time(path: Path, frames: Mapping[str, int], field: str) -> str | None:
    """Remove the empty ``field`` (``end_time``, ``start_time``) of the entry holding the
    frames; its name, if one was."""
    with h5py.File(path, "r+") as f:
        for entry_name in sorted({name.strip("/").split("/")[0] for name in frames}):
            entry = f.get(entry_name)
            node = entry.get(field) if isinstance(entry, h5py.Group) else None
            if isinstance(node, h5py.Dataset) and node.shape == () and \
                    node[()] in (b"", ""):
                del entry[field]
                return f"{entry_name}/{field}"
    return None


def _value_bytes(value: Any) -> bytes:
    """The bytes of a value read from HDF5, with its type and shape."""
    if isinstance(value, bytes):
        return b"b" + value
    if isinstance(value, str):
        return b"s" + value.encode()
    array = np.asarray(value)
    head = f"{array.dtype.str}{array.shape}".encode()
    if array.dtype.kind == "O":
        return head + b"".join(_value_bytes(item) for item in array.ravel().tolist())
    return head + np.ascontiguousarray(array).tobytes()


def _attrs_digest(obj: h5py.HLObject, digest: Any) -> None:
    for key in sorted(obj.attrs.keys()):
        digest.update(key.encode() + b"=")
        try:
            digest.update(_value_bytes(obj.attrs[key]))
        except (OSError, TypeError, ValueError) as exc:  # (same on both sides)
            digest.update(f"unreadable {type(exc).__name__}".encode())


def _dataset_digest(ds: h5py.Dataset, frames: int | None) -> str:
    """sha256 of ``ds``'s type, shape, attributes and values (of a frame dataset, its first
    ``frames`` frames); a block HDF5 cannot read counts as its error's type."""
    digest = hashlib.sha256(f"{ds.dtype.str}{ds.shape}".encode())
    _attrs_digest(ds, digest)
    if ds.shape is None or ds.size == 0:
        return digest.hexdigest()
    if ds.ndim == 0:
        digest.update(_value_bytes(ds[()]))
        return digest.hexdigest()
    count = ds.shape[0] if frames is None else min(frames, ds.shape[0])
    row = max(1, int(np.prod(ds.shape[1:])) * ds.dtype.itemsize)
    step = max(1, _BLOCK_BYTES // row)
    for start in range(0, count, step):
        try:
            digest.update(_value_bytes(ds[start:min(count, start + step)]))
        except (OSError, TypeError, ValueError) as exc:
            digest.update(f"unreadable {type(exc).__name__}".encode())
    return digest.hexdigest()


def file_digests(f: h5py.File, frames: Mapping[str, int]) -> dict[str, str]:
    """Every dataset and group (named with a trailing ``/``) of ``f`` → the sha256 of
    what it holds: a group's attributes, a dataset's attributes and values (of the frame
    datasets ``frames`` names, their first ``frames[name]`` frames: the intact ones).

    Raises
    ------
    OSError
        A frame dataset ``frames`` names is not in ``f``.
    """
    for name in frames:
        if not isinstance(f.get(name), h5py.Dataset):
            raise OSError(f"{f.filename}: has no frame dataset {name!r} to compare its "
                          "frames with: left as it was")
    counts = {name.strip("/"): n for name, n in frames.items()}
    root = hashlib.sha256()
    _attrs_digest(f, root)
    out = {"/": root.hexdigest()}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            out[name] = _dataset_digest(obj, counts.get(name))
        elif isinstance(obj, h5py.Group):
            group = hashlib.sha256()
            _attrs_digest(obj, group)
            out[f"{name}/"] = group.hexdigest()

    f.visititems(visit)
    return out


def close_killed_file(path: Path, frames: Mapping[str, int], *,
                      before_rename: Callable[[ClosedFile], None] | None = None
                      ) -> ClosedFile | None:
    """Close the frame file ``path`` a killed writer left open (see the module
    docstring); ``frames`` gives each frame dataset of the file and how many of its
    frames are intact. ``None`` when the file is not marked open for write (nothing to
    do). ``before_rename`` gets what will have changed, before the file is replaced.

    Raises
    ------
    CatalogError
        The file is in use (``refuse_if_in_use``).
    OSError
        The copy could not be made or closed, or a dataset of it differs from the
        file's: the file is left as it was.
    """
    with folder_lock(path.parent):  # (one repair at a time closes a folder's files)
        return _close_locked(path, frames, before_rename)


def _close_locked(path: Path, frames: Mapping[str, int],
                  before_rename: Callable[[ClosedFile], None] | None) -> ClosedFile | None:
    if not open_for_write(path):
        return None  # (not flagged, or closed by another repair meanwhile)
    refuse_if_in_use(path)
    before = file_sha256(path)
    copy = path.with_name(path.name + _SUFFIX)
    copy.unlink(missing_ok=True)  # (a repair killed before left it: never the file)
    try:
        shutil.copyfile(path, copy)
        shutil.copymode(path, copy)
        with h5py.File(path, "r", swmr=True) as f:
            want = file_digests(f, frames)
        _clear_flags(copy)
        removed = _remove_empty_time(copy, frames, "end_time")
        unstarted = _remove_empty_time(copy, frames, "start_time")
        for name in (removed, unstarted):
            if name is not None:
                want.pop(name, None)
        with h5py.File(copy, "r") as f:
            got = file_digests(f, frames)
        changed = sorted(set(want) ^ set(got) | {k for k in want if want[k] != got.get(k)})
        if changed:
            raise OSError(f"{path}: {', '.join(changed[:3])}"
                          f"{f' and {len(changed) - 3} more' if len(changed) > 3 else ''} "
                          "changed when it was closed: left as it was")
        with open(copy, "rb") as fh:
            os.fsync(fh.fileno())
        closed = ClosedFile(str(path), before, file_sha256(copy), sum(frames.values()),
                            removed is not None,
                            sum(1 for name in got if not name.endswith("/")),
                            unstarted is not None)
        if before_rename is not None:
            before_rename(closed)
        os.replace(copy, path)
    finally:
        copy.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)  # (the rename on disk)
    finally:
        os.close(folder)
    taken = os.stat(path)
    if file_sha256(path) != closed.sha256:
        raise OSError(f"{path}: changed while it was being closed (its digest is not the "
                      "closed copy's)")
    write_sidecar(path, closed.sha256, taken)
    return closed


__all__ = ["ClosedFile", "close_killed_file", "file_digests", "holders", "open_for_write",
           "refuse_if_in_use"]
