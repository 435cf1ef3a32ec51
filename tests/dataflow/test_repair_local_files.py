"""Which files ``catalog repair`` looks at: every local file a run lists, also when the run
lists a file that is not local (the review of e881520: one such file made the whole list
empty, so a local file still open for write was not closed: "nothing to repair")."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dataflow.provenance.errors import ProvenanceError
from dataflow.provenance.verify import run_files
from dataflow.repair import _files


class _Array:
    def __init__(self, uris: list[str]) -> None:
        self._uris = uris

    def include_data_sources(self) -> _Array:
        return self

    def data_sources(self) -> list[Any]:
        return [SimpleNamespace(assets=[SimpleNamespace(data_uri=u) for u in self._uris])]


class _Stream(dict[str, Any]):
    def __init__(self, arrays: dict[str, list[str]]) -> None:
        super().__init__({key: _Array(uris) for key, uris in arrays.items()})
        self.metadata = {"data_keys": {key: {"external": "STREAM:", "dtype": "array"}
                                       for key in arrays}}


def _run(tmp_path: Path) -> dict[str, _Stream]:
    """A run node (as Tiled's client walks it) of one local and one remote frame file."""
    return {"primary": _Stream({"det_image": [(tmp_path / "det.h5").as_uri()]}),
            "baseline": _Stream({"cam_image": ["https://storage.example.org/cam.h5"]})}


def test_a_remote_file_does_not_hide_the_local_ones_from_repair(tmp_path: Path) -> None:
    run = _run(tmp_path)
    assert _files(run) == [tmp_path / "det.h5"]
    assert run_files(run, local_only=True) == {tmp_path / "det.h5": ["det_image"]}
    with pytest.raises(ProvenanceError, match="not a local file"):
        run_files(run)  # (verify: a file it cannot check is said, not skipped)
