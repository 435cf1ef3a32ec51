"""Catalog folders and frame files whose names hold characters a URI treats specially
(``dataflow.file_uri``): a name a catalog's URIs can carry works end to end (frames
written, registered, read back), any other is refused before anything is written, with
one error naming the character. Review U5: ``#``, ``?`` and ``%41`` in a catalog folder
wrote tables outside it, failed with a raw ``FileNotFoundError``, or recorded runs
whose arrays could then not be read."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import plans as bp

from dataflow.catalog import Catalog, CatalogError
from dataflow.file_uri import uri_path_problem
from dataflow.hdf5 import FrameWriter, UnsafePathError
from dataflow.server import build_server_app
from dataflow.server_config import ServerConfigError
from devices.beamline import Beamline
from fpga.designs.params import ChainParams

WORKING = ["a b", "a\u00fcb", "\u8a66\u6599 1", "a;b", "a%b", "a&b=c", "a'b", "a[1],(2)",
           "50%", "a+b~c@d!"]
REFUSED = [("a#b", "'#'"), ("a?b", "'?'"), ("a%41b", "'%41'"), ("a%2fb", "'%2f'"),
           ("a\\b", "backslash"), ("a\nb", "control character")]


@pytest.mark.parametrize("name", WORKING)
def test_a_catalog_in_a_folder_of_any_such_name_records_and_reads_runs(
        tmp_path: Path, name: str, frame_cam: Any,
        make_test_frame: Any) -> None:
    """Frames written, registered and read back through the catalog; every file the
    catalog made is inside its folder."""
    folder = tmp_path / name
    with Catalog(folder) as catalog:
        RE = RunEngine({})
        catalog.subscribe(RE)
        cam = frame_cam(name="cam", folder=catalog.raw_dir)
        (uid,) = RE(bp.count([cam], 2))
        image = np.asarray(catalog.run(uid)["primary"]["cam_image"][1])
        np.testing.assert_array_equal(image, make_test_frame(1))
        stored = np.asarray(catalog.run(uid)["primary"]["cam_image"].read())
        assert stored.shape[0] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def beamline_scan(folder: Path) -> np.ndarray:
    """The review's reproduction: a catalog in ``folder``, a two-frame count of the
    simulated detector (firmware, frame file, catalog) and its second frame read back."""
    with Catalog(folder) as catalog:
        RE = RunEngine({})
        catalog.subscribe(RE)
        beamline = Beamline.create(catalog.raw_dir, params=ChainParams(64, 64, 16),
                                   backend="interp", time_scale=0.001)
        try:
            RE(bps.mv(beamline.shutter, "open"))
            (uid,) = RE(bp.count([beamline.det], 2))
            return np.asarray(catalog.run(uid)["primary"]["det_image"][1])
        finally:
            beamline.close()


@pytest.mark.parametrize(("name", "char"), [("a#b", "'#'"), ("a?b", "'?'"),
                                            ("a%41b", "'%41'")])
def test_the_reviews_folders_are_refused_at_open(tmp_path: Path, name: str,
                                                 char: str) -> None:
    """The folder is refused at ``Catalog(folder)`` naming the character; nothing is
    made, inside the folder or next to it."""
    with pytest.raises(CatalogError, match=f"catalog folder .*{re.escape(char)}"):
        beamline_scan(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_a_beamline_scan_in_a_folder_of_spaces_unicode_and_semicolons(
        tmp_path: Path) -> None:
    """A name that works: the detector's frames are recorded and read back."""
    folder = tmp_path / "scan 1; \u00e9chantillon"
    image = beamline_scan(folder)
    assert image.shape == (64, 64) and image.any()
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


@pytest.mark.parametrize(("name", "char"), REFUSED)
def test_every_other_folder_is_refused_naming_the_character(tmp_path: Path, name: str,
                                                            char: str) -> None:
    with pytest.raises(CatalogError, match=f"catalog folder .*{re.escape(char)}"):
        Catalog(tmp_path / name)
    readable = tmp_path / "ok" / name
    with pytest.raises(CatalogError, match=f"readable storage folder .*{re.escape(char)}"):
        Catalog(tmp_path / "ok", readable_storage=[readable])
    with pytest.raises(ServerConfigError, match=f"data folder .*{re.escape(char)}"):
        build_server_app(tmp_path / name, secrets.token_hex(16))
    assert list(tmp_path.iterdir()) == []


def test_a_readable_folder_or_file_named_with_a_semicolon_is_refused(tmp_path: Path) -> None:
    """``;`` in a URI's last segment starts its parameters (``x;y.h5`` reads as ``x``):
    refused in a file's or a readable folder's name, taken in a catalog folder's (whose
    URIs go on below it: ``.../a;b/catalog.db``)."""
    assert uri_path_problem(tmp_path / "a;b", last=False) is None
    with pytest.raises(CatalogError, match=r"readable storage folder .*';'"):
        Catalog(tmp_path / "c", readable_storage=[tmp_path / "x;y"])
    with pytest.raises(UnsafePathError, match=r"';' in its name 'f;1\.h5'"):
        FrameWriter(tmp_path, "f;1.h5", (4, 4))
    assert not (tmp_path / "c").exists() and not (tmp_path / "f;1.h5").exists()


@pytest.mark.parametrize(("name", "char"), REFUSED)
def test_a_frame_file_a_catalog_could_not_read_is_refused_before_it_is_made(
        tmp_path: Path, name: str, char: str) -> None:
    """A frame file's ``stream_resource`` names it by URI: a path that URI cannot carry
    would announce another file (or none)."""
    with pytest.raises(UnsafePathError, match=f"file .*{re.escape(char)}"):
        FrameWriter(tmp_path, f"{name}.h5", (4, 4))
    with pytest.raises(UnsafePathError, match=f"file .*{re.escape(char)}"):
        FrameWriter(tmp_path / name, "frames.h5", (4, 4))
    assert list(tmp_path.iterdir()) == []


def test_the_cli_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    """``smeflow catalog serve --data 'a#b'``: exit status non-zero, one line naming the
    character, no traceback, nothing created."""
    exe = shutil.which("smeflow", path=str(Path(sys.executable).parent))
    assert exe, "the smeflow console script is not installed in this environment"
    env = {**os.environ, "SMEFLOW_API_KEY": secrets.token_hex(16)}
    done = subprocess.run([exe, "catalog", "serve", "--data", str(tmp_path / "a#b")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "'#'" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert list(tmp_path.iterdir()) == []
