"""The "coming from pyFAI" section of docs/reduction.md runs as printed, and the file it
writes is the one pyFAI reads."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _section_blocks() -> list[str]:
    text = (ROOT / "docs" / "reduction.md").read_text()
    section = text.split("## Azimuthal integration, coming from pyFAI", 1)[1]
    section = section.split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_pyfai_section_runs_as_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    blocks = _section_blocks()
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_pyfai"}
    for k, block in enumerate(blocks):
        exec(compile(block, f"docs/reduction.md (pyFAI block {k + 1})", "exec",
                     dont_inherit=True), namespace)
    # the binned detector, pyFAI's method name and the empty bins, as the comments say
    assert capsys.readouterr().out.splitlines() == ["(521, 490) (2, 2)", "bbox 0.0"]
    assert np.isnan(namespace["binned"].empty)  # type: ignore[attr-defined]
    cake = namespace["cake"]
    assert cake.intensity.shape == (360, 500)  # type: ignore[attr-defined]
    sigma = np.asarray(namespace["sigma"])
    assert sigma.shape == (1000,) and np.all(np.isfinite(sigma))
    pyFAI = pytest.importorskip("pyFAI")
    theirs = pyFAI.load(str(tmp_path / "pilatus.poni"))
    assert type(theirs.detector).__name__ == "Pilatus1M"
    frame = namespace["frame"]
    want = theirs.integrate1d(frame, 1000)
    got = namespace["ai"].integrate1d(frame, 1000)  # type: ignore[attr-defined]
    has = want.count > 0
    assert np.allclose(got.intensity[has], want.intensity[has], rtol=1e-4)
    kw = dict(npt_rad=20, radial_range=(10, 12))
    want = theirs.integrate_radial(frame, 360, **kw)
    ring = np.asarray(namespace["ring"])
    assert ring.shape == (360,) and (ring > 0).sum() > 320  # (the gaps hide a few degrees)
    assert np.allclose(ring, want.intensity, rtol=1e-4)
    assert np.allclose(np.asarray(namespace["chi"]), want.radial, rtol=1e-9)
    binned = pyFAI.load(str(tmp_path / "binned.poni"))
    assert binned.detector.shape == (521, 490) and binned.detector.binning == (2, 2)
    small = namespace["small"]
    want = binned.integrate1d(small, 200, unit="2th_deg", radial_range=(0, 60),
                              method="csr",
                              mask=namespace["binned"].geometry.detector.mask.copy())
    wide = namespace["wide"]
    assert (want.count == 0).sum() > 10
    assert np.array_equal(wide.intensity[want.count == 0],  # type: ignore[attr-defined]
                          want.intensity[want.count == 0])
    assert np.allclose(wide.intensity[want.count > 0],  # type: ignore[attr-defined]
                       want.intensity[want.count > 0], rtol=1e-4)
