"""Runs of ``bp.fly([DetectorFlyer])`` written the older way, for the tests of readers
that must keep reading catalogs recorded before the flyer announced its frames with
``stream_resource``/``stream_datum``.

:class:`LegacyFlyer` is ``devices.flyer.DetectorFlyer`` as it was before that change:
``describe_collect`` names its stream (``{stream: data keys}``, the image
``external="FILESTORE:"``), so bluesky collects it without a declared stream, and each
frame is announced by a ``resource`` (one per file, spec ``AD_HDF5_SWMR``) and a
``datum`` (``point_number``), whose id the frame's event holds.
``tests/dataflow/test_legacy_fly_runs.py`` checks its documents against those the older
code recorded (``tests/dataflow/data/legacy_fly_docs.json``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from devices.flyer import DetectorFlyer

SPEC = "AD_HDF5_SWMR"


class LegacyFlyer(DetectorFlyer):
    """``DetectorFlyer`` announcing its frames with ``resource``/``datum`` (see above)."""

    collect_stream = None  # type: ignore[assignment]  # (no stream to declare)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resources: dict[str, str] = {}  # file uri -> resource uid
        self._datum_ids: list[str] = []
        self._ids_paged = 0

    def _check_declared(self) -> None:
        """Nothing to declare: the older flyer's stream needs none."""

    def kickoff(self) -> Any:
        self._datum_ids, self._ids_paged = [], 0
        return super().kickoff()

    def describe_collect(self) -> dict[str, Any]:  # type: ignore[override]
        keys = super().describe_collect()
        image = dict(keys[self.det.image_key])
        image["external"] = "FILESTORE:"
        keys[self.det.image_key] = image
        return {self.stream: keys}

    def collect_asset_docs(self, index: int | None = None
                           ) -> Iterator[tuple[str, dict[str, Any]]]:
        for name, doc in list(super().collect_asset_docs()):
            if name == "stream_resource":
                uid = str(uuid.uuid4())
                self._resources[doc["uri"]] = uid
                path = doc["uri"].removeprefix("file://localhost")
                yield "resource", {
                    "uid": uid, "spec": SPEC, "root": "/", "resource_path": path.lstrip("/"),
                    "resource_kwargs": {"dataset": doc["parameters"]["dataset"]},
                    "path_semantics": "posix"}
            elif name == "stream_datum":
                writer = self.det.files.fly
                assert writer is not None and writer.stream_resource["uid"] == \
                    doc["stream_resource"]
                resource = self._resources[str(writer.stream_resource["uri"])]
                for i in range(doc["indices"]["start"], doc["indices"]["stop"]):
                    datum_id = f"{resource}/{i}"
                    self._datum_ids.append(datum_id)
                    yield "datum", {"datum_id": datum_id, "resource": resource,
                                    "datum_kwargs": {"point_number": i}}

    def collect_pages(self) -> Iterator[dict[str, Any]]:
        for page in super().collect_pages():
            n = len(next(iter(page["data"].values())))
            ids = self._datum_ids[self._ids_paged:self._ids_paged + n]
            self._ids_paged += n
            stamps = next(iter(page["timestamps"].values()))
            yield {"data": {**page["data"], self.det.image_key: ids},
                   "timestamps": {**page["timestamps"], self.det.image_key: stamps}}
