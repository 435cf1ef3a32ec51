"""Where frame files go and what they hash to: the path checks and file-level helpers of
``dataflow.hdf5`` (which re-exports these names).

``resolve_in_folder`` keeps user-chosen names inside the data folder; ``file_sha256`` is
the digest a run records of a closed file; ``open_in_process`` tells whether another HDF5
handle of this process still has a file open (its last bytes are then not written yet).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h5py

from .regular_file import open_regular, same_file

__all__ = ["UnsafePathError", "file_sha256", "open_in_process", "resolve_in_folder"]


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
