"""Event stream and data key names in the catalog (``dataflow.event_pages``): a name a
catalog node can carry is stored and read back as its own stream; any other is refused
at its descriptor with one error naming the character, the run's earlier streams kept.

Review E7: a stream named ``q?x``, ``h#1``, ``p%41`` or ``s/t`` failed the run inside
Tiled's client ("404 No such entry: ['raw', <uid>, 'q']")."""

from __future__ import annotations

import re
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
import pytest
from event_model import compose_run

from dataflow.catalog import Catalog
from dataflow.event_pages import NodeNameError, PageNormalizer

STORED = ["dark field", "Dark", "flat.1", "\u00fcn\u00efcode", "a+b", "x_y"]
REFUSED = [("p%41", "'%'"), ("q?x", "'?'"), ("h#1", "'#'"), ("s/t", "'/'")]


@pytest.fixture(scope="module")
def smeflow_catalog(catalog: Catalog) -> Catalog:
    """``smeflow_beamline`` writes into the module's one catalog (tests/dataflow/conftest.py)
    instead of a new one per test: every test looks its own run up by uid."""
    return catalog


def _plan(det: Any, name: str) -> Any:
    @bpp.run_decorator()
    def plan() -> Any:
        yield from bps.trigger_and_read([det])
        yield from bps.mv(det.threshold, 7)
        yield from bps.trigger_and_read([det], name=name)
        yield from bps.trigger_and_read([det], name="dark")

    return plan()


@pytest.mark.parametrize("name", STORED)
def test_a_stream_name_a_node_can_carry_is_stored(smeflow_beamline: Any, name: str) -> None:
    """The review's reproduction: the stream is written and read back as its own."""
    bl = smeflow_beamline
    (uid,) = bl.RE(_plan(bl.det, name))
    run = bl.catalog.run(uid)
    assert run.metadata["stop"]["exit_status"] == "success"
    assert {"primary", name, "dark"} <= set(run)
    assert int(run[name].metadata["configuration"]["det"]["data"]["det_threshold"]) == 7
    assert np.asarray(run[name]["det_image"][:]).shape[0] == 1


@pytest.mark.parametrize(("name", "char"), REFUSED)
def test_any_other_stream_name_is_refused_naming_the_character(
        smeflow_beamline: Any, name: str, char: str) -> None:
    bl = smeflow_beamline
    uids: list[str] = []
    bl.RE.subscribe(lambda doc_name, doc: uids.append(doc["uid"]) if doc_name == "start"
                    else None)
    with pytest.raises(NodeNameError, match=f"event stream {re.escape(repr(name))}: "
                                            f"{re.escape(char)} cannot be"):
        bl.RE(_plan(bl.det, name))
    run = bl.catalog.run(uids[-1])  # the run is closed, its first stream kept
    assert run.metadata["stop"]["exit_status"] == "fail"
    assert np.asarray(run["primary"]["det_image"][:]).shape[0] == 1
    assert name not in set(run)


@pytest.mark.parametrize("key", ["a\\b", "x?", "n#", "p%41", "tab\there"])
def test_a_data_key_no_node_can_carry_is_refused(key: str) -> None:
    run = compose_run()
    stream = run.compose_descriptor(name="primary", data_keys={
        key: {"source": "s", "dtype": "number", "shape": []}})
    normalizer = PageNormalizer()
    normalizer.start(run.start_doc)
    with pytest.raises(NodeNameError, match="data key of stream 'primary'"):
        normalizer.descriptor(dict(stream.descriptor_doc))
