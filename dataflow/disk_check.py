"""What of a run is really on disk: events per stream, intact frames per data key.

``repair_run`` uses it to close a killed run, ``verify_run`` (``smeflow catalog verify``)
to compare the frames on disk with what the catalog announces and the events with the
stop document. A frame counts as on disk when its file exists, HDF5 can read it, the
dataset's extent covers it, its chunks lie inside the file and it matches the CRC-32 its
writer stored (``dataflow.integrity``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import CatalogError
from .integrity import HDF5ReadError

DEFAULT_DATASET = "/entry/data/data"


@dataclass
class DiskCheck:
    """What ``check_run_on_disk`` found for one run."""

    events: dict[str, int] = field(default_factory=dict)
    """Events per stream in the catalog."""
    sequence: dict[str, int] = field(default_factory=dict)
    """Distinct ``seq_num`` values per stream: the events bluesky counts in the stop
    document. A plan rewound by a pause or a suspender takes a reading again under the
    ``seq_num`` it had, so a stream may hold more events than that."""
    frames: dict[str, int] = field(default_factory=dict)
    """``stream/data_key`` → frames intact on disk (of those announced)."""
    announced: dict[str, int] = field(default_factory=dict)
    """``stream/data_key`` → frames the catalog announces."""
    files: dict[Path, dict[str, int]] = field(default_factory=dict)
    """Each frame file announced → its frame datasets → their frames intact on disk."""
    problems: list[str] = field(default_factory=list)
    """Each file that is missing, short or damaged: one line naming the data key
    (``stream/data_key: ``) and the file."""


def file_path(uri: str) -> Path:
    """The local path of a ``file:`` asset URI.

    Raises
    ------
    CatalogError
        Any other URI.
    """
    parts = urlsplit(uri)
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
        raise CatalogError(f"frame file URI {uri!r}: not a local file")
    return Path(parts.path)


def frames_on_disk(path: Path, dataset: str, wanted: int) -> tuple[int, str | None]:
    """How many of the first ``wanted`` frames of ``path`` are complete and intact, and
    the problem with the first one that is not (``None`` when all are)."""
    from .hdf5 import open_frames

    try:
        reader = open_frames(path, dataset)
    except HDF5ReadError as exc:
        return 0, str(exc)
    with reader:
        have = min(wanted, len(reader))
        problem = (None if have == wanted else
                   f"{path}: {wanted} frames announced, the file holds {len(reader)}")
        step = max(1, reader.chunks[0] if reader.chunks else 1)
        for start in range(0, have, step):
            try:
                reader.read(slice(start, min(have, start + step)))
            except HDF5ReadError:
                for i in range(start, min(have, start + step)):  # which frame exactly
                    try:
                        reader.read(i)
                    except HDF5ReadError as exc:
                        return i, str(exc)
    return have, problem


def _seq_nums(node: Any) -> list[int]:
    """A stream's events' ``seq_num`` values (none for a stream without a table)."""
    try:
        return [int(n) for n in node["seq_num"].read()] if "seq_num" in node else []
    except Exception:  # a stream whose table was never written
        return []


def check_run_on_disk(run: Any) -> DiskCheck:
    """Count the events of every stream of ``run`` (a Tiled node of a bluesky run) and
    check every frame the catalog announces against its file on disk."""
    found = DiskCheck()
    for stream in run:
        node = run[stream]
        keys = (node.metadata or {}).get("data_keys") or {}
        seq_nums = _seq_nums(node)
        found.events[stream], found.sequence[stream] = len(seq_nums), len(set(seq_nums))
        for key, desc in keys.items():
            if not isinstance(desc, Mapping) or "external" not in desc:
                continue
            name = f"{stream}/{key}"
            if key not in node:
                found.problems.append(f"{name}: no frames were registered")
                found.frames[name] = found.announced[name] = 0
                continue
            total = 0
            announced = int(node[key].shape[0])
            for source in node[key].include_data_sources().data_sources() or []:
                dataset = (source.parameters or {}).get("dataset", DEFAULT_DATASET)
                for asset in source.assets:
                    try:
                        path = file_path(asset.data_uri)
                    except CatalogError as exc:
                        found.problems.append(f"{name}: {exc}")
                        continue
                    have, problem = frames_on_disk(path, dataset, announced - total)
                    total += have
                    in_file = found.files.setdefault(path, {})
                    in_file[dataset] = max(in_file.get(dataset, 0), have)
                    if problem:
                        found.problems.append(f"{name}: {problem}")
            found.frames[name] = total
            found.announced[name] = announced
    return found


__all__ = ["DiskCheck", "check_run_on_disk", "file_path", "frames_on_disk"]
