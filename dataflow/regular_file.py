"""Opening data files that users or the catalog name, refusing what is not a regular file.

A data file's name comes from outside: a ``stream_resource`` URI, a catalog entry, a path
on a command line. Something else may stand in the file's place — a named pipe, a device,
a directory. A plain ``open()`` of a named pipe blocks until some process opens it for
writing, and ``h5py.File`` of one blocks inside HDF5 *holding the GIL*, freezing every
thread of the process (the RunEngine with it). So every open here is non-blocking and
checks what it opened (``fstat`` on the descriptor, not ``stat`` on the name): what is
not a regular file is refused with one ``NotRegularFileError`` naming the path and what
stands there, before a byte is read.

HDF5 opens files by name, so for h5py the check and HDF5's own open must reach the same
file even if the name is swapped in between: on Linux HDF5 opens ``/proc/self/fd/<n>`` of
the descriptor already checked (the very inode, whatever the name now points at); HDF5
recognises it as the file it may already have open (same device and inode). Elsewhere
the name is opened after the check and the file HDF5 got is compared with the checked one.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path
from typing import Any

import h5py

_PROC_FD = Path("/proc/self/fd")
_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISDIR, "a directory"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


class NotRegularFileError(OSError):
    """A data file's name points at something other than a regular file (named pipe,
    device, directory, socket), refused before it is read."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(errno.EINVAL, reason, os.fspath(path))

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular_fd(path: str | os.PathLike[str]) -> int:
    """A blocking read-only descriptor of the regular file ``path`` (the caller closes it).

    Raises
    ------
    NotRegularFileError
        ``path`` names a named pipe, device, directory or socket.
    OSError
        It cannot be opened (missing, no permission).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _kind(mode)
            raise NotRegularFileError(path, f"not a regular file ({kind})")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(path: str | os.PathLike[str]) -> io.BufferedReader:
    """``open(path, "rb")`` that refuses (``NotRegularFileError``) what is not a regular file."""
    return io.BufferedReader(io.FileIO(open_regular_fd(path), "rb"))


def check_regular(path: str | os.PathLike[str]) -> None:
    """Raise ``NotRegularFileError`` (or ``OSError``) unless ``path`` is a regular file
    that can be opened for reading; opens nothing that could block."""
    os.close(open_regular_fd(path))


def h5_open(path: str | os.PathLike[str], **kwargs: Any) -> h5py.File:
    """``h5py.File(path, "r", **kwargs)`` of a regular file only.

    Raises
    ------
    NotRegularFileError
        ``path`` is not a regular file (checked on the descriptor, see the module doc).
    OSError
        It cannot be opened, or HDF5 cannot open it (h5py's own errors).
    """
    fd = open_regular_fd(path)
    try:
        if _PROC_FD.is_dir():
            return h5py.File(_PROC_FD / str(fd), "r", **kwargs)
        checked = os.fstat(fd)
        f = h5py.File(path, "r", **kwargs)
        try:
            got = os.fstat(f.id.get_vfd_handle())
        except (OSError, RuntimeError, ValueError, TypeError):  # a driver without a handle
            return f
        if (got.st_dev, got.st_ino) != (checked.st_dev, checked.st_ino):
            f.close()
            raise NotRegularFileError(path, "replaced while it was being opened")
        return f
    finally:
        os.close(fd)


def same_file(fid: h5py.h5f.FileID, info: os.stat_result) -> bool:
    """True when the open HDF5 file ``fid`` is the file ``info`` describes (device and
    inode: its name may be a ``/proc/self/fd`` link or another hard link)."""
    try:
        got = os.fstat(fid.get_vfd_handle())
    except (OSError, RuntimeError, ValueError, TypeError):
        return False
    return (got.st_dev, got.st_ino) == (info.st_dev, info.st_ino)


__all__ = ["NotRegularFileError", "check_regular", "h5_open", "open_regular",
           "open_regular_fd", "same_file"]
