"""Files written whole or not at all: a reader (or the next run after a crash or a full
disk) sees the old file or the complete new one, never a truncated one.

The content goes to a temporary file in the target's folder, which replaces the target
(``os.replace``, atomic on POSIX) only once it is completely written; on any error the
temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "write_text_atomic"]


@contextmanager
def atomic_write(path: str | os.PathLike[str], *, newline: str | None = None,
                 fsync: bool = False) -> Iterator[IO[str]]:
    """A text file (UTF-8) to write ``path``'s new content into; ``path`` is replaced when
    the block ends without an error. ``fsync``: the content reaches the disk before the
    replacement (for records that must survive a power cut)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str, *, fsync: bool = False) -> None:
    """Replace ``path``'s content with ``text`` atomically (see the module docstring)."""
    with atomic_write(path, fsync=fsync) as fh:
        fh.write(text)
