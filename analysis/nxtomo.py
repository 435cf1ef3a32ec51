"""A tomography run as one NeXus NXtomo file, the layout ESRF's tools read (nabu, tomwer,
tomoscan's ``NXtomoScan``): :func:`export_nxtomo`.

A run writes one frame file per stream (``dark``, ``flat``, ``primary``;
:mod:`plans.tomo`), each a NeXus file that declares no application definition, because
NXtomo wants every frame of the scan in one entry with its ``image_key`` (0 projection,
1 flat, 2 dark) and the sample's ``rotation_angle``. The export writes that entry with
ESRF's own ``nxtomo`` library: the frames in acquisition order (darks, flats,
projections), each with its image key and the rotation stage's reading taken with it
(the angle the position capture latched, for a fly scan's projections), the detector's
pixel size and count time and the sample's name from the frame files, the run's start
and end time, the beam energy and the distance when the run has them (an imported
scan's ``energy_keV``, ``distance_m``), and the detector's pixel mask
(``instrument/detector/pixel_mask``, the NeXus bits, from the run's ``mask`` stream or its
frame files).

The frames are copied into the export (``instrument/detector/data``, linked as the
entry's plot ``data/data``), so it stands alone. ``link=True`` (``--link``) leaves them in
the run's files instead, as nxtomomill does: an HDF5 virtual dataset whose sources are
those files by relative path — small and written at once, and read wherever the export
and the data folder move together. Two hazards come with it: HDF5 reads a virtual
dataset whose source file is missing as zeros, without an error; and nexusformat
(NeXpy) takes a virtual dataset for one frame per source file, so it sees 3 frames, one
per stream, where h5py, nxtomo and tomoscan see them all. The file appears complete or
not at all (written next to its name, then renamed).

A run that is no tomography run, or whose frames are not local HDF5 files, or whose
frames and angles disagree in number, is refused with one :class:`ReductionError`
naming the run and what is wrong.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from analysis.file_frames import FrameSource, frame_source
from analysis.reductions import ReductionError
from analysis.run_nodes import RunNodes, run_nodes
from analysis.run_read import reduction_for, stream_frames, tomo_streams

__all__ = ["IMAGE_KEYS", "NXtomoExport", "export_nxtomo"]

IMAGE_KEYS = {"dark": 2, "flat": 1, "projection": 0}
"""NXtomo's ``image_key`` of each kind of frame, in the order the export writes them."""
DETECTOR = "entry/instrument/detector"
COPY_FRAMES = 64
"""Frames read and written at a time when the export copies them."""


@dataclass(frozen=True)
class NXtomoExport:
    """What :func:`export_nxtomo` wrote: the file, its entry, the number of frames of
    each kind (``dark``, ``flat``, ``projection``) and whether they are linked (a virtual
    dataset over the run's files) rather than copied."""

    path: Path
    entry: str
    frames: dict[str, int]
    linked: bool


@dataclass(frozen=True)
class _Stream:
    kind: str
    name: str
    source: FrameSource
    angles: npt.NDArray[np.float64]


def export_nxtomo(run: Any, path: str | Path, *, entry: str = "entry0000",
                  link: bool = False, overwrite: bool = False) -> NXtomoExport:
    """Write tomography run ``run`` (a catalog run: ``Catalog.run(uid)``, a Tiled or
    databroker v2 run over local files) as the NXtomo file ``path`` (see the module
    docstring). ``entry``: the entry's name (``entry0000``, as nxtomomill names it);
    ``link``: a virtual dataset over the run's files instead of the frames themselves;
    ``overwrite``: replace an existing file (else ``FileExistsError``)."""
    from nxtomo.application.nxtomo import NXtomo

    out = Path(path)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: exists (overwrite=True, or --overwrite, replaces it)")
    start: Mapping[str, Any] = run.metadata["start"]
    nodes = run_nodes(run)
    if reduction_for(start, nodes.streams) != "tomo_fbp":
        raise ReductionError(f"run {start['uid']}: not a tomography run (plan "
                             f"{start.get('plan_name')!r}, streams "
                             f"{', '.join(nodes.streams) or 'none'}); NXtomo needs darks, "
                             "flats and projections with their angles")
    streams = [_stream(run, start, nodes, kind) for kind in IMAGE_KEYS]
    shape = streams[0].source.shape[1:]
    for s in streams:
        if s.source.shape[1:] != shape:
            raise ReductionError(f"run {start['uid']}: stream {s.name!r} has frames of "
                                 f"{s.source.shape[1:]}, stream {streams[0].name!r} {shape}")
    first_file = streams[-1].source.files[0][0]
    described = _detector_fields(first_file)

    nx = NXtomo()
    nx.title = f"{start.get('plan_name', 'tomography')} scan {start.get('scan_id', '')}".strip()
    nx.start_time = datetime.fromtimestamp(float(start["time"]), UTC)
    stop = run.metadata.get("stop")
    if stop:
        nx.end_time = datetime.fromtimestamp(float(stop["time"]), UTC)
    detector = nx.instrument.detector
    detector.image_key_control = np.concatenate(
        [np.full(s.source.shape[0], IMAGE_KEYS[s.kind], dtype=np.int64) for s in streams])
    nx.sample.rotation_angle = _quantity(np.concatenate([s.angles for s in streams]), "degree")
    for name in ("x_pixel_size", "y_pixel_size", "count_time"):
        if name in described:
            setattr(detector, name, described[name])
    # (a scan imported from NXtomo keeps its beam energy and distance: dataflow.nxtomo_import)
    if isinstance(start.get("energy_keV"), (int, float)):
        nx.instrument.beam.incident_energy = _quantity(float(start["energy_keV"]), "keV")
    if isinstance(start.get("distance_m"), (int, float)):
        detector.distance = _quantity(float(start["distance_m"]), "m")
    if "sample_name" in described:
        nx.sample.name = described["sample_name"]
    if "source_name" in described:
        nx.instrument.source.name = described["source_name"]
    mask = _pixel_mask(run, start, nodes, first_file, shape)

    with _replacing(out) as scratch:
        nx.save(str(scratch), data_path=entry, overwrite=True)
        with h5py.File(scratch, "r+") as f:
            _write_frames(f[entry], streams, scratch.parent, link)
            if mask is not None:
                f[entry]["instrument/detector"].create_dataset("pixel_mask", data=mask)
    return NXtomoExport(out, entry, {s.kind: s.source.shape[0] for s in streams}, link)


def _stream(run: Any, start: Mapping[str, Any], nodes: RunNodes, kind: str) -> _Stream:
    name = tomo_streams(start)[kind]
    _, node = stream_frames(run, name, start, nodes)
    source = frame_source(node, f"run {start['uid']} stream {name!r}")
    n = source.shape[0]
    axis = start.get("rotation_axis")
    stream = nodes.streams.get(name) or run[name]
    if not isinstance(axis, str) or axis not in stream:
        raise ReductionError(f"run {start['uid']} stream {name!r}: no reading of the rotation "
                             f"stage {axis!r} (NXtomo wants each frame's angle)")
    angles = np.asarray(stream[axis].read(), dtype=np.float64)
    if angles.shape != (n,):
        if run.metadata.get("stop") or angles.ndim != 1 or len(angles) < n:
            raise ReductionError(f"run {start['uid']} stream {name!r}: {n} frames but "
                                 f"{angles.shape[0] if angles.ndim else 0} angles")
        angles = angles[:n]  # a killed run: its events may name frames never stored
    return _Stream(kind, name, source, angles)


def _detector_fields(path: str) -> dict[str, Any]:
    """Pixel size, count time and the sample's and source's names of a frame file."""
    out: dict[str, Any] = {}
    with h5py.File(path, "r") as f:
        det = f.get(DETECTOR)
        for name, unit in (("x_pixel_size", "m"), ("y_pixel_size", "m"), ("count_time", "s")):
            if det is not None and name in det:
                units = det[name].attrs.get("units", unit)
                out[name] = _quantity(float(det[name][()]), str(units))
        for key, where in (("sample_name", "entry/sample/name"),
                           ("source_name", "entry/instrument/source/name")):
            if where in f:
                out[key] = f[where].asstr()[()]
    return out


def _quantity(value: Any, unit: str) -> Any:
    import pint

    return value * pint.get_application_registry()(unit)  # type: ignore[no-untyped-call]


def _write_frames(entry: h5py.Group, streams: list[_Stream], folder: Path,
                  link: bool) -> None:
    """The frames as the detector's ``data`` (and the entry's plot ``data/data``), in the
    files' dtype: the frames themselves, one chunk a frame, read and written 64 frames at a
    time; with ``link`` a virtual dataset over the run's files by path relative to
    ``folder`` (HDF5 looks for a relative source next to the virtual file)."""
    n = sum(s.source.shape[0] for s in streams)
    rows, cols = streams[0].source.shape[1:]
    with h5py.File(streams[0].source.files[0][0], "r") as f:
        dtype = f[streams[0].source.files[0][1]].dtype
    det = entry["instrument/detector"]
    if link:
        layout = h5py.VirtualLayout(shape=(n, rows, cols), dtype=dtype)
        offset = 0
        for s in streams:
            left = s.source.shape[0]
            for path, dataset, count in s.source.files:
                take = min(count, left)
                if take > 0:
                    source = h5py.VirtualSource(os.path.relpath(path, folder), dataset,
                                                shape=(count, rows, cols), dtype=dtype)
                    layout[offset:offset + take] = source[:take]
                offset, left = offset + take, left - take
        data = det.create_virtual_dataset("data", layout)
    else:
        data = det.create_dataset("data", shape=(n, rows, cols), dtype=dtype,
                                  chunks=(1, rows, cols))
        offset = 0
        for s in streams:
            with s.source.open() as frames:
                for lo in range(0, s.source.shape[0], COPY_FRAMES):
                    block = frames.read(slice(lo, min(lo + COPY_FRAMES, s.source.shape[0])))
                    data[offset + lo:offset + lo + len(block)] = block
            offset += s.source.shape[0]
    data.attrs["interpretation"] = "image"
    data.attrs["target"] = data.name  # (how NeXus tells the plot's link from a copy)
    det.attrs["NX_class"] = "NXdetector"  # (nxtomo leaves a detector without data unclassed)
    plot = entry.require_group("data")
    plot.attrs.update({"NX_class": "NXdata", "signal": "data"})
    if "data" not in plot:
        plot["data"] = data


def _pixel_mask(run: Any, start: Mapping[str, Any], nodes: RunNodes, frame_file: str,
                shape: tuple[int, int]) -> npt.NDArray[Any] | None:
    """The run's NeXus pixel-mask bits: its ``mask`` stream's, else its projection file's
    ``pixel_mask``, else None; ``ReductionError`` when they are not of the frames' shape."""
    from dataflow.pixel_mask import MASK_STREAM

    if MASK_STREAM in nodes:
        _, node = stream_frames(run, MASK_STREAM, start, nodes)
        bits: npt.NDArray[Any] = np.asarray(node[0:1])[0]
    else:
        with h5py.File(frame_file, "r") as f:
            found = f.get(f"{DETECTOR}/pixel_mask")
            if found is None:
                return None
            bits = np.asarray(found[()])
    if bits.shape != shape:
        raise ReductionError(f"run {start['uid']}: pixel mask of {bits.shape}, frames of {shape}")
    return bits


@contextmanager
def _replacing(out: Path) -> Iterator[Path]:
    """A scratch file next to ``out``, renamed to ``out`` when the block ends without an
    error and removed when it does not."""
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = out.parent / f".{out.name}.{uuid.uuid4().hex}.part"  # (created by the writer)
    try:
        yield scratch
        os.replace(scratch, out)
    finally:
        scratch.unlink(missing_ok=True)
