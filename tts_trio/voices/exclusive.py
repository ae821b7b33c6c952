"""A lock across every process and host sharing one directory, from ``mkdir`` and ``rename`` alone.

The lexicon's read-modify-write must not lose a change another replica
makes at the same moment. ``flock`` would do on one machine, but on shared
volumes (NFS, EFS, CephFS) it is missing, local to one client, or quietly
a no-op; ``rename`` of a directory is atomic on all of them. So:

* The lock is the directory ``<name>/`` holding one entry, ``<token>``,
  the holder's random token. To take it, a process makes
  ``.tmp-lock-<token>/<token>`` and renames that directory onto
  ``<name>``. A rename onto a directory that is not empty fails
  (``ENOTEMPTY``/``EEXIST``), so of several processes exactly one holds it;
  onto an absent or empty one it succeeds.
* To release it, the holder unlinks its own entry, then removes the
  directory (which fails harmlessly when someone renamed theirs onto the
  empty one in between).
* A holder that crashed leaves its entry behind. An entry older than
  ``stale`` seconds (a lexicon change takes milliseconds) is broken by
  whoever waits for it: it unlinks *that* entry only, so of two processes
  breaking one stale lock at once neither can remove the other's new one.
  The holder's entry is touched when it takes the lock, and its age is
  measured against the waiter's own freshly touched entry, so both times
  come from the same clock (on NFS the server's): clients' clocks may
  differ as they like.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_TAKEN = frozenset({errno.EEXIST, errno.ENOTEMPTY})


class LockTimeout(OSError):
    """The lock stayed taken by a live holder for longer than the wait allowed."""


@contextlib.contextmanager
def held(root: Path, name: str, *, stale: float = 30.0, wait: float = 10.0) -> Iterator[None]:
    """Hold the lock ``root/name`` for the block (blocking: call from a thread)."""
    token = secrets.token_hex(8)
    lock = root / name
    staging = root / f".tmp-lock-{token}"
    staging.mkdir()
    mine = staging / token
    try:
        mine.touch()
        deadline = time.monotonic() + wait
        pause = 0.002
        while True:
            try:
                os.rename(staging, lock)
                break
            except OSError as error:
                if error.errno not in _TAKEN:
                    raise
            # "Now" by the file system's clock (on NFS: the server's), as the holder's mtime is.
            os.utime(mine)
            _break_if_stale(lock, stale, now=mine.stat().st_mtime)
            if time.monotonic() >= deadline:
                raise LockTimeout(errno.EAGAIN, f"{name} is held by another process")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
    except BaseException:
        with contextlib.suppress(OSError):
            mine.unlink(missing_ok=True)
            staging.rmdir()
        raise
    held_token = lock / token
    try:
        os.utime(held_token)  # its age counts from now, not from when it began to wait
        yield
    finally:
        with contextlib.suppress(OSError):
            held_token.unlink()
        with contextlib.suppress(OSError):
            lock.rmdir()  # not empty: another process took it the moment we let go


def _break_if_stale(lock: Path, stale: float, *, now: float) -> None:
    try:
        entries = list(os.scandir(lock))
    except OSError:
        return  # released meanwhile
    for entry in entries:
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if age > stale:
            log.warning("breaking the lock %s left by a crashed holder (%.0f s old)", lock.name, age)
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
    # Emptied: gone, for file systems that refuse a rename onto an empty directory (a new holder's
    # rename may have landed already: then it is not empty and stays).
    with contextlib.suppress(OSError):
        lock.rmdir()
