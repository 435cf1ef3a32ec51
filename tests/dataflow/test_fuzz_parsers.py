"""Fuzzing every parser of ``dataflow``: random and near-valid input gives a result or the
parser's documented error, whose message names the file, line or key — never another
exception (``IndexError``, ``UnicodeDecodeError``, ``OverflowError``, an h5py ``OSError``…).

Parsers: ``read_poni`` and ``PoniGeometry.from_metadata`` (``PoniError``), the readout
backend ``Readout.feed``/``feed_outputs`` (corrupt packets are counted, never raised),
``open_frames`` on random, truncated and byte-flipped files (``HDF5ReadError``),
``parse_time`` (``CatalogError``), ``parse_criteria`` (``UsageError``) and the run
references of ``Catalog.run`` (``MalformedUidError``/``RunNotFoundError``). The packet
decoder's own fuzz tests are in ``test_readout.py``.

Hypothesis settings: ``derandomize=True`` so CI runs the same examples every time (a
failure is reproducible from the test name alone), ``database=None`` so nothing is
written into the tree; ``SMEFLOW_FUZZ_EXAMPLES=N`` raises the example count and turns the
randomisation back on (``benchmarks/fuzz_nightly.py`` does that for long runs).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dataflow.catalog import (
    Catalog,
    CatalogError,
    MalformedUidError,
    RunNotFoundError,
    parse_time,
)
from dataflow.cli import UsageError, parse_criteria
from dataflow.hdf5 import DEFAULT_DATASET, FrameWriter, HDF5ReadError, open_frames
from dataflow.readout import Readout
from fpga.designs.params import ChainParams
from fpga.designs.reference import ChainConfig, reference_stream
from geometry import PoniError, PoniGeometry, read_poni, write_poni

_NIGHTLY = int(os.environ.get("SMEFLOW_FUZZ_EXAMPLES", "0"))


def fuzz(examples: int) -> settings:
    """CI: ``examples`` fixed examples; nightly: ``SMEFLOW_FUZZ_EXAMPLES`` random ones."""
    return settings(max_examples=_NIGHTLY or examples, deadline=None,
                    derandomize=not _NIGHTLY, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A folder whose files every example rewrites (examples run one after another)."""
    with tempfile.TemporaryDirectory(prefix="fuzz_dataflow_") as d:
        yield Path(d)


def mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """Near-valid input: truncated, one byte flipped, bytes inserted."""
    n = len(valid)
    truncated = st.integers(0, n - 1).map(lambda i: valid[:i])
    flipped = st.tuples(st.integers(0, n - 1), st.integers(1, 255)).map(
        lambda t: valid[:t[0]] + bytes([valid[t[0]] ^ t[1]]) + valid[t[0] + 1:])
    inserted = st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=8)).map(
        lambda t: valid[:t[0]] + t[1] + valid[t[0]:])
    return st.one_of(truncated, flipped, inserted)


# -- .poni files ---------------------------------------------------------------------------

GEOMETRY = PoniGeometry(dist=0.1, poni1=0.004, poni2=0.005, rot1=0.01, rot2=-0.02, rot3=0.5,
                        pixel1=75e-6, pixel2=75e-6, shape=(100, 120), wavelength=1e-10)


def _poni_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        write_poni(GEOMETRY, Path(d) / "g.poni")
        return (Path(d) / "g.poni").read_bytes()


PONI = _poni_bytes()
PONI_LINES = PONI.decode().splitlines(keepends=True)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6)
NUMBER_TEXT = st.one_of(st.integers().map(str), st.floats().map(repr),
                        st.integers(300, 5000).map(lambda n: "9" * n),
                        st.text(max_size=10))


def _line_replaced() -> st.SearchStrategy[bytes]:
    """One ``Key: value`` line with a random value (numbers, JSON, text)."""
    def build(i: int, value: str) -> bytes:
        lines = list(PONI_LINES)
        key = lines[i].split(":", 1)[0]
        lines[i] = f"{key}: {value}\n"
        return "".join(lines).encode("utf-8", "surrogatepass")
    values = st.one_of(NUMBER_TEXT, JSON_VALUES.map(json.dumps), _config_values())
    return st.tuples(st.integers(2, len(PONI_LINES) - 1), values).map(lambda t: build(*t))


def _config_values() -> st.SearchStrategy[str]:
    """A ``Detector_config`` JSON object with one field replaced by a random JSON value."""
    base = {"pixel1": 7.5e-05, "pixel2": 7.5e-05, "orientation": 3, "max_shape": [100, 120]}

    def build(key: str, value: Any) -> str:
        return json.dumps({**base, key: value})
    return st.tuples(st.sampled_from([*base, "other"]),
                     st.one_of(JSON_VALUES, st.integers(2**63, 2**2000))).map(
        lambda t: build(*t))


def _check_poni(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        g = read_poni(path)
    except PoniError as exc:
        assert str(exc).startswith(f"{path}:") or str(exc).startswith(f"{path} "), str(exc)
        event("rejected")
        return
    event("accepted")
    assert all(math.isfinite(v) for v in (g.dist, g.poni1, g.poni2, g.rot1, g.rot2, g.rot3))
    assert g.dist > 0 and g.pixel1 > 0 and g.pixel2 > 0 and min(g.shape) > 0


@fuzz(250)
@given(data=st.binary(max_size=300))
def test_poni_reader_on_random_bytes(scratch: Path, data: bytes) -> None:
    _check_poni(scratch / "random.poni", data)


@fuzz(250)
@given(data=st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_poni_reader_on_random_text(scratch: Path, data: bytes) -> None:
    _check_poni(scratch / "text.poni", data)


@fuzz(300)
@given(data=st.one_of(mutations(PONI), _line_replaced()))
def test_poni_reader_on_near_valid_files(scratch: Path, data: bytes) -> None:
    _check_poni(scratch / "near.poni", data)


@pytest.mark.parametrize(("data", "message"), [
    (b"\xff" + PONI, r":1: not UTF-8 text"),
    (PONI.replace(b"Rot1: 0.01", b"Rot1: 0.\xe9"), r":9: not UTF-8 text"),
    (PONI.replace(b'"pixel1": 7.5e-05', b'"pixel1": 1' + b"0" * 400),
     r":5: Detector_config pixel1 must be a positive number"),
    (PONI.replace(b"[100, 120]", b"[100, 1" + b"0" * 400 + b"]"),
     r":5: Detector_config max_shape must be \[rows, cols\]"),
    (PONI.replace(b'{"pixel1"', b"[" * 100_000 + b'{"pixel1"'),
     r":5: Detector_config is not valid JSON"),
])
def test_poni_reader_regressions(scratch: Path, data: bytes, message: str) -> None:
    """Inputs the fuzzing found: undecodable bytes, integers too large for a float."""
    path = scratch / "regression.poni"
    path.write_bytes(data)
    with pytest.raises(PoniError, match=re.escape(str(path)) + message):
        read_poni(path)


def test_the_reference_poni_file_reads_back(scratch: Path) -> None:
    path = scratch / "good.poni"
    path.write_bytes(PONI)
    assert read_poni(path) == GEOMETRY


def _metadata_mutations() -> st.SearchStrategy[Any]:
    md = GEOMETRY.to_metadata()
    replaced = st.tuples(st.sampled_from([*md, "extra"]),
                         st.one_of(JSON_VALUES, st.integers(2**63, 2**2000))).map(
        lambda t: {**md, t[0]: t[1]})
    dropped = st.sampled_from(list(md)).map(lambda k: {a: v for a, v in md.items() if a != k})
    return st.one_of(replaced, dropped, JSON_VALUES)


@fuzz(300)
@given(md=_metadata_mutations())
def test_geometry_metadata_gives_geometry_or_poni_error(md: Any) -> None:
    try:
        g = PoniGeometry.from_metadata(md, where="run 1 start.geometry")
    except PoniError as exc:
        assert str(exc).startswith("run 1 start.geometry: "), str(exc)
        return
    assert g.dist > 0 and math.isfinite(g.dist) and min(g.shape) > 0


def test_geometry_metadata_regression_huge_int() -> None:
    md = {**GEOMETRY.to_metadata(), "dist": 10**400}
    with pytest.raises(PoniError, match=r"^g: PoniGeometry\.dist must be a positive finite"):
        PoniGeometry.from_metadata(md, where="g")


# -- readout backend -----------------------------------------------------------------------

P = ChainParams(height=8, width=32, lanes=16)
_RNG = np.random.default_rng(7)
STREAM = reference_stream([_RNG.integers(0, 1 << 16, (P.height, P.width)) for _ in range(4)],
                          P, ChainConfig())
PACKETS = [r.packet for r in STREAM.results]


@st.composite
def packet_bus(draw: st.DrawFn) -> tuple[list[tuple[np.ndarray, ...]], set[int]]:
    """The four packets on the bus with random damage, cut into random ``feed`` calls.

    Returns the pieces ``(valid, first, last, data)`` and the indices of packets left
    intact."""
    words, first, last, intact = [], [], [], set()
    for i, packet in enumerate(PACKETS):
        w = packet.astype(np.int64)
        damage = draw(st.sampled_from(["none", "none", "lane", "cut", "no_last", "no_first",
                                       "stray", "range"] + ["drop"] * (i > 0)))
        f = np.zeros(len(w), bool)
        la = np.zeros(len(w), bool)
        f[0] = damage != "no_first"
        la[-1] = damage != "no_last"
        if damage == "lane":
            w = w.copy()
            w[draw(st.integers(0, len(w) - 1)), draw(st.integers(0, 15))] ^= draw(
                st.integers(1, 0xFFFF))
        elif damage == "cut":
            keep = draw(st.integers(1, len(w) - 1))
            w, f, la = w[:keep], f[:keep], la[:keep]
            la[-1] = True
        elif damage == "drop":
            continue
        elif damage == "range":
            w = w.copy()
            w[draw(st.integers(0, len(w) - 1)), 0] = draw(st.sampled_from([-1, 1 << 16, 1 << 40]))
        elif damage == "stray":
            n = draw(st.integers(1, 5))
            words.append(np.full((n, 16), draw(st.integers(0, 0xFFFF)), np.int64))
            first.append(np.zeros(n, bool))
            last.append(np.zeros(n, bool))
        if damage in ("none", "stray"):
            intact.add(i)
        words.append(w)
        first.append(f)
        last.append(la)
    data = np.concatenate(words)
    f_all, l_all = np.concatenate(first), np.concatenate(last)
    n = len(data)
    valid = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    valid[: n // 2] = True  # keep most words, so that intact packets stay intact
    valid |= draw(st.booleans())
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    bounds = [0, *cuts, n]
    pieces = [(valid[a:b], f_all[a:b], l_all[a:b], data[a:b])
              for a, b in itertools.pairwise(bounds)]
    all_valid = bool(valid.all())
    return pieces, (intact if all_valid else set())


@fuzz(200)
@given(bus=packet_bus())
def test_readout_counts_corrupt_packets_and_never_raises(
        bus: tuple[list[tuple[np.ndarray, ...]], set[int]]) -> None:
    pieces, intact = bus
    r = Readout(16, (P.height, P.width), first_frame=None)
    frames = []
    for valid, first, last, data in pieces:
        frames += r.feed(valid, first, last, data)
    rep = r.report()
    assert rep["good"] == len(frames)
    assert sum(rep["corrupt_by_check"].values()) == rep["corrupt"]
    by_number = {res.packet[0, 2] | (int(res.packet[0, 3]) << 16): res
                 for res in STREAM.results}
    for frame in frames:  # whatever is passed on as good is exactly what was sent
        sent = by_number[frame.frame_number]
        np.testing.assert_array_equal(frame.image, sent.image)
    got = {f.frame_number for f in frames}
    assert intact <= got, rep  # damage to one packet never costs another its frame


@fuzz(150)
@given(keys=st.lists(st.sampled_from(["packet.valid", "packet.first", "packet.last",
                                      "packet.data", "other.x"]), unique=True),
       length=st.integers(0, 5), lanes=st.sampled_from([15, 16, 17]),
       flat=st.booleans())
def test_feed_outputs_with_missing_or_misshapen_signals(keys: list[str], length: int,
                                                        lanes: int, flat: bool) -> None:
    outputs: dict[str, Any] = {k: np.zeros(length, np.int64) for k in keys}
    if "packet.data" in outputs and not flat:
        outputs["packet.data"] = np.zeros((length, lanes), np.int64)
    r = Readout(16)
    try:
        assert r.feed_outputs(outputs) == []
    except KeyError as exc:
        assert "Readout.feed_outputs: no signal 'packet." in str(exc)
    except ValueError as exc:
        assert str(exc).startswith("Readout.feed: "), str(exc)


# -- HDF5 frame files ----------------------------------------------------------------------

def _frame_file() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        with FrameWriter(d, "f.h5", (16, 8), layout=(2, 8, 8)) as w:
            for i in range(5):
                w.append(np.arange(128, dtype=np.uint16).reshape(16, 8) + i)
        return (Path(d) / "f.h5").read_bytes()


H5 = _frame_file()


_h5_names = itertools.count()


def _check_h5(folder: Path, data: bytes) -> None:
    # a new file each time: HDF5 keeps files open per process, keyed by their inode
    path = folder / f"fuzzed_{next(_h5_names)}.h5"
    path.write_bytes(data)
    try:
        with open_frames(path) as r:
            frames = r.read()
            sino = r.sinogram(3)
    except HDF5ReadError as exc:
        assert str(exc).startswith(f"{path}: "), str(exc)
        event("rejected")
        path.unlink()
        return
    event("accepted")
    assert frames.ndim == 3 and sino.shape == (frames.shape[0], frames.shape[2])
    path.unlink()


@fuzz(150)
@given(data=st.binary(max_size=3000))
def test_frame_reader_on_random_bytes(scratch: Path, data: bytes) -> None:
    _check_h5(scratch, data)


@fuzz(150)
@given(data=st.binary(min_size=8, max_size=3000).map(lambda b: b"\x89HDF\r\n\x1a\n" + b))
def test_frame_reader_on_random_bytes_after_the_signature(scratch: Path, data: bytes) -> None:
    _check_h5(scratch, data)


@fuzz(300)
@given(data=mutations(H5))
def test_frame_reader_on_truncated_and_flipped_files(scratch: Path, data: bytes) -> None:
    _check_h5(scratch, data)


# -- catalog arguments ---------------------------------------------------------------------

@fuzz(300)
@given(value=st.one_of(st.text(max_size=30), st.floats().map(repr),
                       st.datetimes().map(str), st.integers().map(str),
                       st.floats(), st.integers(-2**60, 2**60)))
def test_parse_time_gives_a_finite_time_or_catalog_error(value: Any) -> None:
    try:
        t = parse_time(value, "since")
    except CatalogError as exc:
        assert str(exc).startswith("since "), str(exc)
        return
    assert math.isfinite(t)


KEYS = st.one_of(st.text(max_size=12), st.sampled_from(
    ["plan_name", "start.scan_id", ".x", "x.", "a..b", "a b", "\x00", "a\tb", "\udcff"]))
VALUES = st.one_of(st.text(max_size=12), JSON_VALUES.map(json.dumps),
                   st.integers(-2**70, 2**70).map(str),
                   st.sampled_from(["NaN", "Infinity", "[" * 5000, "\udcff"]))


@fuzz(300)
@given(items=st.lists(st.one_of(st.text(max_size=20),
                                st.tuples(KEYS, VALUES).map("=".join)), max_size=4))
def test_parse_criteria_gives_scalars_or_usage_error(items: list[str]) -> None:
    try:
        criteria = parse_criteria(items)
    except UsageError as exc:
        assert any(str(exc).startswith(repr(item)) for item in items), str(exc)
        return
    for key, value in criteria.items():
        assert key and key == key.strip() and "" not in key.split(".")
        assert isinstance(value, str | int | float | bool)
        assert not isinstance(value, float) or math.isfinite(value)
        assert not isinstance(value, int) or -2**63 <= value < 2**63


@pytest.fixture(scope="module")
def empty_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    cat = Catalog(tmp_path_factory.mktemp("fuzz_catalog"))
    yield cat
    cat.close()


@fuzz(200)
@given(ref=st.one_of(st.text(max_size=40), st.integers(),
                     st.integers(0, 5000).map(lambda n: "1" * n),
                     st.text(alphabet="0123456789abcdef-", min_size=4, max_size=40)))
def test_run_references_are_parsed_or_refused(empty_catalog: Catalog, ref: str | int) -> None:
    try:
        empty_catalog.run(ref)
    except MalformedUidError as exc:
        assert str(exc).startswith(("run ", "scan number ")), str(exc)
    except RunNotFoundError as exc:
        assert str(exc).startswith("no run "), str(exc)
    else:  # pragma: no cover - the catalog is empty
        raise AssertionError(f"found a run for {ref!r} in an empty catalog")


def test_dataset_constant_is_the_writers() -> None:
    """The files fuzzed above hold their frames where the reader looks by default."""
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "f.h5").write_bytes(H5)
        with open_frames(Path(d) / "f.h5", DEFAULT_DATASET) as r:
            assert len(r) == 5 and r.frame_shape == (16, 8)
