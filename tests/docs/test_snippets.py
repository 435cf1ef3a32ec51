"""No snippet in the README or docs/ rots: every code block is checked against the code.

* Every ``python`` block of README.md and docs/*.md runs: the blocks of one document in
  document order in one namespace (a later block sees the names of the earlier ones, as a
  reader running them one after the other), in a temporary folder. A document states
  and sets up what its snippets need in its own first blocks; the fixture ``doc_<stem>``
  of tests/docs/conftest.py, when there is one, provides the namespace and closes what the
  snippets left open (threads, servers) after the run.
* A block that is not meant to run here says so in an HTML comment right before it
  (readers do not see it), with its reason:
  ``<!-- snippet: fragment: REASON -->`` (not a whole program; it must still compile), or
  ``<!-- snippet: run by tests/PATH.py -->`` (another test runs it, as printed: that file
  must exist and read this document). ``<!-- snippets: run by tests/PATH.py -->``
  anywhere in a document marks all its blocks so. Any other comment starting
  ``snippet:`` is an error, and so is an unmarked block that fails.
* Python code in a block labelled otherwise (``text``, none) is an error: it would escape.
* Every ``smeflow ...`` command line in any other block (``sh``, ``text`` or unlabeled;
  after a ``$ `` prompt, ``.venv/bin/``, environment assignments; continued with ``\\``)
  is parsed by smeflow's own argument parser: a sub-command or option that no longer
  exists, or a missing argument, fails here (argparse exits 2 with the reason).

A new document in docs/ is picked up by the glob below, without any list to edit.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sme.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
DOC_MARK = re.compile(r"<!--\s*snippets:\s*run by\s+(\S+)\s*-->")
MARK = re.compile(r"<!--\s*snippet:\s*((?:(?!-->).)*?)\s*-->\s*\Z", re.S)
ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")
PYTHONISH = re.compile(r"^(from [\w.]+ import \w|import [\w.]+\s*$|def \w+\(|class \w+[(:])", re.M)


@dataclass(frozen=True)
class Block:
    """One fenced code block of a document."""

    doc: str          # the document's path relative to the repository
    line: int         # the line of its opening fence
    lang: str
    body: str
    mark: str         # "" (run it), "fragment" or "run by"
    reason: str       # the fragment's reason, or the test file that runs it

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def parse(text: str, doc: str) -> list[Block]:
    """The fenced blocks of a markdown ``text``, with their ``snippet:`` marks.

    Raises ValueError naming the line of a malformed mark."""
    found = []
    end = 0
    whole = DOC_MARK.search(text)
    for m in FENCE.finditer(text):
        line = text[: m.start()].count("\n") + 1
        mark, reason = "", ""
        before = MARK.search(text, end, m.start())
        if before:
            words = before.group(1)
            kind = re.fullmatch(r"fragment:\s*(\S.*)|run by\s+(\S+)", words, re.S)
            if kind is None:
                raise ValueError(f"{doc}:{line}: unknown snippet mark <!-- snippet: {words} -->"
                                 " (use 'fragment: REASON' or 'run by tests/PATH.py')")
            mark = "fragment" if kind.group(1) else "run by"
            reason = kind.group(1) or kind.group(2)
        if whole and not mark:
            mark, reason = "run by", whole.group(1)
        found.append(Block(doc, line, m.group(1), m.group(2), mark, reason))
        end = m.end()
    return found


def blocks() -> list[Block]:
    found: list[Block] = []
    for doc in DOCS:
        found += parse(doc.read_text(encoding="utf-8"), str(doc.relative_to(ROOT)))
    return found


def run_blocks(doc_blocks: list[Block], namespace: dict[str, Any]) -> None:
    """Run the unmarked python blocks in order in ``namespace``; a failure names its block."""
    for block in doc_blocks:
        if block.lang != "python":
            continue
        code = compile(textwrap.dedent(block.body), block.where, "exec", dont_inherit=True)
        if block.mark:
            continue
        try:
            exec(code, namespace)
        except Exception as exc:
            raise AssertionError(f"{block.where}: the snippet fails: "
                                 f"{type(exc).__name__}: {exc}") from exc


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


BLOCKS = blocks()
PYTHON_DOCS = sorted({b.doc for b in BLOCKS if b.lang == "python"})
RUN_ELSEWHERE = [b for b in BLOCKS if b.lang == "python" and b.mark == "run by"]
COMMANDS = [(b.where, words) for b in BLOCKS if b.lang != "python"
            for words in smeflow_commands(b.body)]


def test_the_docs_have_snippets_to_check() -> None:
    assert len(PYTHON_DOCS) >= 5 and len(COMMANDS) >= 20
    running = [b for b in BLOCKS if b.lang == "python" and not b.mark]
    assert len(running) >= 8, "most python blocks run here, not only elsewhere"


@pytest.mark.parametrize("doc", PYTHON_DOCS)
def test_python_snippets_run_in_order(doc: str, request: pytest.FixtureRequest,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The document's python blocks run one after the other as a reader would run them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    try:  # the fixture's dict is the namespace itself: its teardown closes what the doc opened
        namespace = request.getfixturevalue("doc_" + re.sub(r"\W", "_", Path(doc).stem))
    except pytest.FixtureLookupError:
        namespace = {}                # the document needs nothing before its first block
    namespace.setdefault("__name__", f"snippets_{Path(doc).stem}")
    run_blocks([b for b in BLOCKS if b.doc == doc], namespace)


def test_no_python_hides_in_a_block_of_another_language() -> None:
    """Python code labelled ``text`` or left unlabelled would escape the runner."""
    hidden = [b.where for b in BLOCKS if b.lang != "python" and PYTHONISH.search(b.body)]
    assert not hidden, f"label these blocks ```python (and mark them if needed): {hidden}"
    assert PYTHONISH.search("x = 1\nfrom fpga.stimulus import random_stimulus\n")
    assert not PYTHONISH.search("smeflow reduce 3 --rows 100 128\nmake demo\n")


@pytest.mark.parametrize("block", RUN_ELSEWHERE, ids=[b.where for b in RUN_ELSEWHERE])
def test_a_block_run_elsewhere_names_a_test_that_reads_it(block: Block) -> None:
    test = ROOT / block.reason
    assert block.reason.startswith("tests/") and test.is_file(), (
        f"{block.where}: 'run by {block.reason}': no such test file")
    assert Path(block.doc).name in test.read_text(encoding="utf-8"), (
        f"{block.where}: {block.reason} does not read {block.doc}")


def test_an_unmarked_failing_block_fails_and_a_marked_one_is_left() -> None:
    text = ("```python\nx = 1\n```\n\n<!-- snippet: fragment: shows a call only -->\n"
            "```python\nundefined_name()\n```\n```python\nassert x == 2, 'x is 1'\n```\n")
    first, fragment, last = parse(text, "doc.md")
    assert (first.mark, fragment.mark, fragment.reason, last.mark) == (
        "", "fragment", "shows a call only", "")
    namespace: dict[str, Any] = {}
    with pytest.raises(AssertionError, match=r"doc\.md:9: the snippet fails: AssertionError: x is 1"):
        run_blocks([first, fragment, last], namespace)
    assert namespace["x"] == 1
    with pytest.raises(SyntaxError):  # a fragment must still be python
        run_blocks(parse("<!-- snippet: fragment: x -->\n```python\nx = = 1\n```\n", "d.md"), {})


def test_a_malformed_mark_is_an_error() -> None:
    for mark in ("<!-- snippet: skip -->", "<!-- snippet: fragment -->",
                 "<!-- snippet: fragment:   -->", "<!-- snippet: run by -->"):
        with pytest.raises(ValueError, match=r"d\.md:2: unknown snippet mark"):
            parse(f"{mark}\n```python\npass\n```\n", "d.md")
    (plain,) = parse("<!-- a comment -->\n```python\npass\n```\n", "d.md")
    assert plain.mark == ""
    whole = parse("```python\na\n```\n<!-- snippets: run by tests/t.py -->\n```python\nb\n```\n",
                  "d.md")
    assert [(b.mark, b.reason) for b in whole] == [("run by", "tests/t.py")] * 2
    (after_text,) = parse("<!-- snippet: fragment: x -->\nsome words\n```python\npass\n```\n",
                          "d.md")
    assert after_text.mark == "", "a mark applies only to the block right after it"


def test_a_rotted_command_line_is_caught(capsys: pytest.CaptureFixture[str]) -> None:
    (words,) = smeflow_commands("$ SMEFLOW_X=1 smeflow catalog show 3 \\\n    --no-such-option")
    assert words == ["catalog", "show", "3", "--no-such-option"]
    with pytest.raises(AssertionError, match="unrecognized arguments: --no-such-option"):
        test_smeflow_command_line_parses("doc.md:1", words, capsys)


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
