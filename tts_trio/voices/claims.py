"""Voice names that stay unique across every process sharing one voice store.

A name is *claimed* before its voice becomes visible, in the hidden
``.names/`` directory of the store:

* ``.names/<key>/`` is the claim directory of one name; ``<key>`` is the
  sha256 hex digest of the name, casefolded and NFC-normalized (a name may
  hold any character: it never becomes a path).
* It holds one entry, ``<voice id>`` (a small JSON file naming the voice,
  for an operator), the voice that owns the name. An empty or absent claim
  directory means the name is free.

Claiming takes only atomic ``mkdir`` and ``rename``, no lock (``flock`` is
unreliable on NFS and other shared volumes): the claimant writes
``.names/.tmp-<id>/<id>`` and renames that directory onto
``.names/<key>``. A rename onto a directory that is not empty fails
(``ENOTEMPTY``/``EEXIST``), so of several processes claiming one name at
once exactly one wins, and each entry appears whole.

The claim of voice ``X`` is *live* while ``.tmp-X`` (its staging
directory, made before the claim and fresher than
:data:`~tts_trio.voices.store.STALE_SECONDS`) or the voice directory ``X``
exists, checked in that order so a rename from one to the other in between
is never missed. Otherwise it is *stale* (a crash between claim and commit,
a failed write, a delete that stopped before releasing), and stays stale:
ids are never reused, so ``X`` cannot come back. A stale entry is removed
by whoever meets it, and only that entry: unlinking ``.names/<key>/X``
never touches another voice's claim, so two processes reclaiming one stale
name at once cannot remove each other's new claim. A release (after a
delete or a failed create) likewise removes only its own entry.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

from tts_trio.voices.durable import fsync_dir, fsync_write

log = logging.getLogger(__name__)

#: The hidden directory of name claims inside the voice store.
CLAIMS_DIR = ".names"
_ID = re.compile(r"^v_[0-9a-f]{16}$")
_KEY = re.compile(r"^[0-9a-f]{64}$")
#: errno values of a rename onto a claim directory that is taken.
_TAKEN = frozenset({errno.EEXIST, errno.ENOTEMPTY})
#: Rounds of "claim, find a stale claim, remove it" before a create gives up (contention, not staleness).
ATTEMPTS = 8


def name_key(name: str) -> str:
    """The form two names are compared in: NFC-normalized and casefolded (``Straße`` is ``STRASSE``)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def claim_key(name: str) -> str:
    """The file name of a name's claim: safe for any name, any length, on any file system."""
    return hashlib.sha256(name_key(name).encode("utf-8", "surrogatepass")).hexdigest()


class NameClaims:
    """The claims of one store directory (blocking file I/O; the caller maps storage errors)."""

    def __init__(self, root: Path, stale_seconds: float, discard: Callable[[Path], None]) -> None:
        self.root = root
        self.dir = root / CLAIMS_DIR
        self.stale_seconds = stale_seconds
        #: Removes a leftover entry, remembering one it could not remove for a later retry.
        self._discard = discard

    # -- liveness ------------------------------------------------------------
    def voice_alive(self, voice_id: str) -> bool:
        """Whether voice ``voice_id`` exists or is being written (its claim then holds)."""
        staging = self.root / f".tmp-{voice_id}"
        try:
            if time.time() - staging.lstat().st_mtime < self.stale_seconds:
                return True  # being written; an older staging directory was left by a crash
        except FileNotFoundError:
            pass
        return (self.root / voice_id).is_dir()

    def owners(self, name: str) -> list[str]:
        """The voice ids in ``name``'s claim (normally one, or none)."""
        try:
            return sorted(entry for entry in os.listdir(self.dir / claim_key(name)) if _ID.match(entry))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _live_owner(self, key: str, exclude: str) -> str | None:
        """The live owner of claim ``key``; stale entries met on the way are removed."""
        claim = self.dir / key
        try:
            entries = os.listdir(claim)
        except (FileNotFoundError, NotADirectoryError):
            return None
        live = None
        for entry in entries:
            if entry == exclude or not _ID.match(entry):
                continue
            if self.voice_alive(entry):
                live = entry
                continue
            log.info("voice store: reclaiming a stale name claim of %s", entry)
            with contextlib.suppress(FileNotFoundError):  # another process reclaimed it first
                os.unlink(claim / entry)
        if live is None:
            # Empty now: remove it, so that also a file system that refuses a rename onto an
            # empty directory lets the next claim in. One not empty (a new claim) stays.
            with contextlib.suppress(OSError):
                os.rmdir(claim)
        return live

    # -- claim and release -----------------------------------------------------
    def claim(self, name: str, voice_id: str) -> str | None:
        """Claim ``name`` for ``voice_id``: None when it is ours, else the id of its live owner.

        The staging directory ``.tmp-<voice_id>`` must exist already (it is
        what keeps the claim live until the voice is committed).
        """
        key = claim_key(name)
        target = self.dir / key
        body = json.dumps({"id": voice_id, "name": name}).encode()
        for _ in range(ATTEMPTS):
            self.dir.mkdir(exist_ok=True)
            pending = self.dir / f".tmp-{voice_id}"
            try:
                pending.mkdir()
            except FileNotFoundError:
                continue  # .names was removed (emptied by a release) just now
            try:
                fsync_write(pending / voice_id, body)
                os.rename(pending, target)
            except OSError as error:
                self._discard(pending)
                if error.errno not in _TAKEN:
                    raise
            else:
                fsync_dir(self.dir)
                return None
            owner = self._live_owner(key, exclude=voice_id)
            if owner is not None:
                return owner
        # Every round found the claim taken, each time by a claim gone stale by the time it was
        # read: contention rather than a free name. Answer as for a taken name; a retry may win.
        return "unknown"

    def holds(self, name: str, voice_id: str) -> bool:
        return os.path.lexists(self.dir / claim_key(name) / voice_id)

    def release(self, name: str, voice_id: str) -> None:
        """Give up ``voice_id``'s claim of ``name`` (another voice's claim is never touched).

        Never raises: an entry that cannot be removed now (a read-only store)
        is stale all the same, and later writes try again to remove it.
        """
        claim = self.dir / claim_key(name)
        entry = claim / voice_id
        with contextlib.suppress(OSError):
            os.unlink(entry)
        if os.path.lexists(entry):
            self._discard(entry)  # not removable now (read-only): later writes retry
            return
        for empty in (claim, self.dir):
            with contextlib.suppress(OSError):  # not empty: another name or voice holds it
                os.rmdir(empty)

    # -- start-up --------------------------------------------------------------
    def tidy(self, voices: list[tuple[str, str]]) -> None:
        """Clear what crashes left and claim the names of voices stored before claims existed.

        ``voices`` is the store's listing as (id, name). Errors (a read-only
        store) are the caller's to ignore: claims are then made lazily.
        """
        if self.dir.is_dir():
            for entry in self.dir.iterdir():
                if entry.name.startswith(".tmp-"):
                    try:
                        age = time.time() - entry.lstat().st_mtime
                    except OSError:
                        continue
                    if age >= self.stale_seconds:
                        self._discard(entry)
                elif _KEY.match(entry.name) and entry.is_dir():
                    self._live_owner(entry.name, exclude="")
        for voice_id, name in voices:
            if self.holds(name, voice_id) or self.owners(name):
                continue  # claimed (or a duplicate from before claims: the first one keeps the name)
            # The voice itself keeps this claim live (no staging directory needed).
            owner = self.claim(name, voice_id)
            if owner is not None:
                log.warning("voice store: voices %s and %s share the name %r", owner, voice_id, name)
