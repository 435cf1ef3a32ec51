"""A raw run as the reductions see it in the catalog: which reduction it has
(:func:`reduction_for`), its stream names and frame data key, and reading its inputs —
the frames' array node, the pixel mask and the projection angles — in as few requests as
the caller's run listing (:func:`analysis.run_nodes.run_nodes`) allows. ``ReductionError``
names the run and what is missing or unreadable."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.derived_run import uri_path
from analysis.reduce_chunks import checked_mask
from analysis.reductions import ReductionError
from analysis.run_nodes import RunNodes
from dataflow.pixel_mask import MASK_STREAM, PixelMaskError, read_file_mask

log = logging.getLogger(__name__)

TOMO_DEFAULT_STREAMS = {"dark": "dark", "flat": "flat", "projection": "primary"}

F64 = npt.NDArray[np.float64]
BoolImage = npt.NDArray[np.bool_]


def tomo_streams(start: Mapping[str, Any]) -> dict[str, str]:
    """The dark, flat and projection stream names (start ``"streams"`` or the defaults)."""
    given = start.get("streams")
    out = dict(TOMO_DEFAULT_STREAMS)
    if isinstance(given, Mapping):
        out.update({k: str(v) for k, v in given.items() if k in out})
    return out


def reduction_for(start: Mapping[str, Any], streams: Collection[str] | None = None) -> str | None:
    """Which reduction applies to a run (``"tomo_fbp"``, ``"azint1d"``) or None.

    ``streams`` (the run's stream names) confirms a tomography layout when known; the
    live callback decides from the start document alone and checks the streams later.
    """
    if "geometry" in start:
        return "azint1d"
    tomo_like = start.get("plan_name") == "tomo_scan" or "angles" in start \
        or "rotation_axis" in start
    layout_ok = streams is None or set(tomo_streams(start).values()) <= set(streams)
    return "tomo_fbp" if tomo_like and layout_ok else None


def image_key(data_keys: Mapping[str, Mapping[str, Any]], start: Mapping[str, Any],
              where: str = "descriptor") -> str:
    """The data key of the detector frames: the external 2-D key of a stream.

    With several, ``<start["detector"]>_image`` decides. Raises ``ReductionError``
    when there is none (or no way to choose)."""
    keys = [k for k, v in data_keys.items()
            if "external" in v and len(v.get("shape") or []) == 2]
    if len(keys) == 1:
        return keys[0]
    preferred = f"{start.get('detector')}_image"
    if preferred in keys:
        return preferred
    if not keys:
        raise ReductionError(f"{where}: no external 2-D frame data key to reduce "
                             f"(data keys: {', '.join(data_keys) or 'none'})")
    raise ReductionError(f"{where}: several frame data keys ({', '.join(keys)}) and none "
                         f"is {preferred!r}")


def stream_frames(run: Any, stream: str, start: Mapping[str, Any],
                  streams: Mapping[str, Any] | RunNodes | None = None) -> tuple[str, Any]:
    """The frame data key of the run's ``stream`` (:func:`image_key`) and its array node;
    ``streams``: the run's nodes when the caller has them (:func:`run_nodes`, or the
    stream nodes of :func:`run_streams`), which saves the requests for them.

    Raises ``ReductionError`` naming the run when the stream or its frames are missing."""
    listed = streams.streams if isinstance(streams, RunNodes) else streams
    try:
        node = run[stream] if listed is None else listed[stream]
    except KeyError:
        raise ReductionError(f"run {start['uid']}: no stream {stream!r}") from None
    key = image_key((node.metadata or {}).get("data_keys") or {}, start,
                    where=f"run {start['uid']} stream {stream!r}")
    array = streams.arrays.get((stream, key)) if isinstance(streams, RunNodes) else None
    return key, frames_node(node, key) if array is None else array


def frames_node(stream: Any, key: str) -> Any:
    """The array node ``key`` of a stream, with its data sources, in one catalog request
    (through the stream's composite view it takes four: the view lists its keys twice,
    then the node, then its data sources)."""
    base = getattr(stream, "base", stream)
    try:
        return base.new_variation(include_data_sources=True)[key]
    except KeyError:  # not a direct child: the composite view knows where it is
        return stream[key]


def run_mask(run: Any, start: Mapping[str, Any], shape: tuple[int, ...], *,
             present: bool | None = None, nodes: RunNodes | None = None) -> BoolImage | None:
    """The run's pixel mask (its ``"mask"`` stream, :mod:`dataflow.pixel_mask`) as bool of
    the frames' ``shape``, True where a pixel is ignored; None for a run without one.
    ``present``: whether the run has the stream, when the caller already asked (asking a
    catalog costs requests, most of all for a run without one); ``nodes``: the run's
    listing (:func:`run_nodes`), which answers both.
    ``ReductionError`` when the stream is there but unreadable or of another shape.

    A run without the stream (a plan that does not publish it, e.g. ``bp.count``) gets the
    mask its detector wrote into the frame files of its ``"primary"`` stream
    (:func:`file_mask`)."""
    if not _has_mask(run, present, nodes):
        return file_mask(run, start, shape, nodes)
    _, node = stream_frames(run, MASK_STREAM, start, nodes)
    bits = read_node(node, f"run {start['uid']} pixel mask", slice(0, 1))
    return checked_mask(bits, shape)


def file_mask(run: Any, start: Mapping[str, Any], shape: tuple[int, ...],
              nodes: RunNodes | None = None, stream: str = "primary") -> BoolImage | None:
    """The pixels the frame files of ``stream`` mark in their NeXus ``pixel_mask``
    (``dataflow.pixel_mask.read_file_mask``; several files: a pixel masked in any), as
    :func:`run_mask` returns it; ``None`` when the stream is missing or its files hold no
    mask. ``ReductionError`` when a file is there but unreadable or its mask of another
    shape, or not on this machine (frames read through a remote catalog) while the run's
    configuration says its detector masks pixels (:func:`_refuse_unknown_mask`)."""
    listed = nodes.streams if nodes is not None else None
    if stream not in (listed if listed is not None else run):
        return None
    union: BoolImage | None = None
    for uri in asset_uris(stream_frames(run, stream, start, nodes)[1]):
        try:
            path = uri_path(uri)
        except ReductionError:  # (not a local file:// URI)
            path = None
        if path is None or not path.exists():
            _refuse_unknown_mask(run, start, stream, nodes, uri)
            continue
        bits = frame_file_mask(path, str(start["uid"]))
        if bits is not None:
            mask = checked_mask(bits, shape)
            union = mask if union is None else union | mask
    return union


def _refuse_unknown_mask(run: Any, start: Mapping[str, Any], stream: str,
                         nodes: RunNodes | None, uri: str) -> None:
    """A frame file that is not on this machine cannot give its mask: ``ReductionError``
    when the stream's configuration says its detector masks pixels (a ``*_masked_pixels``
    value above 0, as smeflow's detectors record), else a warning (nothing says there is a
    mask to miss: a run of another detector, or taken before the count was recorded)."""
    node = nodes.streams[stream] if nodes is not None else run[stream]
    configuration = (node.metadata or {}).get("configuration") or {}
    masked = {name: int(value) for obj in configuration.values()
              for name, value in ((obj or {}).get("data") or {}).items()
              if name.endswith("_masked_pixels") and isinstance(value, int) and value > 0}
    if masked:
        counts = ", ".join(f"{name} = {n}" for name, n in sorted(masked.items()))
        raise ReductionError(
            f"run {start['uid']}: no mask stream, and the frame file {uri} that holds the "
            f"detector's pixel_mask ({counts}) is not on this machine; reduce it where the "
            "files are (smeflow reduce --data, or --frames-from files on the catalog's "
            "machine), or take the run with plans.with_mask(plan, det)")
    log.warning("run %s: no mask stream, and its frame file %s is not on this machine to "
                "read a pixel_mask from: reduced without a mask", start["uid"], uri)


def frame_file_mask(path: Path, uid: str) -> npt.NDArray[np.uint32] | None:
    """The ``pixel_mask`` bits of a frame file (``dataflow.pixel_mask.read_file_mask``),
    ``None`` when it has none; ``ReductionError`` naming run ``uid`` when it cannot be
    read. The offline reductions (:func:`file_mask`) and the live one use it."""
    try:
        return read_file_mask(path)
    except (OSError, PixelMaskError) as exc:
        raise ReductionError(f"run {uid}: cannot read the pixel mask of {path}: "
                             f"{exc}") from None


def mask_uris(run: Any, start: Mapping[str, Any], *, present: bool | None = None,
              nodes: RunNodes | None = None) -> list[str]:
    """The files of the run's pixel mask (an input of its reductions), none without one
    (``present`` and ``nodes`` as for :func:`run_mask`)."""
    if not _has_mask(run, present, nodes):
        return []
    return asset_uris(stream_frames(run, MASK_STREAM, start, nodes)[1])


def _has_mask(run: Any, present: bool | None, nodes: RunNodes | None) -> bool:
    if nodes is not None:
        return MASK_STREAM in nodes
    return MASK_STREAM in run if present is None else present


def asset_uris(node: Any) -> list[str]:
    """The URIs of the files behind an array node (its data sources' assets)."""
    uris: list[str] = []
    for source in node.data_sources() or []:
        uris.extend(str(asset.data_uri) for asset in source.assets)
    return uris


def read_node(node: Any, what: str, sl: slice | None = None) -> npt.NDArray[Any]:
    """An array node's frames (``sl`` of them, else all); ``ReductionError`` naming
    ``what`` when the catalog cannot read them."""
    try:
        return np.asarray(node[sl] if sl is not None else node[:])
    except Exception as exc:  # tiled wraps file errors in several types
        raise ReductionError(f"{what}: cannot read frames ({type(exc).__name__}: "
                             f"{exc})") from None


def tomo_angles_of(run: Any, start: Mapping[str, Any], stream: str, n: int,
                   partial: bool = False, nodes: RunNodes | None = None) -> tuple[F64, str]:
    """Projection angles (degrees) and where they came from (``"events"``/``"start"``).

    ``partial``: the run has no stop document (its process was killed), so the angles
    may be more than the ``n`` frames (the rest were never taken) or fewer (a frame
    announced before its event): the first ``min`` of both are returned. ``nodes``: the
    run's listing (:func:`run_nodes`), which has the stream's node."""
    axis = start.get("rotation_axis")
    node = None
    if isinstance(axis, str):  # (a request, unless listed: only when needed)
        node = nodes.streams.get(stream) if nodes is not None else None
        node = run[stream] if node is None else node
    if node is not None and axis in node:
        angles = np.asarray(node[axis].read(), dtype=np.float64)
        source = "events"
    elif "angles" in start:
        angles = np.asarray(start["angles"], dtype=np.float64)
        source = "start"
    else:
        raise ReductionError(f"run {start['uid']}: no projection angles (no rotation "
                             f"reading {axis!r} in stream {stream!r}, no start 'angles')")
    if partial and angles.ndim == 1:
        angles = angles[:n]
    if angles.shape != (n,) and not (partial and angles.ndim == 1):
        raise ReductionError(f"run {start['uid']}: {angles.shape[0] if angles.ndim else 0} "
                             f"angles ({source}) for {n} projections")
    return angles, source
