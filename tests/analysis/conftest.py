"""Shared fixtures of the reduction tests: runs acquired once, with the live reduction on.

``acquired`` runs a small tomography scan (64×64 frames, 2 darks, 2 flats, 10
projections) and a diffraction scan (3 frames) on the beamline with the compiled
firmware, through a real RunEngine into an embedded catalog in a temporary folder, with
a :class:`analysis.live.LiveReducer` subscribed next to the catalog writer. Both writers
use ``batch_size=1`` (every document written as it arrives), the live consumers' case;
the demo test covers the default batching. Tests then reduce the same runs offline and
compare.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FRAME = (64, 64)
PROJECTIONS = 10


@dataclass
class AcquiredRuns:
    """The session's catalog, RunEngine, beamline, live reducer and the two raw runs."""

    catalog: Any
    RE: Any
    beamline: Any
    live: Any
    tomo_uid: str
    diff_uid: str
    documents: dict[str, list[tuple[str, dict[str, Any]]]]
    """Every document of each raw run, as the RunEngine emitted them (for replays)."""

    @property
    def data_dir(self) -> Path:
        """The catalog folder (for the command-line tests)."""
        return Path(self.catalog.root)


@pytest.fixture(scope="session")
def acquired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcquiredRuns]:
    """Runs acquired with the live reduction (see the module docstring)."""
    from bluesky import RunEngine
    from bluesky import plan_stubs as bps

    from analysis.live import LiveReducer
    from dataflow.catalog import Catalog
    from devices.beamline import Beamline
    from fpga.designs.params import ChainParams
    from plans import diffraction_scan, tomo_scan

    catalog = Catalog(tmp_path_factory.mktemp("reduce") / "data")
    RE = RunEngine({})
    catalog.subscribe(RE, batch_size=1)
    live = LiveReducer.for_catalog(catalog, batch_size=1)
    RE.subscribe(live)
    documents: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    current: list[tuple[str, dict[str, Any]]] = []

    def record(name: str, doc: dict[str, Any]) -> None:
        nonlocal current
        if name == "start":
            current = documents[doc["uid"]] = []
        current.append((name, copy.deepcopy(doc)))

    RE.subscribe(record)
    beamline = Beamline.create(catalog.raw_dir, params=ChainParams(*FRAME, 16),
                               backend="compiled", time_scale=0.001)
    try:
        RE(bps.mv(beamline.shutter, "open"))
        live.warm_up(FRAME, beamline.geometry)
        beamline.use_phantom()
        (tomo_uid,) = RE(tomo_scan(beamline.det, beamline.rotation, beamline.sample_x,
                                   beamline.shutter, out_position=20.0,
                                   num_projections=PROJECTIONS, n_darks=2, n_flats=2))
        assert live.wait(tomo_uid, timeout=120)
        beamline.use_powder()
        (diff_uid,) = RE(diffraction_scan(beamline.det, beamline.sample_x, beamline.sample_y,
                                          [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5)], num=1,
                                          shutter=beamline.shutter,
                                          md={"geometry": beamline.geometry.to_metadata()}))
        assert live.wait(diff_uid, timeout=120)
        yield AcquiredRuns(catalog, RE, beamline, live, tomo_uid, diff_uid, documents)
    finally:
        live.close()
        beamline.close()
        catalog.close()


ServedRun = tuple[Any, str]
"""A running catalog server (``dataflow.server.ServerHandle``) and the uid of its one run."""


@pytest.fixture(scope="session")
def serve_one_run(tmp_path_factory: pytest.TempPathFactory
                  ) -> Callable[[str, str, Callable[[Any], Any]], AbstractContextManager[ServedRun]]:
    """A factory of catalog servers that each hold one small run written over HTTP.

    ``with serve_one_run(name, key, plan_for) as (server, uid)``: a server on a fresh
    folder guarded by ``key``, one run of ``plan_for(beamline)`` (the plan, after the
    sample is chosen on the interpreted 64×64 beamline with the shutter open) written
    through a ``RemoteCatalog``; the server stops on leaving the block.
    """
    from bluesky import RunEngine
    from bluesky import plan_stubs as bps

    from dataflow.remote import RemoteCatalog
    from dataflow.server import ServerHandle
    from devices.beamline import Beamline
    from fpga.designs.params import ChainParams

    @contextmanager
    def serve(name: str, key: str, plan_for: Callable[[Any], Any]) -> Iterator[ServedRun]:
        with ServerHandle(tmp_path_factory.mktemp(name) / "data", key) as server, \
                RemoteCatalog(server.url, key) as remote:
            RE = RunEngine({})
            remote.subscribe(RE)
            beamline = Beamline.create(server.data_dir / "raw", params=ChainParams(64, 64, 16),
                                       backend="interp", time_scale=0.001)
            try:
                RE(bps.mv(beamline.shutter, "open"))
                (uid,) = RE(plan_for(beamline))
            finally:
                beamline.close()
            yield server, uid

    return serve
