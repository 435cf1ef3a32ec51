"""Synthetic runs written straight into a catalog, without a beamline.

A benchmark or a test that needs a stored run (a tomography scan to reconstruct, streams
with external frames to list) writes one here: each stack of frames to its own HDF5 file
with :class:`~dataflow.hdf5.FrameWriter`, and the run's documents (start, then per stream
a descriptor, the file's ``stream_resource`` / ``stream_datum`` and one event per frame
carrying a scalar reading, then stop) through the catalog's writer, as a detector's run
is stored. The frames are the caller's; the documents are the same for every caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from event_model import compose_run

from dataflow.catalog import Catalog
from dataflow.hdf5 import FrameWriter


def write_frames_run(catalog: Catalog, metadata: Mapping[str, Any],
                     stacks: Mapping[str, npt.NDArray[Any]], *, source: str,
                     file_prefix: str = "", data_key: str = "det_image",
                     reading: str = "frame",
                     reading_dtype: Literal["integer", "number"] = "integer") -> str:
    """Write a run with one stream per entry of ``stacks`` (in their order); its uid.

    Parameters
    ----------
    catalog
        Where the run goes; the frame files go to its ``raw_dir``.
    metadata
        The start document's metadata (``plan_name`` and whatever the reader expects).
    stacks
        Stream name to its ``uint16`` frames, ``(frames, rows, cols)``, one file per stream named
        ``<file_prefix><stream>_<first 8 characters of the uid>.h5``.
    source
        The ``source`` of the scalar reading's data key.
    data_key
        The data key the frames are announced under.
    reading, reading_dtype
        The scalar reading each event carries besides its frame: the frame's index in
        its stream, an ``int`` (``"integer"``) or a ``float`` (``"number"``).
    """
    writer = catalog.writer()
    bundle = compose_run(metadata=dict(metadata))
    uid: str = bundle.start_doc["uid"]
    writer("start", bundle.start_doc)
    for stream, frames in stacks.items():
        with FrameWriter(catalog.raw_dir, f"{file_prefix}{stream}_{uid[:8]}.h5",
                         frames.shape[1:], data_key=data_key) as files:
            files.append_many(frames)
            desc = bundle.compose_descriptor(name=stream, data_keys={
                data_key: files.describe_key(),
                reading: {"source": source, "dtype": reading_dtype, "shape": []}})
            writer("descriptor", desc.descriptor_doc)
            for name, doc in files.asset_docs():
                doc = {**doc, "run_start": uid} if name == "stream_resource" else {
                    **doc, "descriptor": desc.descriptor_doc["uid"],
                    "seq_nums": {"start": 1, "stop": len(frames) + 1}}
                writer(name, doc)
            for i in range(len(frames)):
                value = i if reading_dtype == "integer" else float(i)
                writer("event", desc.compose_event(data={reading: value},
                                                   timestamps={reading: 0.0}, seq_num=i + 1))
    writer("stop", bundle.compose_stop())
    return uid


def write_tomo_run(catalog: Catalog, dark: npt.NDArray[Any], flat: npt.NDArray[Any],
                   primary: npt.NDArray[Any], angles: Sequence[float] | npt.NDArray[Any],
                   *, source: str, file_prefix: str = "") -> str:
    """Write a ``tomo_scan`` run as ``analysis.reduce`` reads one; its uid.

    Streams ``dark``, ``flat`` and ``primary`` (one projection per angle, degrees) with
    the frames under ``det_image`` and the frame index as ``frame``; the start document
    names the detector ``det``, the angles and their number.
    """
    angles = np.asarray(angles, dtype=float)
    if len(primary) != len(angles):
        raise ValueError(f"write_tomo_run: {len(primary)} projections for "
                         f"{len(angles)} angles; expected one projection per angle")
    metadata = {"plan_name": "tomo_scan", "angles": angles.tolist(), "detector": "det",
                "num_projections": len(angles)}
    return write_frames_run(catalog, metadata,
                            {"dark": dark, "flat": flat, "primary": primary},
                            source=source, file_prefix=file_prefix)
