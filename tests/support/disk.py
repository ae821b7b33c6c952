"""A real small disk for tests of full and read-only stores (the ``disk`` fixture of tests/unit/voices mounts one)."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path


class Disk:
    """A mounted tmpfs of a few MiB that a test can fill, free and remount read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        """Write until not one more byte fits."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        chunk = 1 << 16
        try:
            while chunk:
                try:
                    os.write(fd, b"\x00" * chunk)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    chunk //= 2
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink()

    def remount(self, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True, capture_output=True)
