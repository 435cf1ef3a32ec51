"""pytest fixture giving a ready beamline: a RunEngine writing into a temporary embedded
catalog, and every device of ``devices.Beamline`` (registered with the HDL fixtures of
``fpga.pytest_plugin`` as part of smeflow's pytest plugin, entry point ``pytest11``)::

    import bluesky.plans as bp

    def test_count(smeflow_beamline):
        bl = smeflow_beamline
        uid, = bl.RE(bp.count([bl.det], 3))
        assert bl.catalog.run(uid)["primary"]["det_image"].shape == (3, 64, 64)

Frames are 64×64 on the interpreter by default (fast to start); a test module that wants
other firmware parameters overrides the fixture ``smeflow_chain_params`` (smaller frames
make the interpreter's firmware faster: a quarter of the pixels, a quarter of its ticks),
a test that wants another beamline builds ``Beamline.create(...)`` itself with
``smeflow_catalog``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from dataflow.catalog import Catalog
    from devices.beamline import Beamline
    from fpga.designs.params import ChainParams


@dataclass
class ReadyBeamline:
    """What ``smeflow_beamline`` yields: ``RE``, ``catalog``, ``beamline`` and, for short,
    every device of the beamline as an attribute (``det``, ``rotation``, …)."""

    RE: Any
    catalog: Catalog
    beamline: Beamline

    def __getattr__(self, name: str) -> Any:
        return getattr(self.beamline, name)


@pytest.fixture
def smeflow_catalog(tmp_path: Path) -> Iterator[Catalog]:
    """An empty embedded Tiled catalog in a temporary folder."""
    from dataflow.catalog import Catalog

    catalog = Catalog(tmp_path / "smeflow-data")
    yield catalog
    catalog.close()


@pytest.fixture
def smeflow_chain_params() -> ChainParams:
    """The firmware parameters of ``smeflow_beamline``'s detector: 64×64 pixels, 16 lanes
    (override this fixture in a test module for others)."""
    from fpga.designs.params import ChainParams

    return ChainParams(64, 64, 16)


@pytest.fixture
def smeflow_beamline(smeflow_catalog: Catalog,
                     smeflow_chain_params: ChainParams) -> Iterator[ReadyBeamline]:
    """A RunEngine subscribed to ``smeflow_catalog`` and a beamline whose detector has the
    firmware of ``smeflow_chain_params`` (64×64 unless overridden; interpreter firmware,
    motion 1000× faster than real time, shutter open)."""
    from bluesky import RunEngine
    from bluesky import plan_stubs as bps

    from devices.beamline import Beamline

    RE = RunEngine({})
    smeflow_catalog.subscribe(RE)
    beamline = Beamline.create(smeflow_catalog.raw_dir, params=smeflow_chain_params,
                               backend="interp", time_scale=0.001)
    RE(bps.mv(beamline.shutter, "open"))
    yield ReadyBeamline(RE, smeflow_catalog, beamline)
    if RE.state != "idle":
        RE.halt()  # type: ignore[no-untyped-call]
    beamline.close()
