"""The frame files of one detector: one per event stream its frames are read into.

A frame is written when the RunEngine reads it into an event (``collect_asset_docs``),
into the file of that event's stream (:func:`devices.streams.reading_stream`), so

* each stream's frames are a dataset of their own from index 0 — Tiled's writer binds a
  ``stream_resource`` to one stream and serves the first N frames of its dataset, so a
  detector read into both the baseline and the primary stream must not share a dataset
  between them;
* a frame that no event announces (the plan was paused or suspended between the trigger
  and the read, and then aborted or re-triggered) never reaches a file: files and events
  always agree.

While the detector is staged, the files of the staging are named
``<device>_<time>_<id>_<stream>.h5`` and closed by ``unstage`` or, before, when a run ends
(``end_run``: before the run's stop document, ``dataflow.run_files``); a fly acquisition writes
its frames as they come into ``<device>_<time>_<id>_fly<k>.h5`` and, when it is closed,
frames that no ``collect`` announced are dropped. A detector read without being staged (a
``SupplementalData`` baseline reads devices the plan never stages) writes each frame to a
file of its own, closed as soon as the frame is announced: the baseline's two frames (start
and end of the run) are two files under one stream, which the catalog joins.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from dataflow.hdf5 import Document, FrameWriter
from dataflow.hdf5_angles import AngleFrameWriter

__all__ = ["ExposureMismatch", "FrameFiles", "file_label"]

OpenFile = Callable[[str, float, float | None, bool], FrameWriter]
"""Opens a new frame file by name (inside the detector's folder) for frames of the given
exposure (seconds: the file's ``count_time``) whose first exposure started at the given
wall time (its NeXus ``start_time``; None: not known when the file opens, a fly's); True
for a fly acquisition's file. A file that records the sample's stages (an
``AngleFrameWriter``) takes each frame's position from ``announce``."""


class ExposureMismatch(ValueError):
    """A frame's exposure differs from the one its stream's open file records."""


def file_label(stream: str) -> str:
    """A stream name made safe for a file name (letters, digits, ``-`` and ``_``)."""
    label = re.sub(r"[^A-Za-z0-9_-]+", "_", stream).strip("_")[:64]
    return label or "stream"


class FrameFiles:
    """The open frame files of one detector (see the module docstring).

    Parameters
    ----------
    device
        The detector's name (the start of every file name).
    open_file
        Makes a ``FrameWriter`` for a new file name (the detector supplies frame shape,
        data key and attributes).
    """

    def __init__(self, device: str, open_file: OpenFile) -> None:
        self.device = device

        def owned(name: str, exposure: float, started: float | None,
                  fly: bool) -> FrameWriter:  # (closed by end_run: close_run_files)
            writer = open_file(name, exposure, started, fly)
            writer.owner_closes = True
            return writer
        self._open: OpenFile = owned
        self._stem: str | None = None
        self._streams: dict[str, FrameWriter] = {}
        self._exposures: dict[str, float] = {}
        self._fly: FrameWriter | None = None
        self._flights = 0
        self.digests: dict[str, str] = {}
        """SHA-256 of every file closed, by path, in the order they were closed."""

    def _new_stem(self) -> str:
        return f"{self.device}_{time.strftime('%Y%m%d-%H%M%S')}_{uuid.uuid4().hex[:8]}"

    @property
    def staged(self) -> bool:
        """True between ``begin()`` and ``end()``."""
        return self._stem is not None

    @property
    def fly(self) -> FrameWriter | None:
        """The file of the current fly acquisition, if any."""
        return self._fly

    def open_files(self) -> list[FrameWriter]:
        """Every file open now."""
        return [*self._streams.values(), *([self._fly] if self._fly is not None else [])]

    def begin(self) -> None:
        """A staging starts: new files from now on."""
        self._stem = self._new_stem()
        self._flights = 0

    def announce(self, stream: str, frame: np.ndarray,
                 counters: Callable[[], Mapping[str, int]], exposure: float,
                 started: float | None = None,
                 position: Sequence[float] | None = None) -> list[Document]:
        """Write ``frame``, exposed for ``exposure`` seconds from wall time ``started``
        with the sample at ``position`` (one value per axis of a file that records them,
        an ``AngleFrameWriter``), into the file of ``stream`` and return the documents
        that announce it (``stream_resource`` the first time, then ``stream_datum``).

        Outside a staging the frame gets a file of its own, closed at once with
        ``counters()`` recorded in it. A stream's file records one ``count_time``: a frame
        of another exposure is refused (:class:`ExposureMismatch`, nothing written) —
        each event stream of a staging may have its own exposure."""
        if self._stem is None:
            writer = self._open(f"{self._new_stem()}_{file_label(stream)}.h5", exposure,
                                started, False)
            try:
                _append(writer, frame, position)
                docs = list(writer.asset_docs())
            finally:
                self._close(writer, counters())
            return docs
        staged = self._streams.get(stream)
        if staged is None:
            staged = self._open(f"{self._stem}_{file_label(stream)}.h5", exposure, started,
                                False)
            self._streams[stream] = staged
            self._exposures[stream] = exposure
        elif exposure != self._exposures[stream]:
            raise ExposureMismatch(
                f"{self.device}: a frame exposed {exposure:g} s cannot go into the "
                f"{stream!r} stream's file {staged.path.name}, which records count_time "
                f"{self._exposures[stream]:g} s for its frames; change the exposure between "
                "event streams, or unstage and stage again for a new file")
        _append(staged, frame, position)
        return list(staged.asset_docs())

    def open_fly(self, counters: Mapping[str, int], exposure: float) -> FrameWriter:
        """A new file for a fly acquisition of frames exposed ``exposure`` seconds (the
        previous one of this staging is closed)."""
        if self._stem is None:
            raise RuntimeError(f"{self.device}: prepare() before stage(); stage the detector "
                               "first (bluesky plans do)")
        if self._fly is not None:
            self._close(self._fly, counters)
        self._flights += 1
        self._fly = self._open(f"{self._stem}_fly{self._flights}.h5", exposure, None, True)
        return self._fly

    def end(self, counters: Mapping[str, int]) -> list[str]:
        """The staging ends: close every file (recording ``counters``); returns their
        paths in the order closed. Every file is closed even when one cannot be (a full
        disk); the first such error is raised afterwards."""
        files = self.open_files()
        self._streams.clear()
        self._exposures.clear()
        self._fly = None
        self._stem = None
        return self._close_all(files, counters)

    def end_run(self, counters: Mapping[str, int], keep_fly: bool = False) -> list[str]:
        """A run ends, the staging goes on: close the files open now as :meth:`end` does
        (before the run's stop document: ``dataflow.run_files``), but the fly file when
        ``keep_fly`` (an acquisition still writing it); frames from now on go to new
        files, named anew."""
        if self._stem is None:
            return []
        files = [*self._streams.values()]
        if not keep_fly and self._fly is not None:
            files.append(self._fly)
            self._fly = None
        self._streams.clear()
        self._exposures.clear()
        self._stem = self._new_stem()
        return self._close_all(files, counters)

    def _close_all(self, files: list[FrameWriter], counters: Mapping[str, int]) -> list[str]:
        failed: BaseException | None = None
        for writer in files:
            try:
                self._close(writer, counters)
            except Exception as exc:
                failed = failed or exc
        if failed is not None:
            raise failed
        return [str(writer.path) for writer in files]

    def _close(self, writer: FrameWriter, counters: Mapping[str, int]) -> None:
        """Drop frames no document announced, record the counters, close and keep the
        digest."""
        writer.discard_unannounced()
        if writer.counter_names:
            writer.set_counters({name: int(counters[name]) for name in writer.counter_names})
        self.digests[str(writer.path)] = writer.close()


def _append(writer: FrameWriter, frame: np.ndarray, position: Sequence[float] | None) -> None:
    """``frame`` into ``writer``, with the sample's ``position`` when the file records it."""
    if isinstance(writer, AngleFrameWriter):
        writer.append(frame, position)
    else:
        writer.append(frame)
