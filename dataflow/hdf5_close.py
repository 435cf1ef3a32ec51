"""Closing a frame file and hashing it: the end of a ``dataflow.hdf5.FrameWriter``.

:class:`WriterClosing` is the part of ``FrameWriter`` that closes its HDF5 file
(``close_file``), hashes the closed bytes and writes the ``<file>.sha256`` sidecar
(``digest``; ``close`` does both), and lets go of a file HDF5 cannot complete (a full
disk: ``close_failed_file``), raising :class:`FrameFileError` that says so. The digest
is that of the closed file, unless another HDF5 handle in this process still has the file
open (``open_in_process``): HDF5 then writes the file's last bytes when that handle
closes, the digest is provisional and no sidecar is written (the provenance recorder
hashes the file afterwards).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from pathlib import Path
from types import TracebackType
from typing import Self

import h5py

from .hdf5_files import (
    WRITER_DIGEST_BLOCK,
    close_failed_file,
    file_sha256,
    mark_failed_write,
    open_in_process,
)
from .integrity import write_sidecar

__all__ = ["FrameFileError", "FrameWriteError", "WriterClosing", "write_error"]

log = logging.getLogger(__name__)


class FrameFileError(OSError):
    """The frame file could not be completed (a full disk): it was let go as found."""


class FrameWriteError(OSError):
    """Frames could not be appended (a full disk): they were taken back out, the file is
    still open with the frames appended before."""


def write_error(path: Path, start: int, count: int, announced: int,
                exc: OSError) -> FrameWriteError:
    """The one-line error of an append that HDF5 could not write (its own text spans
    lines and names buffers and offsets), with the ``errno`` of ``exc``."""
    why = os.strerror(exc.errno) if exc.errno else (str(exc).splitlines() or ["?"])[0]
    frames = f"frame {start}" if count == 1 else f"frames {start}-{start + count - 1}"
    error = FrameWriteError(f"{path}: {frames} could not be written ({why}); the "
                            f"{announced} frames announced before stay in the file")
    error.errno = exc.errno
    return error


class WriterClosing:
    """``close``, ``close_file`` and ``digest`` of a frame writer (a mixin of
    ``dataflow.hdf5.FrameWriter``, which opens ``_file`` at ``path`` and calls
    :meth:`_init_closing` once it is open)."""

    path: Path
    _file: h5py.File
    _announced: int

    def _init_closing(self) -> None:
        self.sha256: str | None = None
        self.failure: str | None = None
        """Why the file could not be completed (see :meth:`close_file`), else ``None``."""
        self._closed: tuple[os.stat_result, bool] | None = None
        self._digest_lock = threading.Lock()
        self._dropped: weakref.finalize[..., WriterClosing] | None = None

    def _closed_if_dropped(self) -> None:
        """Once ``_file`` is open: should this writer be dropped without :meth:`close`
        (garbage collected, or alive at interpreter exit), its file is closed then, and a
        file HDF5 cannot complete is let go of as :meth:`close_file` does (HDF5's own
        shutdown, or h5py's garbage collection of the file, would leave it half closed:
        SIGSEGV at exit)."""
        self._dropped = weakref.finalize(self, _close_dropped, self._file, self.path)

    def flush(self) -> None:
        """Make every appended frame visible (the writer's; called before the close)."""
        raise NotImplementedError

    def _before_close(self) -> None:
        """Complete the file before it closes (the writer's: its NeXus end time…)."""

    @property
    def closed(self) -> bool:
        """True once the file is closed (``close()`` or ``close_file()``)."""
        return self._closed is not None

    def close(self) -> str:
        """Flush, close the file and return its SHA-256 digest (idempotent):
        :meth:`close_file`, then :meth:`digest`.

        The digest is also written to ``<file>.sha256`` in ``sha256sum`` format, unless
        another HDF5 handle in this process (the embedded catalog server, a live reader)
        still had the file open when the writer closed it (``open_in_process``): HDF5
        then writes the file's last bytes only when that handle closes, so the returned
        digest is *provisional* (it will not match the closed file), no sidecar is
        written and a warning is logged. Flushing before the close does not avoid this:
        the bytes that change are the superblock's open-for-SWMR-writing flags, cleared
        only by the last close.

        A file HDF5 cannot complete (a full disk) raises :class:`FrameFileError` (an
        ``OSError``), once it is let go as found (:meth:`close_file`).
        """
        self.close_file()
        return self.digest()

    def close_file(self) -> None:
        """Flush and close the HDF5 file, no more (idempotent): its bytes are final (see
        :meth:`close`), so :meth:`digest` may hash them in another thread while the caller
        announces the file; a reader opening it meanwhile changes nothing.

        A file HDF5 cannot write (a full disk) is let go as found, :class:`FrameFileError`
        says so now and at every later call (``failure``; ``digest``: of the file as found,
        no sidecar; ``failed_write(path)``: the provenance recorder need not wait)."""
        if self._closed is not None:
            if self.failure is not None:
                raise FrameFileError(self.failure)
            return
        if self._dropped is not None:
            self._dropped.detach()
        try:  # (what needs room fails in the flushes, while the file id is whole)
            self._before_close()
            self.flush()
            self._file.flush()
        except Exception as exc:  # HDF5 cannot write the file: a full disk
            self._fail(exc)
        try:
            self._file.close()
        except Exception as exc:
            self._fail(exc, tried_close=True)
        self._closed = (os.stat(self.path), open_in_process(self.path))

    def _fail(self, exc: Exception, tried_close: bool = False) -> None:
        """Let HDF5 go of a file it cannot complete (``close_failed_file``), mark it
        failed (``failed_write``) and raise one error saying what happened."""
        errno, why = close_failed_file(self._file, exc, tried_close=tried_close)
        held = self._file.id.valid  # (not released: another handle of the file is open)
        state = (f"the {self._announced} frames announced before were written, but another "
                 "HDF5 handle of this process (a reader) has the file open, and HDF5 can close "
                 "none of its handles while it cannot write the file: it is left as found, "
                 "without its .sha256, and may not be readable" if held else
                 f"the {self._announced} frames announced before stay readable, the file was "
                 "closed as found, without its .sha256")
        self.failure = (f"{self.path}: the frame file could not be written to the end "
                        f"({why}); {state}")
        mark_failed_write(self.path, why)
        self._closed = (os.stat(self.path), held)
        error = FrameFileError(self.failure)
        error.errno = errno
        raise error from exc

    def digest(self) -> str:
        """The closed file's SHA-256 and its sidecar (:meth:`close`; idempotent, one
        computation however many threads ask)."""
        if self._closed is None:
            raise ValueError(f"{self.path}: digest of a file still open; close_file() first")
        with self._digest_lock:
            if self.sha256 is not None:
                return self.sha256
            taken, shared = self._closed
            digest = file_sha256(self.path, WRITER_DIGEST_BLOCK)  # (in a thread: hdf5_files)
            if self.failure is not None:  # (no sidecar: not the file the writer meant)
                log.warning("%s: %s; digest %s of the file as found", self.path,
                            self.failure, digest[:16])
            elif shared:
                log.warning("%s: still open by another HDF5 handle in this process after "
                            "the writer closed it; its final bytes are written when that "
                            "handle closes, so no .sha256 sidecar was written and the "
                            "digest %s is provisional", self.path, digest[:16])
            elif not write_sidecar(self.path, digest, taken):
                log.warning("%s: the file changed while the writer hashed it after closing "
                            "it; no .sha256 sidecar was written and the digest %s is of the "
                            "bytes read then", self.path, digest[:16])
            self.sha256 = digest
            return digest

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _close_dropped(file: h5py.File, path: Path) -> None:
    """Close the file of a writer dropped without ``close()`` (its finalizer, at garbage
    collection or at exit; ``WriterClosing._closed_if_dropped``): never raises."""
    with h5py._objects.phil:
        if not file.id.valid:
            return
        tried_close = False
        try:
            file.flush()  # (what needs room fails here, while the file id is whole)
            tried_close = True
            file.close()
            log.warning("%s: a frame writer was dropped without close(): its file was "
                        "closed then, without a .sha256", path)
        except Exception as exc:  # HDF5 cannot write the file: a full disk
            _, why = close_failed_file(file, exc, tried_close=tried_close)
            mark_failed_write(path, why)
            log.warning("%s: a frame writer was dropped without close() and the frame file "
                        "could not be written to the end (%s); it was closed as found",
                        path, why)
