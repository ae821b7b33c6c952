"""Writes that survive a crash: the file's bytes, then its directory entry, on disk before a rename counts.

The voice store, its name claims and the lexicon all stage a file and
rename it into place; without these fsyncs a power cut could leave the
new name pointing at nothing.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and flush it to disk."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (best effort: some file systems refuse to open a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
