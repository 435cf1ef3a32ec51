"""Frame files: a stream of 2-D detector frames into one HDF5 file per acquisition.

``FrameWriter`` appends frames to a resizable dataset ``(n_frames, rows, cols)`` in SWMR
mode, so a live viewer or the catalog can open the file while it is being written and
see every frame that has been flushed. It also composes the bluesky asset documents
(``stream_resource`` once, then ``stream_datum`` for the frames appended since the last
call) that an ophyd device yields from ``collect_asset_docs()``, and when closed it
returns the SHA-256 digest of the file (also written next to it as ``<file>.sha256`` in
``sha256sum`` format, unless another handle in this process still has the file open: HDF5
then writes the file's last bytes when that handle closes, and the provenance recorder
hashes the file afterwards) so the run can record what the instrument wrote: closing and
hashing are ``dataflow.hdf5_close`` (``FrameFileError``: a file a full disk cut short). Reading
the files back (``FrameReader``, ``open_frames``, ``read_counters``) is ``dataflow.hdf5_read``,
whose names this module re-exports, as it does the path and file helpers of
``dataflow.hdf5_files`` (``resolve_in_folder``, ``file_sha256``, ``open_in_process``). The
readout counters and lost-frame records beside the frames are ``dataflow.hdf5_records``.

File format: ``FILE_FORMAT``, HDF5 1.10's (the oldest with SWMR), so HDF5 1.10 to 1.14
read the files too — Debian's and Ubuntu's ``h5dump``, DIALS' and conda's builds. With
``libver="latest"`` h5py's HDF5 2.0 wrote a gzip-compressed ``pixel_mask`` with a layout
message version 1.10's ``h5dump`` refuses ("bad version number for layout message").

Chunk layout: ``dataflow.hdf5_layout`` (the default ``"tomo"`` layout serves both frame
and sinogram reads), whose names this module re-exports.

NeXus: a file whose dataset sits at ``/ENTRY/DATA/NAME`` (the default ``/entry/data/data``)
is a NeXus file as well (``dataflow.hdf5_nexus``).

Uncompressed frames go to the file a block of chunks at a time by HDF5's direct chunk
write (``dataflow.hdf5_blocks``): the bytes of h5py's writes at a third of their CPU.

Compression is off by default: a detector at 200 frames/s of 512x512 uint16 writes
100 MB/s, more than gzip sustains on one of the two cores, counting noise compresses
poorly, and reading a region of a frame must decompress whole chunks. ``compression=``
``"gzip"`` or ``"lzf"`` turns it on when disk space matters more than rate.

Flushing: frames become visible to SWMR readers when flushed. The writer flushes before
it announces frames in ``asset_docs()`` (so a ``stream_datum`` never points at frames a
reader cannot see), whenever ``flush_every`` frames have accumulated (default: one chunk
of frames, so each chunk is written to disk once; written a block at a time, at the end
of each block of frames), and on ``close()``. ``flush_every=1``
makes every frame visible at once, at a cost in write rate with multi-frame chunks.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import numpy.typing as npt
from event_model import compose_stream_resource

from .announced_writers import announcement_mark, note_announced, run_end_writers
from .file_uri import file_uri
from .hdf5_blocks import ChunkBlock
from .hdf5_close import FrameFileError, FrameWriteError, WriterClosing, write_error
from .hdf5_files import (
    UnsafePathError,
    failed_write,
    file_sha256,
    mark_failed_write,
    open_in_process,
    resolve_in_folder,
)
from .hdf5_layout import Layout, chunks_for, per_frame_chunks, tomo_chunks
from .hdf5_nexus import EntryNames, write_end_time, write_nexus_tree, write_start_time
from .hdf5_read import (
    DEFAULT_DATASET,
    FrameReader,
    open_frames,
    read_counters,
    read_lost,
)
from .hdf5_records import SideRecords, write_values
from .integrity import (
    CHECKSUMS_ATTR,
    HDF5ReadError,
    frame_crc32,
)

if TYPE_CHECKING:
    from geometry import PoniGeometry

    from .hdf5_nxmx import IncidentBeamSize

log = logging.getLogger(__name__)

HDF5_MIMETYPE = "application/x-hdf5"
COMPRESSIONS = (None, "gzip", "lzf")
FILE_FORMAT = ("v110", "latest")
"""h5py's ``libver`` of frame files: HDF5 1.10's format (SWMR's least) and up."""

Document = tuple[str, dict[str, Any]]


class FrameMismatchError(ValueError):
    """A frame's shape or dtype differs from the file's."""


class WriterClosedError(RuntimeError):
    """A frame was written after the writer was closed."""


class FrameWriter(WriterClosing):
    """Append 2-D frames to a new SWMR HDF5 file and describe them to bluesky.

    Parameters
    ----------
    folder
        The data folder the file must stay inside (the catalog's ``raw_dir``).
    name
        File name relative to ``folder`` (sub-folders allowed, ``../`` refused). An
        existing file is never overwritten.
    frame_shape
        ``(rows, cols)`` of every frame.
    dtype
        Pixel type; frames of any other dtype are refused, not cast.
    data_key
        The bluesky data key the frames are announced under (``describe()`` key).
    dataset
        Path of the dataset inside the file.
    layout
        ``"tomo"`` (default, see the module docstring), ``"per_frame"`` or an explicit
        chunk shape ``(frames, rows, cols)``.
    compression
        ``None`` (default), ``"gzip"`` or ``"lzf"``.
    flush_every
        Flush after this many unflushed frames; default: at the end of each block of
        frames per chunk (never more than a block unseen, each chunk written once).
    attrs
        Attributes stored on the dataset (strings and numbers), e.g. the exposure.
    counters
        Names of integer counters kept in ``COUNTERS_DATASET`` (zero until
        ``set_counters``); ``read_counters`` reads them back.
    detector_fields
        NeXus ``NXdetector`` fields: a name and a value, or a value and its units as a
        pair (``{"count_time": (0.1, "s"), "description": "..."}``); see the module
        docstring.
    start_time
        When the first frame's exposure started (s since the epoch): the NeXus entry's
        ``start_time``.
    start_pending
        ``start_time`` is not known when the file opens (a fly acquisition's, opened
        before its first trigger): the entry's ``start_time`` is made empty (SWMR adds no
        dataset later) and written with the first frames that land after
        ``set_start_time`` — at the close, if none came, the end time: NXmx requires a
        ``start_time``.
    geometry
        The run's detector geometry (:class:`geometry.PoniGeometry`, of these frames),
        written as NXmx (``dataflow.hdf5_nxmx``).
    beam_size
        The incident beam's size and profile at the sample
        (``dataflow.hdf5_nxmx.IncidentBeamSize``), written with the NXmx ``geometry``.
    names
        The instrument's, source's and sample's names (``dataflow.hdf5_nexus.EntryNames``).
    detector
        The frames are a detector's (default): the NeXus ``NXdetector`` holds them too.
        False for derived frames (a reconstruction's slices): only the entry's ``NXdata``
        has them (``ValueError`` with ``detector_fields`` or a ``geometry``).
    lost_frames
        Keep dataset ``<dataset>_lost`` (named by the frame dataset's ``lost_frames``
        attribute): the acquisition indices of frames that never reached the file
        (``add_lost``; ``read_lost`` reads them), so that frame ``i`` of the file is
        acquisition frame ``i`` plus the lost ones before it — never a silent gap.

    Beside the frames, dataset ``<dataset>_crc32`` holds the CRC-32 of each frame (named
    by the frame dataset's ``frame_crc32`` attribute; ``dataflow.integrity``): HDF5 keeps
    no checksum of raw data, and readers compare whole frames with it.
    """

    def __init__(self, folder: str | os.PathLike[str], name: str | os.PathLike[str],
                 frame_shape: Sequence[int], *, dtype: npt.DTypeLike = np.uint16,
                 data_key: str = "image", dataset: str = DEFAULT_DATASET,
                 layout: Layout = "tomo", compression: str | None = None,
                 flush_every: int | None = None,
                 attrs: Mapping[str, Any] | None = None,
                 counters: Sequence[str] = (),
                 detector_fields: Mapping[str, Any] | None = None,
                 start_time: float | None = None, start_pending: bool = False,
                 geometry: PoniGeometry | None = None,
                 names: EntryNames | None = None, lost_frames: bool = False,
                 detector: bool = True, beam_size: IncidentBeamSize | None = None) -> None:
        shape = tuple(int(n) for n in frame_shape)
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"frame_shape {tuple(frame_shape)}: expected (rows, cols) >= 1")
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression {compression!r}: expected one of {COMPRESSIONS}")
        self.frame_shape: tuple[int, int] = (shape[0], shape[1])
        self.dtype = np.dtype(dtype)
        self.chunk_shape = chunks_for(layout, self.frame_shape, self.dtype.itemsize)
        if flush_every is not None and flush_every < 1:
            raise ValueError(f"flush_every {flush_every}: must be >= 1")
        self.flush_every = flush_every or self.chunk_shape[0]
        self.data_key = data_key
        self.dataset_path = dataset
        self.path = resolve_in_folder(folder, name)
        uri = file_uri(self.path, UnsafePathError)  # (refused before anything is written)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._init_closing()
        self._count = 0
        self._last: float | None = None  # (when the last frame came: the file's end_time)
        self._flushed = 0
        self._announced = 0
        self._resource_sent = False

        frame_bytes = self.dtype.itemsize * self.frame_shape[0] * self.frame_shape[1]
        # Keep one block of chunks (chunk_shape[0] frames) in the chunk cache so each
        # chunk is filled in memory and written whole, not read back from disk (frames
        # written through h5py: compressed; ChunkBlock's frame dataset has no cache).
        cache_bytes = max(1 << 20, 2 * self.chunk_shape[0] * frame_bytes)
        try:
            self._file = h5py.File(self.path, "x", libver=FILE_FORMAT,
                                   rdcc_nbytes=cache_bytes, rdcc_nslots=10007, rdcc_w0=1.0)
        except FileExistsError:
            raise FileExistsError(f"{self.path}: file exists; frame files are never "
                                  "overwritten, choose a new name") from None
        try:
            options = self._frames_options()
            direct = ChunkBlock.fits(self.chunk_shape, self.frame_shape, compression, options)
            self._ds = self._file.create_dataset(
                dataset, shape=(0, *self.frame_shape), maxshape=(None, *self.frame_shape),
                dtype=self.dtype, chunks=self.chunk_shape, compression=compression,
                **options, **(ChunkBlock.CACHE if direct else {}))
            # checksums into the file before the frames' chunks: a reader never finds a
            # frame without its CRC, a file cut short loses its last frames, not all CRCs
            self._block = ChunkBlock(self._ds, self.chunk_shape,
                                     self._flush_beside) if direct else None
            for key, value in (attrs or {}).items():
                self._ds.attrs[key] = value
            self._crc = self._file.create_dataset(
                f"{dataset}_crc32", shape=(0,), maxshape=(None,), dtype="<u4",
                chunks=(max(64, self.chunk_shape[0]),))
            self._ds.attrs[CHECKSUMS_ATTR] = self._crc.name
            self._records = SideRecords(self._file, self.path, self._ds, dataset, counters,
                                        lost_frames)
            self._beside: list[h5py.Dataset] = [self._crc]  # one value a frame, kept first
            self._nexus = write_nexus_tree(self._file, dataset, detector_fields or {},
                                           start_time=start_time,
                                           start_pending=start_pending and start_time is None,
                                           geometry=geometry, names=names,
                                           detector=detector, beam_size=beam_size)
            self._start_pending = self._nexus and start_pending and start_time is None
            self._start_at: float | None = None  # (set_start_time's, until frames land)
            self._before_swmr()
            self._file.swmr_mode = True
        except BaseException:
            self._file.close()
            self.path.unlink(missing_ok=True)
            raise
        mark_failed_write(self.path, None)  # (a new file: an old one's failure is not it)
        self._closed_if_dropped()
        bundle = compose_stream_resource(
            mimetype=HDF5_MIMETYPE, uri=uri, data_key=data_key,
            parameters={"dataset": dataset, "chunk_shape": self.chunk_shape, "swmr": True})
        self.stream_resource: dict[str, Any] = dict(bundle.stream_resource_doc)
        self._compose_datum = bundle.compose_stream_datum

    def _before_swmr(self) -> None:
        """Create what a subclass keeps in the file (before SWMR mode, which adds none)."""

    def _before_close(self) -> None:
        """Complete the file before it closes (its NeXus end time; subclasses add theirs)."""
        if self._nexus:
            end = self._last if self._last is not None else time.time()
            if self._start_pending:  # (the first frames' start, else none came: the end)
                at = self._start_at if self._count and self._start_at is not None else end
                write_start_time(self._file, self.dataset_path, at)
                self._start_pending = False
            write_end_time(self._file, self.dataset_path, end)

    @property
    def start_pending(self) -> bool:
        """Whether the entry's ``start_time`` waits for ``set_start_time``."""
        return self._start_pending

    def set_start_time(self, t: float) -> None:
        """The pending ``start_time`` (``start_pending``): ``t``, s since the epoch, when
        the exposure of the first frame of the next append started (a later call before
        frames are in the file replaces it). Written with the first frames that land in
        the file (their flush): an append that fails, or a writer killed before, leaves
        no start claimed for a frame that is not there. ``ValueError`` when none is
        pending."""
        self._check_open()
        if not self._start_pending:
            raise ValueError(f"{self.path}: no start_time is pending (it was given when the "
                             "file opened, written already, or the file is no NeXus file)")
        if not self._count:
            self._start_at = t

    def _land_start(self, flushed: int) -> None:
        """Write the held ``start_time`` once frames are flushed (``set_start_time``)."""
        if self._start_pending and self._start_at is not None and flushed:
            write_start_time(self._file, self.dataset_path, self._start_at)
            self._start_pending = False

    def _frames_options(self) -> dict[str, Any]:
        """More ``create_dataset`` options of the frame dataset (for subclasses)."""
        return {}

    # -- writing ---------------------------------------------------------------------

    @property
    def n_frames(self) -> int:
        """Frames appended so far."""
        return self._count

    @property
    def counter_names(self) -> tuple[str, ...]:
        """The counters declared with ``counters=`` (``set_counters`` writes them)."""
        return self._records.counter_names

    def _check_open(self) -> None:
        if self.closed:
            raise WriterClosedError(f"{self.path}: frame writer is closed; open a new file "
                                    "for more frames")

    def _check(self, frames: np.ndarray[Any, Any], what: str, stack: bool) -> None:
        if stack:
            bad = frames.ndim != 3 or frames.shape[1:] != self.frame_shape
        else:
            bad = frames.shape != self.frame_shape
        if bad:
            expected = f"(n, {', '.join(map(str, self.frame_shape))})" if stack else \
                str(self.frame_shape)
            raise FrameMismatchError(f"{self.path}: {what} shape {frames.shape}, expected "
                                     f"{expected}")
        if frames.dtype != self.dtype:
            raise FrameMismatchError(f"{self.path}: {what} dtype {frames.dtype}, expected "
                                     f"{self.dtype}")

    def append(self, frame: npt.ArrayLike) -> int:
        """Append one frame; returns its index in the file."""
        self._check_open()
        arr = np.asarray(frame)
        self._check(arr, "frame", stack=False)
        return self.append_many(arr[np.newaxis]).start

    def append_many(self, frames: npt.ArrayLike) -> range:
        """Append a stack ``(n, rows, cols)`` of frames; returns their indices."""
        self._check_open()
        arr = np.asarray(frames)
        self._check(arr, "frame stack", stack=True)
        n = arr.shape[0]
        start = self._count
        if n:
            try:
                if self._block is None:
                    self._ds.resize(start + n, axis=0)
                    self._ds[start:start + n] = arr
                write_values(self._crc, start, frame_crc32(arr))
                if self._block is not None:  # (writes full blocks: their checksums first)
                    self._block.put(start, arr)
            except BaseException as exc:
                self._truncate(start)
                if isinstance(exc, OSError) and not isinstance(exc, FrameWriteError):
                    raise write_error(self.path, start, n, self._announced, exc) from exc
                raise
            self._count += n
            self._last = time.time()
            k = self.chunk_shape[0]
            if self._block is not None and self.flush_every == k:
                if self._count // k * k > self._flushed:  # blocks the file has whole
                    self._flush_blocks(self._count // k * k)
            elif self._count - self._flushed >= self.flush_every:
                self.flush()
        return range(start, self._count)

    def _flush_blocks(self, done: int) -> None:
        """Frames up to ``done``, the end of the last block (written whole), visible: the
        default ``flush_every`` without writing the next block's part (twice, then)."""
        self._flush_beside()
        self._ds.flush()
        self._flushed = done
        self._land_start(done)

    def discard_unannounced(self, keep: int = 0) -> int:
        """Drop the frames appended since the last ``asset_docs()`` but the first
        ``keep`` of them; returns how many were dropped.

        For a detector whose exposure was taken but whose event was never emitted: a
        plan rewound by a pause or a suspension triggers again, and the file must hold
        one frame per announced index; a fly acquisition a suspension stopped keeps the
        frames triggered before the beam was lost (``devices.suspension``). Announced
        frames are never touched.
        """
        self._check_open()
        end = self._announced + max(0, min(keep, self._count - self._announced))
        if end > self._announced:
            self.flush()  # (the frames kept are in the file before the rest go)
        extra = self._count - end
        if extra or any(ds.shape[0] != end for ds in self._beside) or \
                self._ds.shape[0] > end:
            self._truncate(end)
            self._count = end
            self._flush_beside()
            self._ds.flush()
            self._flushed = self._count
        return extra

    def _truncate(self, n: int) -> None:
        """Shrink the frames and their checksums back to ``n`` (after a failed append:
        the file must not keep frames, nor zero checksums, that were never appended).
        Best effort: when the file cannot even be resized (a full disk), the next
        ``discard_unannounced`` (run when the file is closed) tries again."""
        for ds in (self._ds, *self._beside):
            try:
                if ds is self._ds and self._block is not None:
                    self._block.forget(n)
                if ds.shape[0] > n:
                    ds.resize(n, axis=0)
            except Exception:
                log.warning("%s: cannot shrink %s back to %d frames after a failed append",
                            self.path, ds.name, n)

    def flush(self) -> None:
        """Make every appended frame visible to SWMR readers."""
        if not self.closed and self._flushed != self._count:
            try:
                self._flush_beside()  # checksums first: a reader never sees a frame's
                if self._block is not None:  # bytes before its CRC can be there
                    self._block.write_out(self._count)
                self._ds.flush()
                self._land_start(self._count)
            except OSError as exc:  # (HDF5's text spans lines: one line naming the file)
                raise write_error(self.path, self._flushed, self._count - self._flushed,
                                  self._announced, exc) from exc
            self._flushed = self._count

    def _flush_beside(self) -> None:
        """Flush what is kept per frame beside the frames (the checksums, ``_beside``)."""
        for ds in self._beside:
            ds.flush()

    def set_counters(self, values: Mapping[str, int]) -> None:
        """Write the counters declared with ``counters=`` (e.g. the readout's good,
        corrupt and dropped frames before closing); undeclared names are refused
        (``dataflow.hdf5_records``)."""
        self._check_open()
        self._records.set_counters(values)

    def add_lost(self, indices: Sequence[int]) -> None:
        """Record that the frames of acquisition ``indices`` were lost before reaching
        the file (``lost_frames=True``; ``dataflow.hdf5_records``)."""
        self._check_open()
        self._records.add_lost(indices)

    # -- bluesky documents -------------------------------------------------------------

    def describe_key(self, source: str = "smeflow.dataflow.hdf5") -> dict[str, Any]:
        """The ``describe()`` entry of the frames: external ``STREAM:`` data, shape, dtype.

        The key must not appear in the device's ``read()``.
        """
        return {"source": source, "shape": list(self.frame_shape), "dtype": "array",
                "dtype_numpy": self.dtype.str, "external": "STREAM:"}

    owner_closes = False
    """True when the device that writes the file closes it before its run's stop
    document itself (``close_run_files``, as smeflow's detector): else
    ``dataflow.run_files`` closes it then, once a run announced it (``asset_docs``), so
    that a file the disk cannot complete fails its run (a later ``close()`` returns the
    digest; another ``append`` is refused)."""

    def asset_docs(self) -> Iterator[Document]:
        """Documents announcing the frames appended since the last call.

        Yields ``("stream_resource", doc)`` the first time there are frames, then one
        ``("stream_datum", doc)`` covering the new frame indices (nothing when there are
        none). The frames are flushed first, so readers can see what is announced.
        An ophyd device's ``collect_asset_docs()`` can simply ``yield from`` this.
        """
        if self._count == self._announced:
            return
        self.flush()
        if not self._resource_sent:
            self._resource_sent = True
            note_announced(self)
            yield "stream_resource", dict(self.stream_resource)
        start, self._announced = self._announced, self._count
        datum = self._compose_datum(indices={"start": start, "stop": self._count})
        yield "stream_datum", dict(datum)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (f"<FrameWriter {self.path} {self._count} x {self.frame_shape} {self.dtype} "
                f"chunks={self.chunk_shape} {state}>")


__all__ = [
    "DEFAULT_DATASET", "FILE_FORMAT", "HDF5_MIMETYPE", "FrameFileError", "FrameMismatchError",
    "FrameReader", "FrameWriteError", "FrameWriter", "HDF5ReadError", "Layout", "UnsafePathError",
    "WriterClosedError", "announcement_mark", "failed_write", "file_sha256", "open_frames",
    "open_in_process", "per_frame_chunks", "read_counters", "read_lost", "resolve_in_folder",
    "run_end_writers",
    "tomo_chunks", "write_nexus_tree",
]
