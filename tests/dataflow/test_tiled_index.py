"""The catalog's frame arrays indexed as numpy indexes: lists, index arrays, masks.

The reference is the frame file itself, read by h5py into a numpy array; numpy's answer
to each index (or numpy's ``IndexError``) is what the catalog's client must give, in
process and over HTTP. Tiled's own client (tiled 0.2.20) reads ``frames[[0, 2]]`` as
``frames[0, 2]`` — one row of frame 0 — and ``frames[True]`` as frame 1.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import count
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dataflow.catalog import Catalog, check_frame_files
from dataflow.remote import RemoteCatalog
from dataflow.server import ServerHandle
from dataflow.tiled_index import _fetch, numpy_structure_clients, plan

N_FRAMES = 5
KEY = secrets.token_hex(16)


def _dataset(run: Any) -> tuple[Path, str]:
    """The run's frame file and the dataset in it the catalog reads."""
    (path,) = check_frame_files(run)
    (source,) = run["primary"]["cam_image"].data_sources()
    return path, source.parameters["dataset"]


def _frames(run: Any) -> tuple[Any, np.ndarray]:
    """The run's frame array as the catalog serves it, and the frames h5py reads from
    the run's file."""
    path, name = _dataset(run)
    with h5py.File(path, "r", swmr=True) as f:
        frames = np.asarray(f[name])
    served = run["primary"]["cam_image"]
    assert served.shape == frames.shape and served.shape[0] == N_FRAMES
    return served, frames


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory, frame_cam: Any
             ) -> Iterator[tuple[Any, np.ndarray, Path]]:
    cat = Catalog(tmp_path_factory.mktemp("index"))
    RE = RunEngine()
    cat.subscribe(RE)
    (uid,) = RE(count([frame_cam(name="cam", folder=cat.raw_dir)], N_FRAMES))
    run = cat.run(uid)
    served, frames = _frames(run)
    yield served, frames, _dataset(run)
    cat.close()


def same_as_numpy(served: Any, frames: np.ndarray, index: Any) -> None:
    """``served[index]`` is numpy's ``frames[index]``: the same values, shape and dtype, or
    numpy's ``IndexError`` with numpy's message."""
    try:
        want = frames[index]
    except IndexError as exc:
        with pytest.raises(IndexError) as info:
            served[index]
        assert str(info.value) == str(exc), index
        return
    got = np.asarray(served[index])
    assert (got.shape, got.dtype) == (want.shape, want.dtype), index
    np.testing.assert_array_equal(got, want, err_msg=repr(index))


READ_AS_A_TUPLE = [
    [0, 2],                      # Tiled: frames[0, 2], row 2 of frame 0
    [3, 1],
    [2, 2, 2],
    [-1],                        # Tiled: the last frame without its axis
    [0],
    True,                        # Tiled: frame 1
    np.True_,
    False,
    (slice(None), [1, 3]),
    ([0, 2], 3),
    ([0, 4], slice(None), 7),    # the advanced axes are apart: theirs go first (numpy)
    (Ellipsis, [0, 5, 5]),
    (slice(None), 10, Ellipsis, [2, 5]),  # '...' for no axis still parts them: theirs first
    ([0, 2], Ellipsis, [1, 3]),
    (1, Ellipsis, [2, 3]),
    ([[0], [4]], [1, 2]),        # broadcast together
    np.array([0, 2]),
    np.array([True, False, True, False, True]),
    (slice(None, None, -2), [0, 1]),
    (1, [0, 0, 39]),
    np.int64(2),
    (np.int32(1), np.uint8(3)),
    None,
    (None, 1, [2, 3]),
    [],
    # numpy's errors
    [N_FRAMES],
    [0, -N_FRAMES - 1],
    [0.5],
    np.array([1], dtype="m8[s]"),  # (numpy's issubdtype calls timedelta64 an integer)
    [np.timedelta64(1)],
    np.array([0.5]),
    np.array([], dtype=float),
    [slice(0, 2)],
    (0, 0, 0, 0),
    np.array([True, False]),
    (Ellipsis, 0, Ellipsis),
]


@pytest.mark.parametrize("index", READ_AS_A_TUPLE, ids=repr)
def test_an_index_is_answered_as_numpy_answers_it(embedded: Any, index: Any) -> None:
    served, frames, _ = embedded
    same_as_numpy(served, frames, index)


def test_a_mask_over_frames_and_rows_picks_those_rows(embedded: Any) -> None:
    served, frames, _ = embedded
    mask = np.zeros(frames.shape[:2], dtype=bool)
    mask[1, 3] = mask[4, 0] = mask[4, 39] = True
    same_as_numpy(served, frames, mask)
    same_as_numpy(served, frames, (mask, slice(2, 5)))


def test_h5py_picks_the_same_frames(embedded: Any) -> None:
    """h5py's own list indexing (increasing positions, one axis) on the same file agrees,
    except where h5py indexes each axis on its own and numpy does not: an int and a list
    apart are broadcast by numpy, their axis first."""
    served, frames, (path, name) = embedded
    with h5py.File(path, "r", swmr=True) as f:
        ds = f[name]
        for index in ([0, 2], [1, 2, 4], (slice(None), [3, 30]), (4, [0, 23])):
            np.testing.assert_array_equal(np.asarray(served[index]), ds[index])
        apart = (4, slice(None), [0, 23])
        assert ds[apart].shape == (40, 2)
        assert np.asarray(served[apart]).shape == frames[apart].shape == (2, 40)


def _index_parts(shape: tuple[int, ...]) -> st.SearchStrategy[Any]:
    axis0 = st.lists(st.integers(-shape[0] - 1, shape[0]), max_size=6)
    mask0 = hnp.arrays(np.bool_, shape[:1])
    return st.one_of(
        hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True),
        hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(max_dims=2,
                                                                        max_side=3)),
        axis0, mask0,
        st.tuples(axis0, st.just(slice(None)), st.integers(-24, 23)),
        st.tuples(st.just(Ellipsis), st.lists(st.integers(0, 23), min_size=1, max_size=4)))


@given(data=st.data())
@settings(max_examples=60)
def test_any_index_is_answered_as_numpy_answers_it(embedded: Any, data: Any) -> None:
    served, frames, _ = embedded
    same_as_numpy(served, frames, data.draw(_index_parts(frames.shape)))


def _mixed_index(shape: tuple[int, ...]) -> st.SearchStrategy[tuple[Any, ...]]:
    """Indices mixing ints, slices, integer lists, ``None`` and at most one ``...``."""
    part = st.one_of(st.integers(-3, 2), st.slices(3), st.none(),
                     st.lists(st.integers(-3, 2), min_size=1, max_size=3))
    return st.lists(part, max_size=len(shape)).flatmap(
        lambda parts: st.integers(0, len(parts)).flatmap(
            lambda at: st.sampled_from([tuple(parts), (*parts[:at], Ellipsis, *parts[at:])])))


@given(index=_mixed_index((3, 3, 3)))
@example(index=(slice(None), 1, Ellipsis, [0, 1]))  # found by a review: '...' for no axis
@settings(max_examples=400, deadline=None)
def test_the_reads_and_the_applied_index_give_numpys_answer(index: tuple[Any, ...]) -> None:
    """``plan`` alone on an in-memory array: what it reads, indexed as it says, is numpy's
    answer, or numpy's IndexError (from the plan, or from applying it: arrays that do not
    broadcast)."""
    array = np.arange(27).reshape(3, 3, 3)

    def planned() -> Any:
        reads, applied = plan(index, array.shape)
        return _fetch(lambda parts: array[parts], reads)[applied]

    try:
        expected = array[index]
    except IndexError:
        with pytest.raises(IndexError):
            planned()
        return
    got = planned()
    assert got.shape == expected.shape and np.array_equal(got, expected), index


@pytest.fixture(scope="module")
def over_http(tmp_path_factory: pytest.TempPathFactory, frame_cam: Any
              ) -> Iterator[tuple[ServerHandle, str]]:
    with ServerHandle(tmp_path_factory.mktemp("server") / "data", KEY) as server, \
            RemoteCatalog(server.url, KEY) as remote:
        RE = RunEngine()
        remote.subscribe(RE)
        (uid,) = RE(count([frame_cam(name="cam", folder=server.data_dir / "raw")],
                          N_FRAMES))
        yield server, uid


@pytest.mark.parametrize("index", READ_AS_A_TUPLE[:8], ids=repr)
def test_over_http_an_index_is_answered_as_numpy_answers_it(over_http: Any,
                                                             index: Any) -> None:
    server, uid = over_http
    with RemoteCatalog(server.url, KEY) as remote:
        served, frames = _frames(remote.run(uid))
        same_as_numpy(served, frames, index)


def test_a_plain_tiled_client_given_smeflows_clients_answers_as_numpy(over_http: Any) -> None:
    """What docs/catalog-server.md tells users of a plain Tiled client to pass."""
    from tiled.client import from_uri

    server, uid = over_http
    top = from_uri(server.url, api_key=KEY, structure_clients=numpy_structure_clients())
    served = top["raw"][uid]["primary"]["cam_image"]
    with RemoteCatalog(server.url, KEY) as remote:
        _, frames = _frames(remote.run(uid))
    for index in ([0, 2], [-1], True, (slice(None), [1, 3])):
        same_as_numpy(served, frames, index)
