"""bluesky's own ``bp.fly`` with the detector's flyer records its frames with
``stream_resource``/``stream_datum`` documents (``devices.flyer``,
``dataflow.fly_streams``): every document passes event-model's schemas and the frames read
back bit for bit, through the Tiled client and databroker (v1 and v2), as the HDF5 file
holds them. bluesky takes those documents only into a declared stream, which ``bp.fly``
does not declare: the catalog's preprocessor declares it, a plan may declare it itself,
and a RunEngine with neither refuses the kickoff with one error saying what to do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from event_model import DocumentNames, schema_validators
from ophyd.status import DeviceStatus

from dataflow import fly_streams
from dataflow.broker import open_broker
from dataflow.catalog import Catalog
from devices.beamline import Beamline
from devices.fly import FlyParameters
from devices.flyer import DetectorFlyer, UndeclaredStream
from fpga.designs.params import ChainParams
from plans import fly_tomo_scan

P = ChainParams(16, 32, 16)
FRAMES = 6

Docs = list[tuple[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Catalog, Beamline]]:
    catalog = Catalog(tmp_path_factory.mktemp("flyer-streams") / "data")
    beamline = Beamline.create(catalog.raw_dir, params=P, backend="compiled",
                               time_scale=0.001)
    beamline.shutter.set("open").wait(5)
    try:
        yield catalog, beamline
    finally:
        beamline.close()
        catalog.close()


def _engine(catalog: Catalog | None) -> tuple[RunEngine, Docs]:
    """A fresh RunEngine (subscribed to ``catalog`` if given) and its documents."""
    RE = RunEngine({})
    if catalog is not None:
        catalog.subscribe(RE)
    docs: Docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    return RE, docs


def _flyer(bl: Beamline) -> DetectorFlyer:
    return DetectorFlyer(bl.det, FlyParameters(frames=FRAMES, exposure=0.01))


def _valid(docs: Docs) -> list[str]:
    """The documents' names, each document checked against event-model's schema."""
    for name, doc in docs:
        schema_validators[DocumentNames(name)].validate(doc)
    return [name for name, _ in docs]


def test_bluesky_bp_fly_announces_its_frames_with_stream_documents(setup: Any) -> None:
    catalog, bl = setup
    RE, docs = _engine(catalog)
    flyer = _flyer(bl)
    assert getattr(flyer, fly_streams.STREAM_ATTRIBUTE) == "primary"  # (what is declared)
    (uid,) = RE(bp.fly([flyer]))
    assert _valid(docs) == ["start", "descriptor", "stream_resource", "stream_datum",
                            "event_page", "stop"]
    got = {name: doc for name, doc in docs}
    assert got["stop"]["exit_status"] == "success"
    assert got["stop"]["num_events"] == {"primary": FRAMES}
    image = got["descriptor"]["data_keys"]["det_image"]
    assert (got["descriptor"]["name"], image["external"], image["shape"]) == \
        ("primary", "STREAM:", list(P.out_shape(False)))
    resource, datum = got["stream_resource"], got["stream_datum"]
    assert (resource["data_key"], resource["run_start"]) == ("det_image", uid)
    assert datum["descriptor"] == got["descriptor"]["uid"]
    assert (datum["indices"], datum["seq_nums"]) == ({"start": 0, "stop": FRAMES},
                                                     {"start": 1, "stop": FRAMES + 1})
    path = Path(resource["uri"].removeprefix("file://localhost"))
    with h5py.File(path, "r") as f:
        on_disk = f[resource["parameters"]["dataset"]][()]
    assert on_disk.shape == (FRAMES, *P.out_shape(False))
    # the firmware's own ROI sums (full frame) in the events agree with the images
    sums = on_disk.reshape(FRAMES, -1).sum(axis=1, dtype=np.int64)
    np.testing.assert_array_equal(sums, got["event_page"]["data"]["det_roi_sum"])
    assert sums.all()
    tiled = catalog.run(uid)["primary"]["det_image"][:]
    db = open_broker(catalog)
    v2 = db.v2[uid].primary.read()["det_image"].values
    v1 = np.stack(list(db[uid].table(fill=True)["det_image"]))
    for read in (tiled, v2, v1):
        assert read.dtype == on_disk.dtype
        np.testing.assert_array_equal(read, on_disk)
    assert not bl.det.files.staged  # (the flyer staged the detector and unstaged it)


def test_smeflow_fly_tomography_announces_its_frames_with_stream_documents(
        setup: Any) -> None:
    """smeflow's own fly plan (the detector itself, its stream declared by the plan):
    darks, flats and projections, each stream's frames by stream documents only."""
    catalog, bl = setup
    RE, docs = _engine(catalog)
    (uid,) = RE(fly_tomo_scan(bl.det, bl.rotation, bl.sample_x, bl.shutter,
                              out_position=20.0, exposure=0.02, n_darks=1, n_flats=1,
                              num_projections=4, start=0.0, stop=10.0))
    names = _valid(docs)
    assert not {"resource", "datum", "datum_page"} & set(names)
    keys = {d["uid"]: d["data_key"] for n, d in docs if n == "stream_resource"}
    assert set(keys.values()) == {"det_image", "det_pixel_mask"}  # (the mask stream's too)
    streams = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    announced = {streams[d["descriptor"]]: d["indices"]["stop"] for n, d in docs
                 if n == "stream_datum" and keys[d["stream_resource"]] == "det_image"}
    assert announced == {"dark": 1, "flat": 1, "primary": 4}
    run = catalog.run(uid)
    for stream, n in (("dark", 1), ("flat", 1), ("primary", 4)):
        assert run[stream]["det_image"].shape == (n, *P.out_shape(False))
    bl.shutter.set("open").wait(5)  # (the plan closes it for its darks)


def test_a_run_engine_that_declares_no_stream_refuses_the_kickoff(setup: Any) -> None:
    """Without the catalog's preprocessor, bluesky would collect the flyer the older way
    and refuse its ``stream_resource`` after the acquisition: the kickoff fails first,
    before the detector is staged or anything acquired."""
    _, bl = setup
    RE, docs = _engine(None)
    before = bl.det.fly
    with pytest.raises(UndeclaredStream, match=(
            r"det_flyer: kickoff\(\) in a run that declared no stream for it: .*"
            r"dataflow\.fly_streams\.install\(RE\).*"
            r"bps\.declare_stream\(det_flyer, name='primary', collect=True\)")):
        RE(bp.fly([_flyer(bl)]))
    assert bl.det.fly is before and not bl.det.files.staged
    stop = docs[-1][1]
    assert docs[-1][0] == "stop" and stop["exit_status"] == "fail"


def _declaring_fly(flyer: DetectorFlyer) -> Any:
    """``bp.fly`` with the stream declared by the plan, as ophyd-async's fly plans do."""
    yield from bps.open_run()
    yield from bps.declare_stream(flyer, name="primary", collect=True)
    yield from bps.kickoff(flyer, wait=True)
    yield from bps.complete(flyer, wait=True)
    yield from bps.collect(flyer)
    yield from bps.close_run()


@pytest.mark.parametrize("preprocessor", [False, True], ids=["alone", "with-preprocessor"])
def test_a_plan_declaring_the_stream_itself_records_one_descriptor(
        setup: Any, preprocessor: bool) -> None:
    _, bl = setup
    RE, docs = _engine(None)
    if preprocessor:
        fly_streams.install(RE)
    RE(_declaring_fly(_flyer(bl)))
    assert _valid(docs) == ["start", "descriptor", "stream_resource", "stream_datum",
                            "event_page", "stop"]


class _Counter:
    """A second flyer, as a plan might declare it with the detector's."""

    name = "counter"
    parent = None

    def kickoff(self) -> Any:
        status = DeviceStatus(self)
        status.set_finished()
        return status

    def describe_collect(self) -> dict[str, Any]:
        return {"counter_x": {"source": "sim", "dtype": "number", "shape": []}}


def test_a_stream_declared_with_another_device_is_named_at_the_kickoff(setup: Any) -> None:
    """bluesky keys declared streams by the set of devices declared together, and collects
    such a stream from stream documents alone (``WritesStreamAssets``); the flyer's
    frames come with event pages. The kickoff said 'declared no stream for it' (the
    review's finding); without the check, bluesky failed at the collect, after the
    acquisition, with 'does not implement all WritesStreamAssets methods'."""
    _, bl = setup
    RE, _ = _engine(None)
    flyer, before = _flyer(bl), bl.det.fly

    def plan() -> Any:
        yield from bps.open_run()
        yield from bps.declare_stream(flyer, _Counter(), name="primary", collect=True)
        yield from bps.kickoff(flyer, wait=True)
        yield from bps.close_run()

    with pytest.raises(UndeclaredStream, match=(
            r"det_flyer: kickoff\(\) in a run that declared its stream only together with "
            r"counter: .*bps\.declare_stream\(det_flyer, name='primary', collect=True\)")):
        RE(plan())
    assert bl.det.fly is before and not bl.det.files.staged


class _Named:
    """Messages only: an object that names its stream, as ``DetectorFlyer`` does."""

    def __init__(self, name: str, stream: str | None) -> None:
        self.name = name
        self.collect_stream = stream


def _messages(plan: Any) -> list[Any]:
    out, response = [], None
    while True:
        try:
            msg = plan.send(response)
        except StopIteration:
            return out
        out.append(msg)
        response = "uid" if msg.command == "open_run" else None


def test_the_preprocessor_declares_once_per_run_before_the_kickoff() -> None:
    flyer, other = _Named("flyer", "primary"), _Named("rotation", None)

    def two_runs() -> Any:
        yield from bp.fly([flyer, other])
        yield from bp.fly([flyer])

    msgs = _messages(fly_streams.declare_flyer_streams(two_runs()))
    commands = [(m.command, getattr(m.obj, "name", None)) for m in msgs
                if m.command in ("open_run", "declare_stream", "kickoff", "collect")]
    declare = ("declare_stream", None)
    assert commands == [("open_run", None), declare, ("kickoff", "flyer"),
                        ("kickoff", "rotation"), ("collect", "flyer"),
                        ("collect", "rotation"),
                        ("open_run", None), declare, ("kickoff", "flyer"),
                        ("collect", "flyer")]
    for m in msgs:
        if m.command == "declare_stream":
            assert (m.args, m.kwargs) == ((flyer,), {"name": "primary", "collect": True})
