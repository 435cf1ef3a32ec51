"""Progress bars for long operations, shown only to a person at a terminal.

``progress(items, desc=..., unit=...)`` wraps an iterable in a tqdm bar on stderr;
``stage(desc)`` shows one running step (elapsed time, no total) for work that cannot be
counted, such as a compilation. Both are silent when stderr is not a terminal (pipes,
log files, CI, the RE Manager's worker) or when ``$SMEFLOW_PROGRESS`` is ``0``; set it to
``1`` to force them on. Bars disappear when done (``leave=False``): what stays on the
screen is the command's own output.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["progress", "progress_enabled", "stage"]

T = TypeVar("T")
ENV_VAR = "SMEFLOW_PROGRESS"


def progress_enabled() -> bool:
    """Whether bars are drawn: ``$SMEFLOW_PROGRESS`` (0/1) when set, else stderr is a TTY."""
    forced = os.environ.get(ENV_VAR, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return sys.stderr.isatty()


def progress(items: Iterable[T], *, desc: str, unit: str = "it",
             total: int | None = None) -> Iterator[T]:
    """``items``, with a progress bar while they are consumed (see the module docstring)."""
    if not progress_enabled():
        yield from items
        return
    from tqdm import tqdm

    if total is None and isinstance(items, Sized):
        total = len(items)
    bar = tqdm(items, desc=desc, unit=unit, total=total, file=sys.stderr, leave=False,
               dynamic_ncols=True)
    try:
        yield from bar
    finally:
        bar.close()


@contextmanager
def stage(desc: str) -> Iterator[None]:
    """A one-step indicator (elapsed seconds) around a block that cannot be counted."""
    if not progress_enabled():
        yield
        return
    import threading

    from tqdm import tqdm

    bar = tqdm(total=1, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True,
               bar_format="{desc}: {elapsed}")
    done = threading.Event()

    def tick() -> None:
        while not done.wait(0.5):
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        bar.close()
