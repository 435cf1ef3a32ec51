"""A run's stream read as databroker's "Get Metadata" tutorial reads it: the column of a
reading names its device (``da.attrs.get("object")``, whose configuration the tutorial
then looks up) and carries its units, as databroker 2's reader sets them
(``{"object": ..., "units_string": ...}``). The reference is each descriptor the
RunEngine emitted. bluesky-tiled-plugins 2.0.12's stream of a SQL catalog answered
``attrs == {}`` for every column: ``attrs.get("object")`` was ``None``, the units lost."""

from __future__ import annotations

from typing import Any

from bluesky import RunEngine
from bluesky.plans import scan

from dataflow.broker import open_broker
from dataflow.catalog import Catalog
from devices.motion import SimMotor


def test_each_column_names_its_device_and_units(catalog: Catalog, frame_cam: Any) -> None:
    RE = RunEngine()
    catalog.subscribe(RE)
    descriptors: list[dict[str, Any]] = []
    RE.subscribe(lambda name, doc: descriptors.append(doc) if name == "descriptor" else None)
    cam = frame_cam(name="cam", folder=catalog.raw_dir)
    stage = SimMotor(name="stage", limits=(-5.0, 5.0), velocity=10.0, acceleration=100.0,
                     time_scale=0.001)
    (uid,) = RE(scan([cam], stage, -1.0, 1.0, 3))
    (descriptor,) = descriptors
    keys = descriptor["data_keys"]
    assert keys["stage"]["units"] == "mm"  # what the motor describes: the reference
    for runs in (open_broker(catalog).v2, catalog.client):
        run = runs[uid]
        ds = run["primary"].read()
        assert set(ds.data_vars) == set(keys)
        for name, key in keys.items():
            want = {"object": key["object_name"]}
            if key.get("units"):
                want["units_string"] = key["units"]
            assert ds[name].attrs == want, name
        # the tutorial's use of it: the device whose configuration applies to a column
        da = ds["cam_total"]
        assert da.attrs.get("object") == "cam"
        config = run["primary"].metadata["configuration"][da.attrs["object"]]
        assert config["data"]["cam_exposure"] == 0.01
    stage.destroy()
