"""The writer's ``.sha256`` sidecar is trusted only for the bytes it is the digest of.

A derived run's input digests and the provenance record take a raw file's digest from its
sidecar instead of hashing the file again, so a sidecar trusted for a file that changed
after it would record a digest of bytes the file no longer holds: a wrong answer without
an error. These tests change files the ways users and tools do (in place right after the
writer closed them, replaced by another file, their metadata) and put hostile things in
the sidecar's place.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import h5py
import numpy as np

from analysis.derived_run import file_inputs
from dataflow.hdf5 import FrameWriter, file_sha256
from dataflow.integrity import SIDECAR_MAX, read_sidecar, sidecar_path, write_sidecar


def _raw(folder: Path, name: str = "raw.h5", seed: int = 0) -> tuple[Path, str]:
    """A small closed frame file (hashed within one tick of the file-time clock) and the
    writer's digest."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = FrameWriter(folder, name, (4, 6))
    writer.append_many(np.random.default_rng(seed).integers(0, 1000, (3, 4, 6), np.uint16))
    return folder / name, writer.close()


def _recorded(path: Path) -> str:
    (item,) = file_inputs([f"file://localhost{path}"])
    digest: str = item["sha256"]
    return digest


def test_the_writers_sidecar_is_trusted_right_after_close(tmp_path: Path) -> None:
    """Small files are closed, hashed and given their sidecar within one step of the
    coarse file-time clock; the writer still leaves a sidecar the reader trusts."""
    for i in range(20):
        path, digest = _raw(tmp_path / str(i), seed=i)
        assert digest == file_sha256(path)
        assert read_sidecar(path) == digest
        assert sidecar_path(path).read_text() == f"{digest}  raw.h5\n"


def test_a_file_changed_right_after_close_is_hashed_again(tmp_path: Path) -> None:
    """A frame rewritten in place just after the writer closed the file (often within
    the same tick of the file-time clock as the sidecar: equal mtimes)."""
    for i in range(20):
        path, old = _raw(tmp_path / str(i), seed=i)
        new = _changed(path)
        assert new != old
        assert read_sidecar(path) is None
        assert _recorded(path) == new


def test_a_file_replaced_by_an_older_one_is_hashed_again(tmp_path: Path) -> None:
    """``mv`` keeps the moved file's mtime, older than the sidecar left beside its name."""
    replacement, other = _raw(tmp_path / "other", seed=1)
    time.sleep(0.02)
    path, old = _raw(tmp_path / "run", seed=2)
    os.replace(replacement, path)
    assert read_sidecar(path) is None
    assert _recorded(path) == other != old


def test_a_file_whose_times_were_set_back_is_hashed_again(tmp_path: Path) -> None:
    """Writing and then restoring the mtime (``touch -r``, ``rsync -t``) does not hide a
    change: the inode change time cannot be set back."""
    path, old = _raw(tmp_path)
    before = path.stat()
    with h5py.File(path, "r+") as f:
        f["entry/data/data"][0] = 1
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert read_sidecar(path) is None
    assert _recorded(path) == file_sha256(path) != old


def test_a_metadata_change_costs_a_hash_not_a_wrong_digest(tmp_path: Path) -> None:
    path, digest = _raw(tmp_path)
    path.chmod(0o444)
    assert read_sidecar(path) is None
    assert _recorded(path) == digest


def _changed(path: Path) -> str:
    with h5py.File(path, "r+") as f:
        f["entry/data/data"][1] = 7
    return file_sha256(path)


def test_touching_the_sidecar_after_a_change_does_not_revive_it(tmp_path: Path) -> None:
    """``chmod -R`` of the run folder after the file changed visits the sidecar after
    its file: its inode changes later than the file's, which must not make the stale
    digest trusted again."""
    path, old = _raw(tmp_path)
    new = _changed(path)
    time.sleep(0.01)
    for item in sorted(tmp_path.iterdir()):
        item.chmod(item.stat().st_mode | 0o020)
        time.sleep(0.01)
    assert read_sidecar(path) is None
    assert _recorded(path) == new != old


def test_a_copied_run_folder_records_the_digest_of_its_own_bytes(tmp_path: Path) -> None:
    """``cp -a`` / ``rsync -a`` of a run whose file changed after close (name order:
    the file, then its sidecar), and of an intact run: the copy is hashed."""
    for changed in (True, False):
        source = tmp_path / f"run{changed}"
        path, old = _raw(source)
        bytes_now = _changed(path) if changed else old
        copy = tmp_path / f"copy{changed}"
        copy.mkdir()
        for item in sorted(source.iterdir()):
            shutil.copy2(item, copy / item.name)
        assert read_sidecar(copy / "raw.h5") is None
        assert _recorded(copy / "raw.h5") == bytes_now


def test_a_sidecar_the_writer_did_not_record_is_not_trusted(tmp_path: Path) -> None:
    """A ``sha256sum raw.h5 > raw.h5.sha256`` made by hand says nothing of when."""
    path, digest = _raw(tmp_path)
    sidecar = sidecar_path(path)
    sidecar.unlink()
    sidecar.write_text(f"{digest}  raw.h5\n")
    assert read_sidecar(path) is None
    assert _recorded(path) == digest


def test_a_sidecar_naming_another_file_or_malformed_is_ignored(tmp_path: Path) -> None:
    path, digest = _raw(tmp_path)
    sidecar = sidecar_path(path)
    for text in (f"{digest}  other.h5\n", "not a digest\n", "", "\xff\xfe".encode("latin-1")
                 .decode("latin-1")):
        time.sleep(0.005)
        sidecar.write_text(text, encoding="latin-1")
        assert read_sidecar(path) is None, text
    time.sleep(0.005)
    sidecar.write_text(f"{digest}  raw.h5\n" + "#" * SIDECAR_MAX)
    assert read_sidecar(path) is None


def _returns_soon(path: Path) -> str | None:
    result: list[str | None] = []
    worker = threading.Thread(target=lambda: result.append(read_sidecar(path)), daemon=True)
    worker.start()
    worker.join(5.0)
    assert not worker.is_alive(), "read_sidecar blocked"
    return result[0]


def test_a_named_pipe_or_device_in_the_sidecars_place_is_not_read(tmp_path: Path) -> None:
    path, digest = _raw(tmp_path)
    sidecar = sidecar_path(path)
    sidecar.unlink()
    os.mkfifo(sidecar)
    assert _returns_soon(path) is None
    assert _recorded(path) == digest
    sidecar.unlink()
    sidecar.symlink_to("/dev/zero")
    assert _returns_soon(path) is None


def test_write_sidecar_refuses_a_file_that_changed_while_it_was_hashed(
        tmp_path: Path) -> None:
    path, digest = _raw(tmp_path)
    sidecar_path(path).unlink()
    taken = os.stat(path)
    with h5py.File(path, "r+") as f:  # (changed between the stat and the sidecar)
        f["entry/data/data"][2] = 3
    assert write_sidecar(path, digest, taken) is False
    assert not sidecar_path(path).exists()
    assert write_sidecar(path, file_sha256(path), os.stat(path)) is True
    assert read_sidecar(path) == file_sha256(path)
