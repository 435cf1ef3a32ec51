"""Where frame files go and what they hash to: the path checks and file-level helpers of
``dataflow.hdf5`` (which re-exports these names).

``resolve_in_folder`` keeps user-chosen names inside the data folder; ``file_sha256`` is
the digest a run records of a closed file; ``open_in_process`` tells whether another HDF5
handle of this process still has a file open (its last bytes are then not written yet).
``close_failed_file`` lets go of a file HDF5 could not write (a full disk), and
``failed_write`` tells that a file was left so (``mark_failed_write``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from pathlib import Path

import h5py

from .regular_file import open_regular, same_file

__all__ = ["UnsafePathError", "close_failed_file", "failed_write", "file_sha256",
           "mark_failed_write", "open_in_process", "resolve_in_folder"]

log = logging.getLogger(__name__)


class UnsafePathError(ValueError):
    """A file name would leave the folder it must stay in (``../``, absolute, symlink)."""


def resolve_in_folder(folder: str | os.PathLike[str], name: str | os.PathLike[str]) -> Path:
    """The absolute path of ``name`` inside ``folder``, refusing any escape.

    Names come from users (sample names, scan names), so ``../x``, absolute paths and
    symlinks pointing outside are rejected rather than followed.

    Raises
    ------
    UnsafePathError
        When ``name`` is empty, absolute, contains a NUL, or resolves outside ``folder``.
    """
    text = os.fspath(name)
    if not text or "\x00" in text:
        raise UnsafePathError(f"file name {text!r}: must be a non-empty name without NUL")
    if os.path.isabs(text):
        raise UnsafePathError(f"file name {text!r}: must be relative to the data folder "
                              f"{os.fspath(folder)}, not an absolute path")
    root = Path(folder).resolve()
    path = (root / text).resolve()
    if path == root or root not in path.parents:
        raise UnsafePathError(f"file name {text!r} resolves to {path}, outside the data "
                              f"folder {root}")
    return path


DIGEST_BLOCK = 1 << 20
"""Bytes :func:`file_sha256` reads per step by default: its peak memory (a reader hashing
its inputs, such as a live consumer, keeps a flat peak whatever the files' size)."""

WRITER_DIGEST_BLOCK = 8 << 20
"""Bytes per step of a frame writer's digest (``FrameWriter.digest``), computed in a thread
beside the program's own Python work (a reduction's documents): fewer, larger steps."""


def file_sha256(path: str | os.PathLike[str], block: int | None = None) -> str:
    """Hex SHA-256 digest of a file's bytes, read in steps of ``block`` bytes (default
    :data:`DIGEST_BLOCK`) into one buffer.

    The read and the hashing of a step each run without the GIL, and a digest computed in
    a thread takes the GIL back once per step — every step can wait a whole switch
    interval (5 ms) while another thread runs Python: a 64 MB digest beside a busy Python
    thread took 722 ms in 1 MiB steps, 133 ms in 8 MiB steps (49.5 / 48.5 ms alone). The
    buffer is what a step costs in memory.

    Raises ``NotRegularFileError`` (an ``OSError``) for a named pipe, device or directory."""
    step = DIGEST_BLOCK if block is None else block
    digest = hashlib.sha256()
    with open_regular(path) as f:  # a named pipe in the file's place would block
        size = os.fstat(f.fileno()).st_size
        buffer = memoryview(bytearray(max(1, min(step, size))))
        while n := f.raw.readinto(buffer):
            digest.update(buffer[:n])
    return digest.hexdigest()


def open_in_process(path: str | os.PathLike[str]) -> bool:
    """True while any HDF5 handle in this process has the file ``path`` open.

    HDF5 shares one open file between all handles of a process: when the embedded
    catalog server or a live reader has a frame file open, a writer's ``close()`` only
    drops its own handle, and the file's last bytes (the superblock's consistency flags
    and checksum) are written when the last handle closes. Until then a digest of the
    file is not that of the closed file.
    """
    names = {os.fsencode(path), os.fsencode(os.path.realpath(path))}
    try:
        info: os.stat_result | None = os.stat(path)
    except OSError:
        info = None
    try:
        ids = h5py.h5f.get_obj_ids(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE)
    except (RuntimeError, ValueError):
        return False
    for fid in ids:
        try:  # readers open files by descriptor (``/proc/self/fd/<n>``): compare inodes
            if fid.name in names or (info is not None and same_file(fid, info)):
                return True
        except (RuntimeError, ValueError):  # closed while we looked
            continue
    return False


_failed: dict[str, str] = {}
_failed_lock = threading.Lock()


def _key(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(path)


def mark_failed_write(path: str | os.PathLike[str], reason: str | None) -> None:
    """Remember (``reason``) or forget (``None``) that this process's writer of ``path``
    could not complete it: the file holds what was written before the failure, and no
    writer will close it properly nor write its ``.sha256`` (a full disk has no room)."""
    with _failed_lock:
        if reason is None:
            _failed.pop(_key(path), None)
        else:
            _failed[_key(path)] = reason


def failed_write(path: str | os.PathLike[str]) -> str | None:
    """Why this process's writer left ``path`` incomplete (``mark_failed_write``), or
    ``None``: a digest of such a file is of the file as found, and need not wait."""
    with _failed_lock:
        return _failed.get(_key(path))


def close_failed_file(file: h5py.File, error: BaseException, *,
                      tried_close: bool = False) -> tuple[int | None, str]:
    """Let go of an HDF5 file that could not be written (a full disk), leaving no HDF5
    object of it behind: its datasets and groups are closed, then the file, twice (once
    when ``tried_close``: ``file.close()`` itself is what failed, its objects are closed).
    Returns the ``error`` that stopped the writer as its errno and words (the system's
    for the errno, such as "No space left on device", else its first line).

    HDF5 (1.14, 2.0) cannot close a file whose cached metadata it cannot write: the first
    ``H5Fclose`` fails ("unable to extend file properly"), yet it has already torn the
    file's shared state down (``H5F__dest`` goes on after errors and sets ``f->shared``
    to NULL) while keeping its id. Anything done with that id then dereferences the
    torn state: ``H5Fget_name`` (``FileID.name``, as ``open_in_process`` asks) or the
    library's own shutdown at exit (``H5_term_library`` closing a dataset of the file,
    ``H5FO_top_decr``) ends the process with SIGSEGV. Closing the id once more is what
    HDF5 expects: ``H5VL__native_file_close`` frees a file struct whose shared state is
    gone and the id is released. Both closes happen under h5py's lock, so no other
    thread's h5py call sees the id in between. The file on disk keeps what was written
    before the failure (a SWMR file: whatever the last flush made visible)."""
    fid = file.id
    with h5py._objects.phil:  # (an RLock: h5py's own calls below take it again)
        # (the name before: after a failed close, never; nor any other call but close)
        name = "an HDF5 file" if tried_close or not fid.valid else file.filename
        try:
            if not tried_close:
                file.close()  # datasets and groups first (they close), then the file
        except Exception as exc:  # expected: the disk has no room
            log.debug("%s: HDF5 could not close the file: %s", name, exc)
        if fid.valid:  # (H5Iis_valid: the id table only, the file struct is not read)
            try:
                fid.close()
            except Exception as exc:  # nothing more can be done
                log.warning("%s: cannot release the HDF5 file id of an unwritable file: "
                            "%s", name, exc)
    errno = error.errno if isinstance(error, OSError) and error.errno else None
    if errno is None and (found := re.search(r"errno = (\d+)", str(error))):
        errno = int(found.group(1))  # (HDF5's words: "..., errno = 28, error message...")
    return errno, os.strerror(errno) if errno else str(error).splitlines()[0][:200]
