"""A stream's frames have the shape its descriptor gives them.

bluesky describes a device once per stream of a run; a detector that is not staged (a
hand-written plan that reads it without ``bps.stage``, or a baseline) takes a change of
``det.binning`` between two reads. Its next frame (8×32 where the descriptor says 16×64)
was announced all the same: the catalog's writer failed inside its callback with "All
StreamResource documents must have the same chunk shape" (the run aborted with a
message about chunks), and without a catalog the documents said one shape and held
another. The detector now refuses to announce such a frame, naming the stream, both
shapes and the cause, and writes nothing. (A staged detector refuses the binning change
itself: ``refuse_while_staged``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp

from devices.beamline import Beamline
from fpga.designs.params import ChainParams


@pytest.fixture(scope="module")
def beamline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Beamline]:
    b = Beamline.create(tmp_path_factory.mktemp("raw"), params=ChainParams(16, 64, 32),
                        backend="interp", time_scale=0.0005)
    b.det.exposure.put(0.01)
    yield b
    b.close()


def test_a_frame_of_another_shape_is_not_read_into_the_stream(beamline: Beamline) -> None:
    det = beamline.det
    documents: list[tuple[str, dict[str, Any]]] = []
    RE = RunEngine({})
    RE.subscribe(lambda name, doc: documents.append((name, doc)))

    def plan() -> Any:
        yield from bps.trigger_and_read([det])
        yield from bps.mv(det.binning, True)
        yield from bps.trigger_and_read([det])

    try:
        with pytest.raises(ValueError, match=(
                r"^det: a 8×32 frame cannot be read into the 'primary' stream, whose "
                r"descriptor gives det_image 16×64 frames: the frame shape changed within "
                r"the run \(det\.binning\); change it between runs, or stage det, which "
                r"refuses the change$")):
            RE(bpp.run_wrapper(plan()))
    finally:
        det.binning.put(False)
    names = [name for name, _ in documents]
    assert names.count("event") == 1 and names.count("stream_datum") == 1
    assert documents[-1][1]["exit_status"] == "fail"
    # the next run, with the shape it describes, is fine
    documents.clear()
    RE(bpp.run_wrapper(bps.trigger_and_read([det])))
    assert [name for name, _ in documents].count("event") == 1


def test_each_run_describes_its_own_shape(beamline: Beamline) -> None:
    det, RE = beamline.det, RunEngine({})
    shapes = []
    RE.subscribe(lambda name, doc: shapes.append(doc["data_keys"]["det_image"]["shape"])
                 if name == "descriptor" else None)
    try:
        RE(bpp.run_wrapper(bps.trigger_and_read([det])))
        det.binning.put(True)
        RE(bpp.run_wrapper(bps.trigger_and_read([det])))
    finally:
        det.binning.put(False)
    assert shapes == [[16, 64], [8, 32]]
