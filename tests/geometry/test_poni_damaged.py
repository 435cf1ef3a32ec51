"""A ``.poni`` file as pyFAI writes it, then damaged — cut short at every byte, a byte
flipped, saved as UTF-16 or Latin-1, a folder or a symlink loop in its place: the
geometry read is the file's, or a :class:`PoniError` naming the file — never another
geometry. A file cut inside its last value (``Wavelength: 1.03`` of ``1.0332e-10``, or
``Rot3: 0.`` of ``0.03``) used to read as that value without a word. Cut after a whole
line, a version 3 file (``Parallax`` last) is refused as pyFAI complains of it; a 2.1 file
cut after ``Rot3`` is a file without a wavelength, as pyFAI reads it, and a q unit then
names the file."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from geometry import PoniError, PoniGeometry, read_poni

pyFAI = pytest.importorskip("pyFAI")
from pyFAI.integrator.azimuthal import AzimuthalIntegrator  # noqa: E402
from pyFAI.io.ponifile import PoniFile  # noqa: E402


def _pyfai_writes(version: float | None = None) -> bytes:
    """What pyFAI writes for a tilted Pilatus 1M (its own ``write``; its default version
    is 2.1, 3 adds a last line ``Parallax: False``)."""
    ai = AzimuthalIntegrator(detector="Pilatus1M", dist=0.1234567, poni1=0.05, poni2=0.06,
                             rot1=0.01, rot2=0.02, rot3=0.03, wavelength=1.0332e-10)
    poni = PoniFile(ai)
    if version is not None:
        poni.API_VERSION = version
    out = io.StringIO()
    poni.write(out)
    return out.getvalue().encode()


@pytest.fixture(scope="module")
def written() -> bytes:
    return _pyfai_writes()


def _key(g: PoniGeometry) -> tuple[object, ...]:
    return (g.dist, g.poni1, g.poni2, g.rot1, g.rot2, g.rot3, g.wavelength, g.shape,
            g.pixel1, g.pixel2)


def test_cut_anywhere_reads_the_file_or_fails_naming_it(written: bytes,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "cut.poni"
    path.write_bytes(written)
    whole = read_poni(path)
    assert whole.wavelength == 1.0332e-10 and whole.rot3 == 0.03
    line_ends = {i + 1 for i, b in enumerate(written) if b == ord("\n")}
    read = []
    for size in range(len(written)):
        path.write_bytes(written[:size])
        try:
            got = read_poni(path)
        except PoniError as exc:
            assert str(exc).startswith(str(path)), exc
            continue
        read.append(size)
        # only a cut right after a whole line reads, and then as the lines it kept
        # (the last, optional key gone: no wavelength, which refuses q units)
        assert size in line_ends, (size, written[:size][-30:], _key(got))
        assert _key(got) == (*_key(whole)[:6], None, *_key(whole)[7:])
    assert read == [len(written) - len(written.split(b"\n")[-2]) - 1]


def test_a_version_3_file_cut_after_a_whole_line_is_refused(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    """Cut after its Rot3 or its Wavelength line, a version 3 file has no Parallax, which
    pyFAI writes last: pyFAI logs an error and reads on (no wavelength, or the parallax
    unknown); smeflow refuses it, naming the file, the key and the last line it has (it
    read the file without its wavelength before)."""
    written = _pyfai_writes(3)
    lines = written.split(b"\n")
    assert lines[-3:] == [b"Wavelength: 1.0332e-10", b"Parallax: False", b""]
    path = tmp_path / "cut.poni"
    path.write_bytes(written)
    assert _key(read_poni(path))[6] == 1.0332e-10
    for kept in (len(lines) - 2, len(lines) - 3):  # without Parallax; without Wavelength too
        path.write_bytes(b"\n".join(lines[:kept]) + b"\n")
        caplog.clear()
        assert pyFAI.load(str(path)).dist == 0.1234567  # pyFAI reads it, logging an error
        assert "version 3 but contains no information about parallax" in caplog.text
        with pytest.raises(PoniError, match=f"^{path}: missing key\\(s\\) Parallax "
                           f".*cut short after line {kept}\\)$"):
            read_poni(path)


def test_q_units_name_the_file_cut_before_its_wavelength(written: bytes,
                                                         tmp_path: Path) -> None:
    """A 2.1 file cut after Rot3 reads without a wavelength, as pyFAI's does (the key is
    optional in every version); asked for q, pyFAI says 'wavelength is needed for q
    calculation', smeflow's integrator names the file and the line it lacks."""
    from analysis.azint import AzimuthalIntegrator as Ours

    path = tmp_path / "cut.poni"
    path.write_bytes(written[:written.index(b"Wavelength")])
    assert pyFAI.load(str(path)).wavelength is None
    with pytest.raises(ValueError, match="wavelength is needed"):
        pyFAI.load(str(path)).integrate1d(np.ones((1043, 981)), 10, unit="q_nm^-1")
    ours = Ours.load(path)
    assert ours.geometry.wavelength is None
    ours.integrate1d(np.ones(ours.geometry.shape), 10, unit="2th_deg")  # angles work
    with pytest.raises(ValueError, match=(
            f"^unit 'q_nm\\^-1' needs the wavelength, and the geometry has none \\({path} "
            "has no Wavelength line: pyFAI writes it after Rot3 when known, so a file cut "
            "short after that line reads so too\\)")):
        ours.integrate1d(np.ones(ours.geometry.shape), 10, unit="q_nm^-1")


def _flip(at: int) -> Callable[[bytes], bytes]:
    return lambda data: data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


DAMAGE: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "empty": (lambda d: b"", r": missing key\(s\) Distance"),
    "byte flipped in a value": (lambda d: d.replace(b"0.1234567", b"0.12\xcb4567"),
                                r":6: not UTF-8 text \(byte 0xcb\)"),
    "byte flipped in the header": (_flip(3), r":1: not UTF-8 text"),
    "UTF-16": (lambda d: d.decode().encode("utf-16"), r":1: not UTF-8 text \(byte 0xff\)"),
    "Latin-1 comment": (lambda d: d.replace(b"# Nota", "# Calibré".encode("latin-1")),
                        r":1: not UTF-8 text \(byte 0xe9\)"),
    "value lost its line end": (lambda d: d.rstrip(b"\n"),
                                r":12: the last line 'Wavelength: 1.0332e-10' does not end"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_bytes_fail_naming_file_and_line(written: bytes, tmp_path: Path,
                                                 case: str) -> None:
    damage, message = DAMAGE[case]
    path = tmp_path / "damaged.poni"
    path.write_bytes(damage(written))
    with pytest.raises(PoniError, match=f"^{path}{message}"):
        read_poni(path)


@pytest.mark.parametrize("kind", ["folder", "symlink loop", "missing"])
def test_no_file_in_its_place(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "geometry.poni"
    if kind == "folder":
        path.mkdir()
    elif kind == "symlink loop":
        path.symlink_to(path)
    reason = {"folder": "Is a directory", "symlink loop": "Too many levels of symbolic links",
              "missing": "No such file or directory"}[kind]
    with pytest.raises(PoniError, match=f"^{path}: cannot read .poni file \\({reason}\\)"):
        read_poni(path)


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["windows", "classic-mac"])
def test_other_line_endings_read_as_pyfai_reads_them(written: bytes, tmp_path: Path,
                                                     newline: str) -> None:
    """A file saved with Windows (CRLF) or classic Mac (CR) line breaks: pyFAI reads it
    with Python's universal newlines; a CR-only file used to read as one comment line
    and fail with "missing key(s) Distance, ...", keys that are all there."""
    unix = tmp_path / "unix.poni"
    unix.write_bytes(written)
    other = tmp_path / "other.poni"
    other.write_bytes(written.replace(b"\n", newline.encode()))
    ours = read_poni(other)
    assert _key(ours) == _key(read_poni(unix))
    theirs = pyFAI.load(str(other))
    assert (ours.dist, ours.rot3, ours.wavelength, ours.shape) == (
        theirs.dist, theirs.rot3, theirs.wavelength, theirs.detector.shape)
    cut = written.replace(b"\n", newline.encode())[:-len(newline) - 3]  # inside Wavelength
    other.write_bytes(cut)
    with pytest.raises(PoniError, match=rf"^{re.escape(str(other))}:\d+: the last line 'Wavelength"):
        read_poni(other)
