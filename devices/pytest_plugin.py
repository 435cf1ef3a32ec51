"""pytest fixture giving a ready beamline: a RunEngine writing into a temporary embedded
catalog, and every device of ``devices.Beamline`` (registered with the HDL fixtures of
``fpga.pytest_plugin`` as part of smeflow's pytest plugin, entry point ``pytest11``)::

    import bluesky.plans as bp

    def test_count(smeflow_beamline):
        bl = smeflow_beamline
        uid, = bl.RE(bp.count([bl.det], 3))
        assert bl.catalog.run(uid)["primary"]["det_image"].shape == (3, 64, 64)

Frames are 64×64 on the interpreter by default (fast to start); a test that wants other
parameters builds ``Beamline.create(...)`` itself with ``smeflow_catalog``.
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
def smeflow_beamline(smeflow_catalog: Catalog) -> Iterator[ReadyBeamline]:
    """A RunEngine subscribed to ``smeflow_catalog`` and a 64×64 beamline (interpreter
    firmware, motion 1000× faster than real time, shutter open)."""
    from bluesky import RunEngine
    from bluesky import plan_stubs as bps

    from devices.beamline import Beamline
    from fpga.designs.params import ChainParams

    RE = RunEngine({})
    smeflow_catalog.subscribe(RE)
    beamline = Beamline.create(smeflow_catalog.raw_dir, params=ChainParams(64, 64, 16),
                               backend="interp", time_scale=0.001)
    RE(bps.mv(beamline.shutter, "open"))
    yield ReadyBeamline(RE, smeflow_catalog, beamline)
    if RE.state != "idle":
        RE.halt()  # type: ignore[no-untyped-call]
    beamline.close()
