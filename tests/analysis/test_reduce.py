"""Offline reduction (``analysis.reduce``, ``smeflow reduce``) of runs in a real catalog,
checked against the numpy references, and the link raw run → derived runs."""

from __future__ import annotations

import resource
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analysis.azint import AzimuthalIntegrator
from analysis.cli import main as reduce_main
from analysis.fbp import OutputBuffers, fbp_reference
from analysis.reduce import (
    ReductionError,
    TomoReferences,
    azint_chunk,
    azint_combine,
    derived_md,
    reduce_run,
    reduction_for,
    tomo_chunk,
    tomo_combine,
    tomo_references,
)
from analysis.tomo import minus_log_reference, normalize_reference
from dataflow.catalog import run_details
from dataflow.cli import format_details
from dataflow.cli import main as catalog_main
from dataflow.hdf5 import file_sha256
from geometry import PoniGeometry

from .conftest import PROJECTIONS, AcquiredRuns


def _frames(run: Any, stream: str) -> np.ndarray:
    return np.asarray(run[stream]["det_image"][:])


def test_offline_tomography_equals_numpy_reference(acquired: AcquiredRuns) -> None:
    catalog = acquired.catalog
    rows = [20, 33]
    summary = reduce_run(catalog, acquired.tomo_uid, rows=rows, chunk_frames=3)
    assert summary.exit_status == "success" and summary.shape == (2, 64, 64)
    derived = catalog.run(summary.uid)
    got = np.asarray(derived["primary"]["reconstruction"][:])
    assert got.dtype == np.float32 and got.shape == (2, 64, 64)
    assert list(derived["primary"]["row"].read()) == rows

    raw = catalog.run(acquired.tomo_uid)
    angles = np.asarray(raw["primary"]["rotation"].read())
    mu = minus_log_reference(normalize_reference(_frames(raw, "primary"), _frames(raw, "dark"),
                                                 _frames(raw, "flat")))
    for k, row in enumerate(rows):
        want = fbp_reference(mu[:, row, :], angles)
        scale = np.abs(want).max()
        assert scale > 0.01  # the phantom is in this slice
        np.testing.assert_allclose(got[k], want, rtol=0, atol=2e-5 * scale)
    stop = derived.metadata["stop"]
    assert stop["angles_from"] == "events" and stop["rows"] == rows
    assert stop["frames"] == PROJECTIONS


def test_offline_diffraction_equals_reference1d(acquired: AcquiredRuns) -> None:
    catalog = acquired.catalog
    summary = reduce_run(catalog, acquired.diff_uid, bins=300, unit="q_nm^-1")
    derived = catalog.run(summary.uid)
    got = np.asarray(derived["primary"]["intensity"][:])
    sigma = np.asarray(derived["primary"]["sigma"][:])
    radial = np.asarray(derived["axis"]["radial"][0])
    raw = catalog.run(acquired.diff_uid)
    frames = _frames(raw, "primary")
    assert got.shape == sigma.shape == (3, 300)
    ai = AzimuthalIntegrator(PoniGeometry.from_metadata(raw.metadata["start"]["geometry"]))
    mask = np.asarray(raw["mask"]["det_pixel_mask"][0]) != 0  # the detector's bad pixels
    assert mask.any()
    for k, frame in enumerate(frames):
        want = ai.reference1d(frame, 300, unit="q_nm^-1", error_model="poisson", mask=mask,
                              method="no")
        assert want.sigma is not None
        np.testing.assert_array_equal(radial, want.radial)
        filled = want.count > 0
        np.testing.assert_allclose(got[k][filled], want.intensity[filled], rtol=1e-5)
        np.testing.assert_allclose(sigma[k][filled], want.sigma[filled], rtol=1e-5)
    assert list(derived["primary"]["raw_seq_num"].read()) == [1, 2, 3]
    start = derived.metadata["start"]
    assert (start["bins"], start["unit"], start["error_model"]) == (300, "q_nm^-1", "poisson")
    assert start["geometry"] == raw.metadata["start"]["geometry"]


def test_derived_run_records_provenance_and_is_listed(acquired: AcquiredRuns) -> None:
    catalog = acquired.catalog
    summary = reduce_run(catalog, acquired.tomo_uid, rows=[32])
    start = catalog.run(summary.uid).metadata["start"]
    assert start["plan_name"] == "reduce" and start["reduction"] == "tomo_fbp"
    assert start["raw_uid"] == acquired.tomo_uid and start["live"] is False
    assert start["smeflow_version"]
    # darks, flats, projections: one file each, and the pixel mask's file
    assert len(start["inputs"]) == 4
    assert sum("det_pixel_mask_" in item["uri"] for item in start["inputs"]) == 1
    for item in start["inputs"]:
        path = Path(item["uri"].removeprefix("file://localhost"))
        assert item["sha256"] == file_sha256(path)
        assert path.with_name(path.name + ".sha256").read_text().split()[0] == item["sha256"]
    (output,) = catalog.run(summary.uid).metadata["stop"]["outputs"]
    out_path = Path(output["uri"].removeprefix("file://localhost"))
    assert out_path.parent == catalog.raw_dir / "derived"
    assert output["sha256"] == file_sha256(out_path)

    derived = [run.metadata["start"]["uid"] for run in
               catalog.derived_runs(acquired.tomo_uid).values()]
    assert summary.uid in derived and acquired.live.results[acquired.tomo_uid].derived_uid \
        in derived
    details = run_details(catalog.run(acquired.tomo_uid))
    assert summary.uid in [d["uid"] for d in details["derived"]]
    text = format_details(details)
    assert "derived runs:" in text and f"{summary.uid}  tomo_fbp  offline" in text
    assert "derived runs:\n  (none)" in format_details(run_details(catalog.run(summary.uid)))


def test_runs_that_cannot_be_reduced(acquired: AcquiredRuns) -> None:
    catalog = acquired.catalog
    derived_uid = acquired.live.results[acquired.tomo_uid].derived_uid
    with pytest.raises(ReductionError, match="nothing to reduce"):
        reduce_run(catalog, derived_uid)
    with pytest.raises(ReductionError, match=r"argument `rows`: row\(s\) \[64\]"):
        reduce_run(catalog, acquired.tomo_uid, rows=[3, 64])
    with pytest.raises(ReductionError, match="argument `bins`"):
        reduce_run(catalog, acquired.diff_uid, bins=0)
    assert reduction_for({"plan_name": "count"}) is None
    assert reduction_for({"angles": [0.0]}, ["primary"]) is None  # no darks/flats
    assert reduction_for({"rotation_axis": "rot"}, ["dark", "flat", "primary"]) == "tomo_fbp"
    with pytest.raises(ReductionError, match="reduction 'x'"):
        derived_md({"uid": "u"}, "x", [], {}, live=False)


def test_bins_are_bounded_before_any_work(acquired: AcquiredRuns) -> None:
    """``smeflow reduce RUN --bins 100000000`` had the process killed for want of memory:
    the bins had no upper bound. ``MAX_BINS`` is refused by the parameters, so by every
    entry point, before anything is built (the command line: tests/dataflow's
    test_cli_bad_inputs); docs/reduction.md names it."""
    from analysis.reduce import MAX_BINS, AzintParams

    assert AzintParams(bins=MAX_BINS).bins == MAX_BINS
    for bad in (MAX_BINS + 1, 10**8):
        with pytest.raises(ValueError, match=f"argument `bins`: {bad} bins is more than the "
                                             f"{MAX_BINS} a reduction takes"):
            AzintParams(bins=bad)
    derived = len(acquired.catalog.derived)
    with pytest.raises(ReductionError, match=f"more than the {MAX_BINS}"):
        reduce_run(acquired.catalog, acquired.diff_uid, bins=10**8)
    assert len(acquired.catalog.derived) == derived  # no derived run started
    docs = Path(__file__).resolve().parents[2] / "docs" / "reduction.md"
    assert f"`--bins` is 1 to {MAX_BINS}" in docs.read_text()


def test_chunks_combine_to_one_reduction() -> None:
    """Splitting the frames into chunks (the Dask decomposition) changes nothing."""
    rng = np.random.default_rng(7)
    darks = rng.integers(90, 110, (2, 16, 24)).astype(np.uint16)
    flats = rng.integers(900, 1100, (3, 16, 24)).astype(np.uint16)
    proj = rng.integers(300, 900, (9, 16, 24)).astype(np.uint16)
    angles = np.linspace(0.0, 180.0, 9, endpoint=False)
    refs = tomo_references(darks, flats)
    assert isinstance(refs, TomoReferences) and refs.dark.dtype == np.float32
    whole = tomo_combine([tomo_chunk(proj, angles, refs)])
    parts = tomo_combine([tomo_chunk(proj[i:i + 2], angles[i:i + 2], refs)
                          for i in range(0, 9, 2)])
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-5 * np.abs(whole).max())
    rows = tomo_combine([tomo_chunk(proj, angles, refs, rows=[5, 11])])
    np.testing.assert_allclose(rows, whole[[5, 11]], rtol=0, atol=1e-6 * np.abs(whole).max())
    with pytest.raises(ReductionError, match="at least one dark"):
        tomo_references(darks[:0], flats)

    geometry = PoniGeometry(dist=0.1, poni1=0.0012, poni2=0.0018, pixel1=1e-4, pixel2=1e-4,
                            shape=(16, 24))
    ai = AzimuthalIntegrator(geometry)
    from analysis.reduce import AzintParams

    params = AzintParams(bins=40)
    one = azint_chunk(proj, ai, params)
    split = azint_combine([azint_chunk(proj[4:], ai, params, first=4),
                           azint_chunk(proj[:4], ai, params, first=0)])
    np.testing.assert_array_equal(split.intensity, one.intensity)
    with pytest.raises(ReductionError, match="not contiguous"):
        azint_combine([azint_chunk(proj[5:], ai, params, first=5), one])


def test_chunks_reuse_one_volume_buffer() -> None:
    """A reduction's chunks back-project into one device and one host volume
    (``OutputBuffers``, as ``reduce_run`` and the Dask task pass), not a fresh 64 MiB mmap
    each whose every page faults on first touch; the volume is bit for bit the same."""
    rng = np.random.default_rng(3)
    rows, width, k, chunks = 64, 512, 2, 6
    darks = rng.integers(90, 110, (2, rows, width)).astype(np.uint16)
    flats = rng.integers(900, 1100, (2, rows, width)).astype(np.uint16)
    proj = rng.integers(300, 900, (k * chunks, rows, width)).astype(np.uint16)
    angles = np.linspace(0.0, 180.0, k * chunks, endpoint=False)
    refs = tomo_references(darks, flats)
    fresh = tomo_combine([tomo_chunk(proj[i:i + k], angles[i:i + k], refs)
                          for i in range(0, k * chunks, k)])
    buffers = OutputBuffers()
    tomo_combine(tomo_chunk(proj[:k], angles[:k], refs, buffers=buffers) for _ in range(1))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    reused = tomo_combine(tomo_chunk(proj[i:i + k], angles[i:i + k], refs, buffers=buffers)
                          for i in range(0, k * chunks, k))
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    np.testing.assert_array_equal(reused, fresh)
    volume_pages = rows * width * width * 4 // resource.getpagesize()
    # the sum is new per reduction (1 volume); fresh buffers per chunk would add 2
    # volumes a chunk (12 here)
    assert faults < 4 * volume_pages, (faults, volume_pages)


def _tomo_inputs(seed: int, rows: int, width: int, n: int) -> tuple[Any, Any, Any]:
    """``n`` random projections ``(n, rows, width)``, their angles over 180° and dark/flat
    references, for the chunk-folding tests."""
    rng = np.random.default_rng(seed)
    darks = rng.integers(90, 110, (2, rows, width)).astype(np.uint16)
    flats = rng.integers(900, 1100, (2, rows, width)).astype(np.uint16)
    proj = rng.integers(300, 900, (n, rows, width)).astype(np.uint16)
    angles = np.linspace(0.0, 180.0, n, endpoint=False)
    return proj, angles, tomo_references(darks, flats)


def test_partials_of_shared_buffers_collected_before_folding_are_refused() -> None:
    """Chunks reconstructed into one ``OutputBuffers`` and collected in a list before
    ``tomo_combine`` all hold the last chunk's volume: summed, that volume times every
    chunk's weight, divided by their total, is the last chunk's reconstruction, returned
    as the whole run's without an error. ``tomo_combine`` refuses it; folded in turn
    (a generator) the same chunks give the fresh buffers' volume."""
    rows, width, k, chunks = 8, 64, 3, 3
    proj, angles, refs = _tomo_inputs(5, rows, width, k * chunks)
    starts = range(0, k * chunks, k)
    fresh = tomo_combine([tomo_chunk(proj[i:i + k], angles[i:i + k], refs) for i in starts])
    last = tomo_chunk(proj[-k:], angles[-k:], refs).volume
    buffers = OutputBuffers()
    listed = [tomo_chunk(proj[i:i + k], angles[i:i + k], refs, buffers=buffers)
              for i in starts]
    assert all(np.array_equal(part.volume, last) for part in listed)  # the wrong sum's parts
    assert np.abs(last - fresh).max() > 0.1 * np.abs(fresh).max()
    with pytest.raises(ReductionError, match=r"chunk partial 0: .*\(a later chunk overwrote"):
        tomo_combine(listed)
    folded = tomo_combine(tomo_chunk(proj[i:i + k], angles[i:i + k], refs, buffers=buffers)
                          for i in starts)
    np.testing.assert_array_equal(folded, fresh)


def test_a_partial_folded_in_its_own_buffer_is_not_taken_again() -> None:
    """The fold weights a partial of a reduction's ``OutputBuffers`` in place (its volume
    becomes ``n`` times its reconstruction). Kept and used again — folded a second time —
    it gave a volume ``n`` times too large without an error; it is now marked changed and
    refused."""
    rows, width, k = 4, 32, 3
    proj, angles, refs = _tomo_inputs(11, rows, width, 2 * k)
    buffers = OutputBuffers()
    kept: list[Any] = []

    def chunks() -> Any:
        for i in range(0, 2 * k, k):
            kept.append(tomo_chunk(proj[i:i + k], angles[i:i + k], refs, buffers=buffers))
            yield kept[-1]

    tomo_combine(chunks())
    last = kept[-1]
    assert last.overwritten()
    with pytest.raises(ReductionError, match=r"chunk partial 0: .* a fold weighted it in place"):
        tomo_combine([last])


def test_folding_a_reductions_buffers_allocates_only_the_sum() -> None:
    """Partials in a reduction's ``OutputBuffers`` are weighted in their own buffer (the
    next chunk overwrites it anyway), so folding them allocates the sum and nothing else
    volume-sized (it allocated a second volume for the weighted partial); the volume is
    bit for bit the fresh arrays' one."""
    rows, width, k, chunks = 8, 256, 2, 4
    proj, angles, refs = _tomo_inputs(7, rows, width, k * chunks)
    starts = range(0, k * chunks, k)
    fresh = tomo_combine([tomo_chunk(proj[i:i + k], angles[i:i + k], refs) for i in starts])
    buffers = OutputBuffers()
    tomo_chunk(proj[:k], angles[:k], refs, buffers=buffers)  # (the buffers exist)
    volume_bytes = rows * width * width * 4
    tracemalloc.start()
    try:
        folded = tomo_combine(tomo_chunk(proj[i:i + k], angles[i:i + k], refs,
                                         buffers=buffers) for i in starts)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(folded, fresh)
    assert volume_bytes <= peak < 1.5 * volume_bytes, (peak, volume_bytes)


def test_reduce_command(acquired: AcquiredRuns, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(acquired.data_dir)
    assert reduce_main([acquired.tomo_uid[:8], "--data", data, "--rows", "30", "31"]) == 0
    out = capsys.readouterr().out.splitlines()
    uid = out[0]
    assert "(tomo_fbp)" in out[1] and "reconstruction 2×64×64" in out[1]
    assert catalog_main(["show", acquired.tomo_uid, "--data", data]) == 0
    shown = capsys.readouterr().out
    assert f"{uid}  tomo_fbp  offline" in shown
    run = acquired.catalog.run(uid)
    assert run.metadata["start"]["raw_uid"] == acquired.tomo_uid
    assert run["primary"]["reconstruction"].shape == (2, 64, 64)
    # smeflow reduce records the derived run's provenance: its output, its inputs, the
    # code version, the chain of its documents
    record = run.metadata["provenance"]
    assert record["raw_uid"] == acquired.tomo_uid and record["smeflow_version"]
    assert len(record["files"]) == 1 and record["files"][0]["sha256"]
    assert {i["uri"] for i in record["inputs"]} == {
        i["uri"] for i in run.metadata["start"]["inputs"]}
    assert record["documents"]["counts"]["stop"] == 1

    for bad, message in (("zz", "not a uid"), ("abcdef12", "no run whose uid starts with"),
                         (acquired.diff_uid, "argument `unit`")):
        extra = ["--unit", "furlongs"] if bad == acquired.diff_uid else []
        assert reduce_main([bad, "--data", data, *extra]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("smeflow reduce: error:")
        assert message in lines[0]


@pytest.mark.parametrize(("run", "options", "kwargs", "message"), [
    ("diff", ["--rows", "10", "20"], {"rows": [10, 20]}, r"--rows \(rows=\) is an option "
     r"of tomography, but this run is reduced as 1D diffraction patterns \(azint1d"),
    ("tomo", ["--bins", "100"], {"bins": 100}, r"--bins is an option of diffraction, but "
     r"this run is reduced as a tomographic reconstruction \(tomo_fbp\)"),
    ("tomo", ["--bins", "100", "--unit", "r_mm"], {"bins": 100, "unit": "r_mm"},
     r": --bins/--unit is an option of"),
])
def test_the_other_reductions_options_are_refused(
        acquired: AcquiredRuns, capsys: pytest.CaptureFixture[str], run: str,
        options: list[str], kwargs: dict[str, Any], message: str) -> None:
    """User report U14: ``--rows`` of a diffraction run, ``--bins``/``--unit`` of a
    tomography run were dropped without a word and the reduction ended "success"."""
    import re

    uid = acquired.diff_uid if run == "diff" else acquired.tomo_uid
    derived = len(acquired.catalog.derived)
    assert reduce_main([uid, "--data", str(acquired.data_dir), *options]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1 and re.search(message, lines[0]), lines
    assert lines[0].startswith(f"smeflow reduce: error: run {uid}: ")
    assert len(acquired.catalog.derived) == derived  # nothing started
    with pytest.raises(ReductionError, match=message):
        reduce_run(acquired.catalog, uid, **kwargs)


def test_damaged_input_is_refused_and_leaves_no_derived_run(
        acquired: AcquiredRuns, capsys: pytest.CaptureFixture[str]) -> None:
    """A flipped bit in a raw frame file used to be reduced as data (and a truncated file
    as zeros); now the frame's checksum fails, the command says which file and frame,
    and no derived run is written."""
    import h5py

    from dataflow.hdf5 import DEFAULT_DATASET

    run = acquired.catalog.run(acquired.diff_uid)
    (source,) = run["primary"]["det_image"].data_sources()
    path = Path(source.assets[0].data_uri.removeprefix("file://localhost"))
    before = len(acquired.catalog.derived_runs(acquired.diff_uid))
    original = path.read_bytes()
    with h5py.File(path, "r") as f:
        offset = f[DEFAULT_DATASET].id.get_chunk_info(0).byte_offset
    damaged = bytearray(original)
    damaged[offset + 11] ^= 0x01
    try:
        path.write_bytes(bytes(damaged))
        assert reduce_main([acquired.diff_uid, "--data", str(acquired.data_dir)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("smeflow reduce: error: frames: ")
        assert f"{path}: frame 0 is damaged" in err[0]
        assert len(acquired.catalog.derived_runs(acquired.diff_uid)) == before
    finally:
        path.write_bytes(original)


def test_derived_events_are_valid_documents_and_wrong_keys_are_refused() -> None:
    """A derived event is composed without event_model's schema walk: what it sends
    still passes that schema, and data whose keys are not the stream's is refused with
    both key lists (the one check the walk made of documents composed here)."""
    from event_model import DocumentNames, schema_validators

    from analysis.derived_run import DerivedRun

    docs: list[tuple[str, dict[str, Any]]] = []
    run = DerivedRun([lambda name, doc: docs.append((name, doc))], {"raw_uid": "r"})
    run.descriptor("primary", {"intensity": {"source": "t", "dtype": "array", "shape": [3]},
                               "raw_seq_num": {"source": "t", "dtype": "integer",
                                               "shape": []}})
    run.event("primary", {"intensity": np.array([1.0, 2.0, 3.0]),
                          "raw_seq_num": np.int64(4)})
    name, event = docs[-1]
    assert name == "event" and event["data"] == {"intensity": [1.0, 2.0, 3.0],
                                                 "raw_seq_num": 4}
    schema_validators[DocumentNames.event].validate(event)
    with pytest.raises(ReductionError, match=r"event of derived stream 'primary': data keys "
                                             r"\['intensity'\], the stream declares "
                                             r"\['intensity', 'raw_seq_num'\]"):
        run.event("primary", {"intensity": np.zeros(3)})
    assert len(docs) == 3  # start, descriptor, the one good event
    # several events in one page: the rows' numbers follow the single event's, numpy
    # values become lists and Python numbers, and it is a valid event page
    run.events("primary", {"intensity": np.arange(6.0).reshape(2, 3),
                           "raw_seq_num": [np.int64(5), 6]})
    name, page = docs[-1]
    assert name == "event_page" and page["seq_num"] == [2, 3]
    assert page["data"] == {"intensity": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]],
                            "raw_seq_num": [5, 6]}
    assert type(page["data"]["raw_seq_num"][0]) is int
    schema_validators[DocumentNames.event_page].validate(page)
    with pytest.raises(ReductionError, match=r"columns of lengths \[1, 2\]"):
        run.events("primary", {"intensity": np.zeros((2, 3)), "raw_seq_num": [1]})
    with pytest.raises(ReductionError, match=r"data keys \['raw_seq_num'\]"):
        run.events("primary", {"raw_seq_num": [1]})
    assert len(docs) == 4


def test_input_digests_are_the_writers_unless_the_file_changed_since(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A derived run's input digest is its writer's (the fresh ``.sha256`` sidecar: the
    file is not hashed again), and the file's own when the file is newer than the sidecar
    (written to after its writer's digest) or has none."""
    import os

    import analysis.derived_run as derived_run
    from dataflow.hdf5 import FrameWriter

    writer = FrameWriter(tmp_path, "raw.h5", (4, 6))
    writer.append_many(np.arange(48, dtype=np.uint16).reshape(2, 4, 6))
    digest = writer.close()
    path = tmp_path / "raw.h5"
    uri = f"file://localhost{path}"
    hashed: list[Path] = []

    def counting(p: Any) -> str:
        hashed.append(Path(p))
        return file_sha256(p)

    monkeypatch.setattr(derived_run, "file_sha256", counting)
    assert derived_run.file_inputs([uri]) == [{"uri": uri, "sha256": digest}]
    assert hashed == []
    with open(path, "r+b") as f:  # a byte changed after the writer's digest
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    sidecar = path.with_name("raw.h5.sha256")
    stamp = sidecar.stat().st_mtime_ns
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))  # (newer than the sidecar)
    (item,) = derived_run.file_inputs([uri])
    assert hashed == [path] and item["sha256"] == file_sha256(path) != digest
    sidecar.unlink()
    assert derived_run.file_inputs([uri])[0]["sha256"] == file_sha256(path)
    assert derived_run.file_inputs([uri], digest=False) == [{"uri": uri, "sha256": None}]
