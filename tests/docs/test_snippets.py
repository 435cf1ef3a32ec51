"""No snippet in the README or docs/ rots: every code block is checked against the code.

* ``python`` blocks compile; the README's complete examples also run (tests/sme/test_readme.py).
* Every ``smeflow ...`` command line in any block (``sh``, ``text`` or unlabeled; after a
  ``$ `` prompt, ``.venv/bin/``, environment assignments; continued with ``\\``) is parsed
  by smeflow's own argument parser: a sub-command or option that no longer exists, or a
  missing argument, fails here (argparse exits 2 with the reason).
"""

from __future__ import annotations

import re
import shlex
import textwrap
from pathlib import Path

import pytest

from sme.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


def blocks() -> list[tuple[str, int, str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for m in FENCE.finditer(text):
            line = text[: m.start()].count("\n") + 1
            found.append((doc.name, line, m.group(1), m.group(2)))
    return found


def smeflow_commands(body: str) -> list[list[str]]:
    """The argument lists of the ``smeflow`` command lines in a block."""
    joined = re.sub(r"\\\n\s*", " ", body)
    commands = []
    for raw in joined.splitlines():
        line = raw.strip().removeprefix("$ ")
        line = line.split(" #", 1)[0].strip().rstrip("&").strip()
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        while words and ENV.match(words[0]):
            words = words[1:]
        if words and words[0].endswith("smeflow") and words[0] in {"smeflow",
                                                                   ".venv/bin/smeflow"}:
            commands.append(words[1:])
    return commands


PYTHON = [(f"{d}:{n}", body) for d, n, lang, body in blocks() if lang == "python"]
COMMANDS = [(f"{d}:{n}", words) for d, n, lang, body in blocks() if lang != "python"
            for words in smeflow_commands(body)]


def test_the_docs_have_snippets_to_check() -> None:
    assert len(PYTHON) >= 8 and len(COMMANDS) >= 20


def test_a_rotted_command_line_is_caught(capsys: pytest.CaptureFixture[str]) -> None:
    (words,) = smeflow_commands("$ SMEFLOW_X=1 smeflow catalog show 3 \\\n    --no-such-option")
    assert words == ["catalog", "show", "3", "--no-such-option"]
    with pytest.raises(AssertionError, match="unrecognized arguments: --no-such-option"):
        test_smeflow_command_line_parses("doc.md:1", words, capsys)


@pytest.mark.parametrize(("where", "body"), PYTHON, ids=[w for w, _ in PYTHON])
def test_python_snippet_compiles(where: str, body: str) -> None:
    compile(textwrap.dedent(body), where, "exec")  # blocks inside list items are indented


@pytest.mark.parametrize(("where", "words"), COMMANDS,
                         ids=[f"{w}:{' '.join(c[:2])}" for w, c in COMMANDS])
def test_smeflow_command_line_parses(where: str, words: list[str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    try:
        parser.parse_args(words)
    except SystemExit as exc:
        err = capsys.readouterr().err.strip().splitlines()
        raise AssertionError(f"{where}: smeflow {' '.join(words)}: "
                             f"{err[-1] if err else exc}") from None
