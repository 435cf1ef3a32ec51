"""``smeflow`` commands named in running text — inline code in README.md and docs/*.md,
double-backquoted in the docstrings and comments of benchmarks/ and the packages — use
sub-commands and options that exist. (Code blocks are parsed whole by
tests/docs/test_snippets.py; a phrase such as "as ``smeflow reduce --dask`` does" named
an option that never existed, and a reader copying it got argparse's error.)"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from sme.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         *sorted(p for pkg in ("benchmarks", "sme", "fpga", "geometry", "devices", "dataflow",
                               "plans", "analysis") for p in (ROOT / pkg).rglob("*.py"))]
SPAN = re.compile(r"(?<!`)(`{1,2})(smeflow\s[^`]*?)\1(?!`)")
"""An inline code span (one or two backquotes, across a line break too) that starts
with ``smeflow``."""


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def unknown_words(command: str, top: argparse.ArgumentParser) -> list[str]:
    """The options and sub-commands of ``command`` its parser does not know (``a|b``:
    each of the alternatives; upper-case words are placeholders)."""
    parser, unknown = top, []
    for word in command.split()[1:]:
        if word.endswith(":"):  # (a message: "smeflow COMMAND: error: ...")
            break
        if word in ("...", "…", "\\") or word.startswith(("<", "[", "$", "#")) \
                or re.fullmatch(r"[A-Z][A-Z_:|.]*", word):
            continue
        subs = _subcommands(parser)
        if word.startswith("-") and not re.fullmatch(r"-\d.*", word):
            for option in word.split("=", 1)[0].split("|"):
                if option not in parser._option_string_actions:
                    unknown.append(option)
        elif subs:  # (the first word that is not an option names the sub-command)
            names = word.split("|")
            unknown += [name for name in names if name not in subs]
            if unknown or len(names) > 1:
                break
            parser = subs[word]
    return unknown


def spans() -> list[tuple[str, str]]:
    found = []
    for path in TEXTS:
        for match in SPAN.finditer(path.read_text(encoding="utf-8")):
            found.append((f"{path.relative_to(ROOT)}: {' '.join(match.group(2).split())}",
                          match.group(2)))
    return found


SPANS = spans()


def test_there_are_inline_commands_to_check() -> None:
    assert len(SPANS) > 20


@pytest.mark.parametrize("command", [c for _, c in SPANS], ids=[w for w, _ in SPANS])
def test_an_inline_smeflow_command_uses_options_that_exist(command: str) -> None:
    assert unknown_words(command, build_parser()) == []


@pytest.mark.parametrize("command, unknown", [
    ("smeflow reduce --dask 3", ["--dask"]),
    ("smeflow reduce --scheduler local 3", []),
    ("smeflow catalog serve --no-such-option", ["--no-such-option"]),
    ("smeflow frobnicate --x", ["frobnicate"]),
    ("smeflow --debug sim mod:build --ticks 5", []),
])
def test_a_rotted_inline_command_is_caught(command: str, unknown: list[str]) -> None:
    assert unknown_words(command, build_parser()) == unknown
