"""A tomography scan from elsewhere, as a NeXus NXtomo file (ESRF's nxtomomill and Bliss
write them; ``smeflow export nxtomo`` too), stored as a run of the catalog:
:func:`import_nxtomo`, ``smeflow import nxtomo FILE``.

The run is laid out as a ``tomo_scan``'s (:mod:`plans.tomo`), so ``smeflow reduce`` and
every reader of the catalog take it as one: streams ``dark``, ``flat`` and ``primary``,
each frame in the stream's own HDF5 frame file (:class:`~dataflow.hdf5.FrameWriter`,
with its CRC-32 per frame and its digest) under the data key ``det_image``, one event
per frame with the rotation angle it was taken at (``rotation``, degrees), and a start
document naming the file it came from (``imported_from``: path, entry, SHA-256).

The file is read with ESRF's ``nxtomo`` library, which knows the NXtomo layouts of its
versions. Each frame goes where its ``image_key_control`` says (0 projection, 1 flat,
2 dark, as ``image_key``), frames of one kind in the file's order: flats taken before
and after the projections are one ``flat`` stream. Two kinds are left out, as nabu
leaves them out: invalid frames (3) and alignment projections (-1: ``image_key`` 0, taken
at chosen angles after the scan; a reconstruction that took them would count those
angles twice). The frames are copied, 64 at a time.

A file that is not NXtomo, or whose frames, keys and angles disagree in number, or with
no projection, dark or flat to reconstruct with, is refused with one
:class:`NXtomoImportError` naming the file and what is wrong, before anything is
written; a failure while copying removes the frame files already written, and no
document reaches the catalog until every frame is stored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
from event_model import compose_run

from dataflow.catalog import Catalog
from dataflow.errors import CatalogError
from dataflow.hdf5 import FrameWriter
from dataflow.hdf5_files import file_sha256

__all__ = ["KINDS", "NXtomoImportError", "NXtomoImported", "check_nxtomo", "import_nxtomo"]

KINDS = {"dark": 2, "flat": 1, "primary": 0}
"""The run's streams and the ``image_key_control`` of their frames, in the run's order."""
CHUNK = 64
DATA_KEY = "det_image"
FRAMES = "instrument/detector/data"
"""Where an NXtomo entry keeps its frames (every version of the definition)."""
ROTATION = "rotation"


class NXtomoImportError(CatalogError):
    """An NXtomo file that cannot be imported (names the file and what is wrong)."""


@dataclass(frozen=True)
class NXtomoImported:
    """What :func:`import_nxtomo` stored: the run's uid, its frames per stream, and how
    many frames of the file were left out (invalid or alignment projections)."""

    uid: str
    frames: dict[str, int]
    left_out: int


@dataclass(frozen=True)
class _Scan:
    entry: str
    dataset: str
    keys: npt.NDArray[np.int64]
    angles: npt.NDArray[np.float64]
    shape: tuple[int, int]
    dtype: np.dtype[Any]
    metadata: dict[str, Any]


def import_nxtomo(catalog: Catalog, path: str | os.PathLike[str], *,
                  entry: str | None = None) -> NXtomoImported:
    """Store the NXtomo scan of ``path`` (its only NXtomo entry, or ``entry``) as a run of
    ``catalog``; see the module docstring."""
    source = Path(path)
    scan = _read_scan(source, entry)
    digest = file_sha256(source)
    metadata = {**scan.metadata, "scan_id": catalog.scan_ids.next(),
                "imported_from": {"file": str(source.resolve()), "entry": scan.entry,
                                  "sha256": digest}}
    bundle = compose_run(metadata=metadata)
    uid: str = bundle.start_doc["uid"]
    documents: list[tuple[str, dict[str, Any]]] = [("start", dict(bundle.start_doc))]
    written: list[Path] = []
    try:
        with h5py.File(source, "r") as f:
            frames = f[scan.dataset]
            for stream, key in KINDS.items():
                documents += _store_stream(catalog, bundle, uid, stream, frames,
                                           np.flatnonzero(scan.keys == key), scan, written)
    except BaseException:
        for file in written:
            file.unlink(missing_ok=True)
            Path(f"{file}.sha256").unlink(missing_ok=True)
        raise
    documents.append(("stop", dict(bundle.compose_stop())))
    writer = catalog.writer()
    for name, doc in documents:
        writer(name, doc)
    counts = {s: int(np.count_nonzero(scan.keys == k)) for s, k in KINDS.items()}
    return NXtomoImported(uid, counts, len(scan.keys) - sum(counts.values()))


def _store_stream(catalog: Catalog, bundle: Any, uid: str, stream: str,
                  frames: h5py.Dataset, index: npt.NDArray[np.intp], scan: _Scan,
                  written: list[Path]) -> list[tuple[str, dict[str, Any]]]:
    """Copy the frames ``index`` of the file into the stream's frame file; the stream's
    documents (descriptor, stream_resource/stream_datum, one event per frame)."""
    name = f"nxtomo_{stream}_{uid[:8]}.h5"
    written.append(catalog.raw_dir / name)
    docs: list[tuple[str, dict[str, Any]]] = []
    fields = {k: (scan.metadata[f"{k}_m"], "m") for k in ("x_pixel_size", "y_pixel_size")
              if f"{k}_m" in scan.metadata}
    with FrameWriter(catalog.raw_dir, name, scan.shape, dtype=scan.dtype,
                     data_key=DATA_KEY, detector_fields=fields) as files:
        for lo in range(0, len(index), CHUNK):
            files.append_many(frames[index[lo:lo + CHUNK]])
        desc = bundle.compose_descriptor(name=stream, data_keys={
            DATA_KEY: files.describe_key(),
            ROTATION: {"source": "nxtomo:sample/rotation_angle", "dtype": "number",
                       "shape": [], "units": "deg"}})
        docs.append(("descriptor", dict(desc.descriptor_doc)))
        for kind, doc in files.asset_docs():
            doc = {**doc, "run_start": uid} if kind == "stream_resource" else {
                **doc, "descriptor": desc.descriptor_doc["uid"],
                "seq_nums": {"start": 1, "stop": len(index) + 1}}
            docs.append((kind, doc))
    for i, frame in enumerate(index):
        docs.append(("event", dict(desc.compose_event(
            data={ROTATION: float(scan.angles[frame])}, timestamps={ROTATION: 0.0},
            seq_num=i + 1))))
    return docs


def check_nxtomo(path: str | os.PathLike[str], entry: str | None = None) -> str:
    """The NXtomo entry of ``path`` that :func:`import_nxtomo` would store, checked as it
    checks it (``NXtomoImportError`` otherwise): what a command asks before it creates a
    catalog for the scan, so that a bad file leaves nothing behind."""
    return _read_scan(Path(path), entry).entry


def _read_scan(source: Path, entry: str | None) -> _Scan:
    """What the run needs of the file, checked; ``NXtomoImportError`` otherwise."""
    from nxtomo.application.nxtomo import NXtomo

    where = str(source)
    try:
        if not source.is_file():
            raise NXtomoImportError(f"{where}: no such file")
        if not h5py.is_hdf5(source):
            raise NXtomoImportError(f"{where}: not an HDF5 file")
        # opened and walked without SWMR first: a file cut short fails here at once;
        # nxtomo's reader (silx) falls back to SWMR mode, where HDF5 retries the missing
        # metadata without end (an HDF5 file cut short hung the import)
        with h5py.File(source, "r") as f:
            f.visit(lambda _: None)
        entries = [e.strip("/") for e in NXtomo.get_valid_entries(str(source))]
    except OSError as exc:
        raise NXtomoImportError(f"{where}: cannot be read ({exc})") from None
    if entry is None:
        if len(entries) != 1:
            raise NXtomoImportError(
                f"{where}: {len(entries)} NXtomo entries ({', '.join(entries) or 'none'}); "
                + ("name one (--entry)" if entries else "is it an NXtomo file?"))
        entry = entries[0]
    elif entry.strip("/") not in entries:
        raise NXtomoImportError(f"{where}: no NXtomo entry {entry!r} (NXtomo entries: "
                                f"{', '.join(entries) or 'none'})")
    try:
        nx = NXtomo().load(str(source), entry)
    except Exception as exc:  # (nxtomo raises what h5py and its own checks raise)
        raise NXtomoImportError(f"{where} entry {entry!r}: not readable as NXtomo "
                                f"({type(exc).__name__}: {exc})") from None
    detector = nx.instrument.detector
    dataset = _frames_dataset(source, entry)
    with h5py.File(source, "r") as f:
        data = f[dataset]
        shape, dtype = tuple(data.shape), data.dtype
    keys = np.asarray([getattr(k, "value", k) for k in
                       (detector.image_key_control if detector.image_key_control is not None
                        else [])], dtype=np.int64)
    angles = _magnitude(nx.sample.rotation_angle, "degree")
    what = f"{where} entry {entry!r}"
    if len(shape) != 3:
        raise NXtomoImportError(f"{what}: frames of shape {shape}; expected (frames, rows, "
                                "columns)")
    if keys.shape != (shape[0],) or angles is None or angles.shape != (shape[0],):
        raise NXtomoImportError(
            f"{what}: {shape[0]} frames, {len(keys)} image keys and "
            f"{0 if angles is None else angles.size} rotation angles; expected one of each "
            "per frame")
    missing = [s for s, k in KINDS.items() if not (keys == k).any()]
    if missing:
        raise NXtomoImportError(f"{what}: no {' and no '.join(missing)} frames; a "
                                "reconstruction needs darks, flats and projections")
    if not np.isfinite(angles).all():
        raise NXtomoImportError(f"{what}: a rotation angle that is not a number")
    projections = angles[keys == KINDS["primary"]]
    metadata: dict[str, Any] = {
        "plan_name": "nxtomo_import", "detectors": ["det"], "detector": "det",
        "rotation_axis": ROTATION, "angle_units": "deg", "angles": projections.tolist(),
        "num_projections": int(projections.size),
        "n_darks": int((keys == KINDS["dark"]).sum()),
        "n_flats": int((keys == KINDS["flat"]).sum()),
        "streams": {"dark": "dark", "flat": "flat", "projection": "primary"},
        "image_key": {s: k for s, k in KINDS.items()},
        "hints": {"dimensions": [[[ROTATION], "primary"]]}}
    for name, value in (("title", nx.title), ("sample", nx.sample.name)):
        if isinstance(value, str) and value:
            metadata[name] = value
    beam = getattr(nx.instrument, "beam", None)
    energy = getattr(beam, "incident_energy", None) if beam is not None else nx.energy
    for name, value, unit in (("energy_keV", energy, "keV"),
                              ("distance_m", detector.distance, "m"),
                              ("x_pixel_size_m", detector.x_pixel_size, "m"),
                              ("y_pixel_size_m", detector.y_pixel_size, "m")):
        number = _magnitude(value, unit)
        if number is not None and number.size == 1 and np.isfinite(number).all():
            metadata[name] = float(number.reshape(()))
    return _Scan(entry, dataset, keys, angles, (shape[1], shape[2]), dtype, metadata)


def _frames_dataset(source: Path, entry: str) -> str:
    """The path of the entry's frames in ``source``; a virtual dataset's source files
    must all be there (HDF5 reads a missing one's frames as zeros, without an error)."""
    dataset = f"{entry.strip('/')}/{FRAMES}"
    with h5py.File(source, "r") as f:
        data = f.get(dataset)
        if not isinstance(data, h5py.Dataset):
            raise NXtomoImportError(f"{source} entry {entry!r}: no frames at {FRAMES}")
        if data.is_virtual:
            for part in data.virtual_sources():
                name = part.file_name
                found = source if name == "." else (
                    Path(name) if os.path.isabs(name) else source.parent / name)
                if not found.is_file():
                    raise NXtomoImportError(
                        f"{source} entry {entry!r}: the frames are a virtual dataset over "
                        f"{name}, which is not there (HDF5 would read its frames as 0)")
    return dataset


def _magnitude(value: Any, unit: str) -> npt.NDArray[np.float64] | None:
    """A pint quantity (or a plain number, taken as ``unit``) as float64 in ``unit``."""
    if value is None:
        return None
    if hasattr(value, "to"):
        value = value.to(unit).magnitude
    return np.atleast_1d(np.asarray(value, dtype=np.float64))
