"""Is every byte of the frames a reader asks for on disk? Completeness checks of frame files.

HDF5 reads a chunk that was never written as the dataset's fill value (zeros), and in
SWMR read mode — the mode every live reader and Tiled use — it skips the comparison of the
file's size with the end of file its superblock records. So a frame file cut short (a disk
that filled up, a copy interrupted) or one whose last frames never reached the disk (a
killed writer) reads back as zeros without an error, and readers cannot tell acquired
zeros from missing data. These checks close that gap, cheaply enough to run on every read:

- ``check_file_size``: a file its writer closed (the superblock's consistency flags are
  clear) must be at least as long as the end of file the superblock records; a file still
  marked open (a writer running, or killed) can legitimately be shorter, so only the chunk
  checks apply to it. A closed file cut short (the disk filled up as the writer closed
  it) is refused, unless the caller reads it through ``dataflow.cut_short``, which serves
  only the frames whose checksums prove them intact;
- ``check_frames``: the dataset's extent covers the frames asked for, and every data chunk
  holding them is allocated and lies inside the file.

- ``verify_frames``: HDF5 keeps no checksum of raw data, so ``FrameWriter`` stores the
  CRC-32 of every frame beside the frames (the dataset named by the frame dataset's
  ``CHECKSUMS_ATTR`` attribute); a whole frame read back is compared with it, so a flipped
  bit is an error naming the file and the frame, never changed pixels.

This module depends on nothing of smeflow's, so ``dataflow.hdf5`` (the writer and reader)
and the catalog's HDF5 reader both use it.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
from isal.isal_zlib import crc32

from sme.atomic_file import atomic_write

from .regular_file import NotRegularFileError, h5_open, open_regular

CHECKSUMS_ATTR = "frame_crc32"
"""Attribute of a frame dataset: the path of the dataset holding each frame's CRC-32."""
SIGNATURE = b"\x89HDF\r\n\x1a\n"
"""The eight bytes an HDF5 superblock starts with."""
WALK_STEPS = 16
"""What a chunk visited by a walk of the chunk index costs (``H5Dchunk_iter`` with its
Python callback), in steps of a lookup by coordinate: HDF5 (2.0) finds a chunk by
coordinate by going through the index from its first chunk, so looking up the chunk at
position ``i`` costs ``i + 1`` steps (measured on a 1000-frame megapixel file of 16,000
chunks: 8 µs for the first chunk, 7.5 ms for the last, 100-140 ms for a walk of all;
``check_frames`` picks the cheaper)."""


class HDF5ReadError(OSError):
    """An HDF5 frame file cannot be read (truncated, corrupt, or missing its dataset)."""


class IncompleteDataError(HDF5ReadError):
    """Frames that were never completely written, or lie beyond the end of a cut file.

    ``path`` is the file and ``frame`` the first frame found missing (``None`` when the
    whole file is cut short)."""

    def __init__(self, message: str, path: Path, frame: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.frame = frame


@dataclass(frozen=True)
class Superblock:
    """What the checks need from an HDF5 superblock."""

    offset: int
    """Where it starts (0, or after a user block of 512, 1024, … bytes)."""
    version: int
    end_of_file: int
    """The end-of-file address it records (relative to ``offset``)."""
    open_for_write: bool
    """The consistency flags are set: a writer has (or a killed writer had) the file open."""
    size: int = 0
    """The file's size in bytes when the superblock was read."""

    @property
    def cut_short(self) -> bool:
        """Its writer closed the file, yet it is shorter than the end of file recorded."""
        return not self.open_for_write and self.size < self.offset + self.end_of_file


def read_superblock(path: str | os.PathLike[str]) -> Superblock:
    """The superblock of the HDF5 file ``path`` (versions 0 to 3).

    Raises
    ------
    HDF5ReadError
        Naming the file: unreadable, no HDF5 signature, or an unknown superblock version.
    """
    p = Path(path)
    try:
        with open_regular(p) as f:  # a named pipe or device is refused, not read
            size = os.fstat(f.fileno()).st_size
            offset = 0
            while offset < max(size, 1):
                f.seek(offset)
                head = f.read(96)
                if head[:8] == SIGNATURE:
                    return _parse_superblock(p, offset, head, size)
                offset = 512 if offset == 0 else offset * 2
    except OSError as exc:
        raise HDF5ReadError(f"{p}: cannot read: {exc.strerror or exc}") from None
    raise HDF5ReadError(f"{p}: not an HDF5 file (no HDF5 signature)")


def _parse_superblock(path: Path, offset: int, head: bytes, size: int) -> Superblock:
    try:
        version = head[8]
        if version in (0, 1):
            size_offsets = head[13]
            flags = struct.unpack_from("<I", head, 20)[0]
            at = 24 + (4 if version == 1 else 0) + 2 * size_offsets  # base, free-space
            end = _address(head, at, size_offsets)
        elif version in (2, 3):
            size_offsets = head[9]
            flags = head[11]
            end = _address(head, 12 + 2 * size_offsets, size_offsets)  # base, extension
        else:
            raise HDF5ReadError(f"{path}: unknown HDF5 superblock version {version}")
    except (struct.error, IndexError):
        raise HDF5ReadError(f"{path}: not a readable HDF5 file (superblock cut short)"
                            ) from None
    return Superblock(offset, version, end, bool(flags), size)


def _address(head: bytes, at: int, size: int) -> int:
    if size not in (2, 4, 8) or len(head) < at + size:
        raise struct.error(size)
    return int.from_bytes(head[at:at + size], "little")


def check_file_size(path: str | os.PathLike[str], allow_cut_short: bool = False
                    ) -> Superblock:
    """Refuse a closed HDF5 file shorter than the end of file its superblock records.

    Returns the superblock. A file still marked open for writing is not refused here; a
    closed one is also opened once without SWMR, so a damaged superblock or object
    header fails at once. With ``allow_cut_short``, a closed file cut short is returned
    (``Superblock.cut_short``) unopened: the caller reads it through
    ``dataflow.cut_short.CutShortFile``, never in SWMR mode.

    Raises
    ------
    IncompleteDataError
        The file is cut short (both sizes in the message).
    HDF5ReadError
        It is not an HDF5 file, or HDF5 cannot open it.
    """
    p = Path(path)
    sb = read_superblock(p)
    if sb.open_for_write or (sb.cut_short and allow_cut_short):
        return sb
    if sb.cut_short:
        raise IncompleteDataError(f"{p}: truncated: {sb.size} bytes, its superblock says "
                                  f"{sb.offset + sb.end_of_file}", p)
    # Opened without SWMR, HDF5 checks the superblock's checksum and fails at once; in
    # SWMR mode (how Tiled reads) it would retry a damaged one for minutes.
    try:
        h5_open(p).close()
    except NotRegularFileError as exc:
        raise HDF5ReadError(str(exc)) from None
    except (OSError, RuntimeError) as exc:
        text = str(exc)
        if "SWMR read access flag" not in text:  # open in this process in SWMR mode: fine
            reason = text.splitlines()[0] if text else type(exc).__name__
            raise HDF5ReadError(f"{p}: not a readable HDF5 file (corrupt?): "
                                f"{reason.replace('Unable to synchronously ', 'unable to ')}"
                                ) from None
    return sb


def frame_range(index: Any, n: int) -> range:
    """The frames (positions along the first axis) that ``dataset[index]`` reads, for a
    dataset of ``n`` frames; an index this cannot narrow down (arrays, masks) gives all."""
    first = index[0] if isinstance(index, tuple) and index else index
    if (isinstance(index, tuple) and not index) or first is Ellipsis:
        return range(n)
    if isinstance(first, int | np.integer):
        i = int(first)
        i = i + n if i < 0 else i
        return range(i, i + 1)  # out of range: the check reports it
    if isinstance(first, slice):
        if first.step not in (None, 1):
            picked = range(n)[first]
            return range(min(picked), max(picked) + 1) if picked else range(0)
        return range(n)[first]
    return range(n)


def check_frames(ds: h5py.Dataset, path: str | os.PathLike[str], frames: range,
                 file_size: int | None = None) -> None:
    """Refuse to read ``frames`` of the 3-D frame dataset ``ds`` of file ``path`` unless
    every byte of them is on disk.

    The dataset's extent must cover them, and every chunk holding part of them must be
    allocated (HDF5 would read an unwritten chunk as zeros) and end inside the file
    (``file_size``, default the file's size now).

    Raises
    ------
    IncompleteDataError
        Naming the file and the first frame that is missing, never written or cut off.
    """
    p = Path(path)
    if not frames:
        return
    n = int(ds.shape[0])
    if frames.start < 0 or frames.stop > n:
        bad = frames.start if frames.start < 0 or frames.start >= n else n
        raise IncompleteDataError(f"{p}: frame {bad} was never written (the file has {n} "
                                  f"frame{'s' if n != 1 else ''})", p, bad)
    size = p.stat().st_size if file_size is None else file_size
    dsid = ds.id
    chunks = ds.chunks
    if chunks is None:  # contiguous (or compact) storage: one block
        start = dsid.get_offset()
        if start is not None and start + dsid.get_storage_size() > size:
            raise IncompleteDataError(f"{p}: frame {frames.start} lies beyond the end of the "
                                      f"file (truncated: {size} bytes)", p, frames.start)
        return
    cf = chunks[0]
    first_chunk = frames.start // cf * cf
    starts = range(first_chunk, frames.stop, cf)
    grid = [range(0, int(extent), int(c)) for extent, c in zip(ds.shape[1:], chunks[1:],
                                                               strict=True)]
    per_frame_chunk = int(np.prod([len(g) for g in grid]))
    if _walk_is_cheaper(len(starts) * per_frame_chunk, first_chunk // cf * per_frame_chunk,
                        -(-n // cf) * per_frame_chunk):
        _check_by_walking(dsid, p, starts, per_frame_chunk, frames, size)
        return
    for f0 in starts:
        for coord in _coords(f0, grid):
            info = dsid.get_chunk_info_by_coord(coord)
            _check_chunk(p, info.byte_offset, info.size, coord, frames, size)


def _walk_is_cheaper(lookups: int, first: int, chunks: int) -> bool:
    """Whether one walk of the ``chunks`` of the index costs less than looking up
    ``lookups`` chunks one by one, the first at position ``first`` of the index and the
    others after it (``WALK_STEPS``): a reader of a file's last frames looked up each
    of their chunks by going through all the chunks before it (1.2 s for the last two
    blocks of a 1000-frame megapixel file, against 0.1 s for a walk)."""
    return lookups * (first + (lookups + 1) / 2) > WALK_STEPS * chunks


def _coords(f0: int, grid: list[range]) -> list[tuple[int, ...]]:
    coords: list[tuple[int, ...]] = [(f0,)]
    for axis in grid:
        coords = [(*c, x) for c in coords for x in axis]
    return coords


def _check_by_walking(dsid: Any, path: Path, starts: range, per_frame_chunk: int,
                      frames: range, size: int) -> None:
    """``check_frames`` for many chunks: one walk over the allocated chunks."""
    found: dict[int, int] = {}

    def visit(info: Any) -> None:
        f0 = int(info.chunk_offset[0])
        if f0 in starts:
            _check_chunk(path, info.byte_offset, info.size, info.chunk_offset, frames, size)
            found[f0] = found.get(f0, 0) + 1

    dsid.chunk_iter(visit)
    for f0 in starts:
        if found.get(f0, 0) != per_frame_chunk:
            _check_chunk(path, None, 0, (f0,), frames, size)


def _check_chunk(path: Path, offset: int | None, nbytes: int, coord: tuple[int, ...],
                 frames: range, size: int) -> None:
    frame = max(frames.start, int(coord[0]))
    if offset is None:
        raise IncompleteDataError(f"{path}: frame {frame} was never completely written (its "
                                  f"data chunk at {tuple(int(c) for c in coord)} is missing)",
                                  path, frame)
    if offset + nbytes > size:
        raise IncompleteDataError(f"{path}: frame {frame} lies beyond the end of the file "
                                  f"(truncated: its data ends at byte {offset + nbytes}, the "
                                  f"file has {size} bytes)", path, frame)


class ChecksumError(HDF5ReadError):
    """A frame read back does not match the CRC-32 its writer stored."""

    def __init__(self, message: str, path: Path, frame: int) -> None:
        super().__init__(message)
        self.path = path
        self.frame = frame


_SIDECAR_RE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


SIDECAR_MAX = 4096
"""Bytes a ``.sha256`` sidecar may have at most (one ``sha256sum`` line: 64 hex digits, two
separators and the file's name)."""


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``<file>.sha256`` next to ``path``."""
    file = Path(path)
    return file.with_name(file.name + ".sha256")


SIDECAR_XATTR = "user.smeflow.digest_of"
"""Extended attribute of a sidecar written by ``write_sidecar``: the identity of the file
as it was hashed, ``"<dev> <ino> <size> <mtime_ns> <ctime_ns>"``."""


def read_sidecar(path: str | os.PathLike[str]) -> str | None:
    """The writer's digest of a closed file: ``<file>.sha256`` (``sha256sum`` format).

    ``None`` unless the sidecar is a small regular file naming ``path``'s file and the
    file is still the very one its writer hashed: same device, inode, size, modification
    and inode-change times as ``write_sidecar`` recorded on the sidecar
    (``SIDECAR_XATTR``). A write, truncation, rename, replacement, copy or metadata
    change of the file after the digest changes one of them (``st_ctime`` only the
    kernel sets), so the digest is never trusted for bytes it may not be the digest of;
    the file is then hashed again. A sidecar without that record (written by
    ``sha256sum``, copied without the attribute, on a filesystem without extended
    attributes) is not trusted either. A named pipe, device or oversized file in the
    sidecar's place is ignored without reading it.
    """
    sidecar = sidecar_path(path)
    try:
        fd = os.open(sidecar, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > SIDECAR_MAX:
            return None
        recorded = os.getxattr(fd, SIDECAR_XATTR)
        if recorded != _identity(os.stat(path)):
            return None
        data = os.read(fd, SIDECAR_MAX + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        line = data.decode("utf-8").splitlines()[0].strip()
    except (UnicodeDecodeError, IndexError):
        return None
    match = _SIDECAR_RE.match(line)
    if not match or match.group(2) != Path(path).name:
        return None
    return match.group(1).lower()


def write_sidecar(path: str | os.PathLike[str], digest: str, taken: os.stat_result) -> bool:
    """Write ``digest`` to ``path``'s sidecar (atomically, with the file's identity as
    ``taken`` recorded for ``read_sidecar``).

    ``taken`` is the file's ``os.stat`` from before the digest was computed. When the
    file changed while it was being hashed (its identity differs from ``taken``
    afterwards), no sidecar is left and False is returned (the digest may be of neither
    version). On a filesystem without extended attributes the sidecar is written
    without the record (for ``sha256sum -c``), and readers hash the file themselves.
    """
    sidecar = sidecar_path(path)
    with atomic_write(sidecar) as fh:
        fh.write(f"{digest}  {Path(path).name}\n")
        fh.flush()
        with contextlib.suppress(OSError):  # (no user extended attributes here)
            os.setxattr(fh.fileno(), SIDECAR_XATTR, _identity(taken))
    if _identity(os.stat(path)) != _identity(taken):
        sidecar.unlink(missing_ok=True)
        return False
    return True


def _identity(info: os.stat_result) -> bytes:
    return (f"{info.st_dev} {info.st_ino} {info.st_size} {info.st_mtime_ns} "
            f"{info.st_ctime_ns}").encode()


def frame_crc32(frames: npt.NDArray[Any]) -> npt.NDArray[np.uint32]:
    """The CRC-32 (``zlib.crc32``'s, computed by ISA-L's folding code, several times
    faster) of each frame of a stack ``(n, rows, cols)``: of its bytes in C order, each
    value little-endian."""
    little = frames.dtype.newbyteorder("<")
    return np.array([crc32(np.ascontiguousarray(f, dtype=little).data) for f in frames],
                    dtype=np.uint32)


def checksums_of(ds: h5py.Dataset) -> h5py.Dataset | None:
    """The per-frame CRC-32 dataset of the frame dataset ``ds`` (``None`` without one)."""
    name = ds.attrs.get(CHECKSUMS_ATTR)
    if isinstance(name, bytes):
        name = name.decode()
    if not isinstance(name, str):
        return None
    node = ds.file.get(name)
    return node if isinstance(node, h5py.Dataset) else None


def verify_frames(path: str | os.PathLike[str], stored: npt.ArrayLike,
                  frames: npt.NDArray[Any], first: int) -> None:
    """Compare whole frames ``frames`` (numbered from ``first``) with their ``stored``
    CRC-32 values; frames without a stored value yet (a writer flushed the frames and
    was stopped before their checksums) are not checked.

    Raises
    ------
    ChecksumError
        Naming the file and the first frame whose bytes changed.
    """
    want = np.asarray(stored, dtype=np.uint32)
    n = min(len(want), len(frames))
    if not n:
        return
    got = frame_crc32(frames[:n])
    bad = np.flatnonzero(got != want[:n])
    if bad.size:
        i = first + int(bad[0])
        raise ChecksumError(f"{Path(path)}: frame {i} is damaged (its CRC-32 is "
                            f"{int(got[bad[0]]):#010x}, the writer stored "
                            f"{int(want[bad[0]]):#010x})", Path(path), i)


def whole_frames(index: Any, frame_shape: tuple[int, ...]) -> bool:
    """True when ``dataset[index]`` reads whole frames of shape ``frame_shape``: one frame
    (an int) or a run of consecutive frames (a slice of step 1), every row and column."""
    parts = index if isinstance(index, tuple) else (index,)
    if parts in ((), (Ellipsis,)):
        return True
    if len(parts) > 1 + len(frame_shape):
        return False
    first, rest = parts[0], parts[1:]
    if isinstance(first, slice):
        if first.step not in (None, 1):
            return False
    elif not isinstance(first, int | np.integer):
        return False
    if Ellipsis in rest:
        return rest == (Ellipsis,)
    return all(isinstance(p, slice) and range(n)[p] == range(n)
               for p, n in zip(rest, frame_shape, strict=False))


def verify_read(ds: h5py.Dataset, path: str | os.PathLike[str], index: Any,
                data: npt.NDArray[Any]) -> None:
    """After ``data = ds[index]``: compare it with the stored checksums when it is whole
    frames (``whole_frames``) and the file has checksums; ``ChecksumError`` otherwise."""
    if not whole_frames(index, tuple(int(n) for n in ds.shape[1:])):
        return
    stored = checksums_of(ds)
    if stored is None:
        return
    frames = frame_range(index, int(ds.shape[0]))
    stack = data[np.newaxis] if data.ndim == 2 else data
    if (stack.ndim != 3 or stack.shape[0] != len(frames) or not frames
            or stack.shape[1:] != ds.shape[1:]):
        return
    if ds.file.swmr_mode:
        stored.refresh()
    verify_frames(path, stored[frames.start:frames.stop], stack, frames.start)


__all__ = ["CHECKSUMS_ATTR", "SIDECAR_MAX", "SIDECAR_XATTR", "ChecksumError", "HDF5ReadError",
           "IncompleteDataError", "Superblock", "check_file_size", "check_frames",
           "checksums_of", "frame_crc32", "frame_range", "read_sidecar", "read_superblock",
           "sidecar_path", "verify_frames", "verify_read", "whole_frames", "write_sidecar"]
