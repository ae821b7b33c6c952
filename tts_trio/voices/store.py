"""The voice store: custom voices on disk under ``TTS_VOICES_PATH``.

Layout: one directory per voice, named by a server-generated id
(``v_`` + 16 hex digits), holding ``reference.wav`` (mono, 16-bit,
:data:`REFERENCE_RATE` Hz) and ``voice.json`` (id, name, language, engine,
created, duration, sample rate, checksum). Nothing from a request ever
becomes part of a path.

Why it cannot lose or leak a file:

* A voice is written completely into a hidden ``.tmp-*`` directory and
  then renamed into place; rename is atomic, so a crash leaves either no
  voice or a whole one, never half of one. Leftover ``.tmp-*`` directories
  are removed at start-up.
* A delete renames the directory to a hidden ``.trash-*`` name first (the
  voice disappears atomically), then removes it.
* The current voice lives in ``.current.json``, replaced atomically
  (write, fsync, rename).
* The disk is the only truth: listings read it, so several server
  processes sharing the directory agree, and a corrupt entry is skipped
  with a warning instead of breaking the listing.
* Names are unique (casefolded, NFC) across all those processes too: a
  create claims its name in the hidden ``.names/`` directory, with an
  atomic rename and no lock, before the voice becomes visible, and a
  delete releases it after; see :mod:`tts_trio.voices.claims`. Of two
  replicas creating one name at once, exactly one succeeds.

A full or read-only store is an answer, not a crash: every write maps a
full disk or quota (``ENOSPC``, ``EDQUOT``) to :class:`InsufficientStorage`
(507) and a store it may not write (``EROFS``, ``EACCES``, ``EPERM``) to
:class:`StoreReadOnly` (503, with Retry-After), after removing what it had
staged, so a failed write leaves the store as it was. Nothing caches the
condition: every write simply tries, so the store recovers the moment
space or permission returns. :meth:`VoiceStore.probe` says, without
writing, whether a write could succeed now (``/ready`` and ``/health``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import attrs

from tts_trio.errors import ApiError, InsufficientStorage, StoreReadOnly, VoiceExists, VoiceNotFound
from tts_trio.voices.claims import NameClaims, name_key
from tts_trio.voices.durable import fsync_dir, fsync_write

log = logging.getLogger(__name__)

REFERENCE_RATE = 24000
_ID = re.compile(r"^v_[0-9a-f]{16}$")
_META = "voice.json"
_AUDIO = "reference.wav"
_CURRENT = ".current.json"
#: Staging entries older than this were left by a crash. A write takes well under a second: staging
#: is made only after the upload was read and checked, and its mtime moves with every file written
#: in it. A minute leaves room for a stalled network volume and for clock skew between hosts (NFS
#: sets the mtime by the server's clock), and a crashed create frees its name within a minute.
STALE_SECONDS = 60.0
#: errno values that mean the disk or the quota is full.
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: errno values that mean the store may not be written (a read-only mount, no permission).
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
#: Seconds a client is told to wait before retrying a write refused by a read-only store.
READ_ONLY_RETRY_AFTER = 30

StoreCondition = Literal["ok", "full", "read_only", "unavailable"]


@attrs.frozen
class StoredVoice:
    """A custom voice's metadata, as kept in ``voice.json``."""

    id: str
    name: str
    language: str
    engine: str
    created: str
    duration: float
    sample_rate: int
    checksum: str
    source_format: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "kind": "custom"}


def voice_bytes(max_seconds: float) -> int:
    """The most a voice takes on disk: the longest reference allowed as 16-bit mono, plus its metadata."""
    return int((max_seconds + 0.5) * REFERENCE_RATE) * 2 + 8192


@attrs.frozen
class StoreState:
    """What :meth:`VoiceStore.probe` found: whether a write could succeed now, and the space left."""

    #: ``ok``; ``full`` (less space than ``min_free_bytes``, or no inodes); ``read_only``
    #: (a read-only mount, or no write permission); ``unavailable`` (the directory cannot be examined).
    condition: StoreCondition
    free_bytes: int | None


def store_error(error: OSError, action: str) -> ApiError | None:
    """The answer for a write that failed with ``error``, or None when it is no storage condition.

    ``action`` completes "could not ..."; the message names no path (a
    client learns nothing about the server's disks).
    """
    if error.errno in FULL_ERRNOS:
        return InsufficientStorage(
            f"the voice store is full: could not {action}, and nothing was written; "
            "the operator must free space (or raise the quota), then retry"
        )
    if error.errno in READ_ONLY_ERRNOS:
        return StoreReadOnly(
            f"the voice store is read-only: could not {action}; voices can still be listed and used; "
            f"retry in {READ_ONLY_RETRY_AFTER} s",
            retry_after=READ_ONLY_RETRY_AFTER,
        )
    return None


@contextlib.contextmanager
def _writing(action: str) -> Iterator[None]:
    """Turn a full or read-only disk under the block into its answer (other errors pass unchanged)."""
    try:
        yield
    except OSError as error:
        answer = store_error(error, action)
        if answer is None:
            raise
        log.warning("voice store: could not %s: %s", action, os.strerror(error.errno or 0))
        raise answer from error


class VoiceStore:
    """Custom voices in one directory; every method is blocking file I/O (call from a thread)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        #: Staging and trash entries a failed write could not remove (the disk went read-only
        #: under it); each later write tries again, and :meth:`open` clears them too.
        self._leftovers: set[Path] = set()
        self._leftovers_lock = threading.Lock()
        self.claims = NameClaims(root, STALE_SECONDS, self._discard)

    def probe(self, min_free_bytes: int = 0) -> StoreState:
        """Whether a write could succeed now, found without writing (cheap enough for every ``/ready``).

        ``full`` means less than ``min_free_bytes`` free (for the server: less
        than one voice with the longest reference allowed needs) or no inode
        left. Nothing is cached: each call looks again.
        """
        try:
            stats = os.statvfs(self.root)
        except OSError:
            return StoreState("unavailable", None)
        free = stats.f_bavail * stats.f_frsize
        if stats.f_flag & os.ST_RDONLY or not os.access(self.root, os.W_OK):
            return StoreState("read_only", free)
        # Some file systems (btrfs) report no inode counts at all: only a count of zero left means full.
        if free < max(min_free_bytes, 1) or (stats.f_files > 0 and stats.f_favail == 0):
            return StoreState("full", free)
        return StoreState("ok", free)

    def _discard(self, path: Path) -> None:
        """Remove a staging or trash entry; one that cannot be removed now is retried by later writes."""
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        with self._leftovers_lock:
            if os.path.lexists(path):
                if path not in self._leftovers:
                    log.warning("voice store: could not remove %s; later writes will try again", path.name)
                self._leftovers.add(path)
            else:
                self._leftovers.discard(path)

    def _retry_leftovers(self) -> None:
        with self._leftovers_lock:
            pending = list(self._leftovers)
        for path in pending:
            self._discard(path)

    def open(self) -> None:
        """Create the directory and clear what a crash may have left behind.

        A store that is full or read-only still opens (it is listed and
        used; writes are refused until it is writable again).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.glob(".tmp-*"):
            # Another process sharing the directory may be writing right now: only old ones are ours to clear.
            try:
                age = time.time() - leftover.lstat().st_mtime
            except OSError:
                continue  # removed meanwhile by the process that wrote it
            if age < STALE_SECONDS:
                continue
            log.warning("removing an unfinished write left by an earlier crash: %s", leftover.name)
            self._discard(leftover)
        for leftover in self.root.glob(".trash-*"):
            self._discard(leftover)
        try:
            self.claims.tidy([(voice.id, voice.name) for voice in self.list()])
        except OSError as error:  # a read-only or full store: names are claimed by the next create
            log.warning("voice store: could not tidy the name claims: %s", os.strerror(error.errno or 0))

    def list(self) -> list[StoredVoice]:
        voices = []
        for entry in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if not entry.is_dir() or not _ID.match(entry.name):
                continue
            try:
                meta = json.loads((entry / _META).read_text(encoding="utf-8"))
                voice = StoredVoice(**{field.name: meta[field.name] for field in attrs.fields(StoredVoice)})
                if voice.id != entry.name or not (entry / _AUDIO).is_file():
                    raise ValueError("id or reference audio does not match")
            except (OSError, ValueError, KeyError, TypeError) as error:
                log.warning("skipping corrupt voice entry %s: %s", entry.name, error)
                continue
            voices.append(voice)
        return voices

    def get(self, voice_id: str) -> StoredVoice:
        if _ID.match(voice_id):
            for voice in self.list():
                if voice.id == voice_id:
                    return voice
        raise VoiceNotFound(f"no voice {voice_id!r}", field="voice_id")

    def reference_path(self, voice_id: str) -> Path:
        """The reference audio of a stored voice (the id is checked, never trusted)."""
        voice = self.get(voice_id)
        return self.root / voice.id / _AUDIO

    def create(
        self, *, name: str, language: str, engine: str, wav: bytes, duration: float, source_format: str
    ) -> StoredVoice:
        """Store a voice atomically; raise :class:`VoiceExists` for a taken name, in any process sharing the store."""
        taken = VoiceExists(f"a voice named {name!r} already exists; delete it first or choose another name")
        key = name_key(name)
        if any(name_key(voice.name) == key for voice in self.list()):
            raise taken  # also a voice stored before name claims existed
        voice = StoredVoice(
            id="v_" + secrets.token_hex(8),
            name=name,
            language=language,
            engine=engine,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            duration=round(duration, 3),
            sample_rate=REFERENCE_RATE,
            checksum="sha256:" + hashlib.sha256(wav).hexdigest(),
            source_format=source_format,
        )
        self._retry_leftovers()
        staging = self.root / f".tmp-{voice.id}"
        final = self.root / voice.id
        with _writing("store the voice"):
            # The staging directory comes first: while it exists, the claim made next is live.
            staging.mkdir()
            try:
                if self.claims.claim(name, voice.id) is not None:
                    raise taken
                try:
                    fsync_write(staging / _AUDIO, wav)
                    fsync_write(staging / _META, json.dumps(attrs.asdict(voice), indent=2).encode())
                    fsync_dir(staging)
                    self._commit(staging, final)
                except BaseException:
                    self.claims.release(name, voice.id)
                    raise
            except BaseException:
                self._discard(staging)
                raise
        fsync_dir(self.root)
        if not self.claims.holds(name, voice.id):
            # Taken over while we wrote (only a write slower than STALE_SECONDS looks like a crash):
            # the other voice keeps the name, this one is withdrawn.
            log.warning("voice store: the name claim of %s was taken over during its write; withdrawing it", voice.id)
            self._remove(voice.id)
            raise taken
        return voice

    def _commit(self, staging: Path, final: Path) -> None:
        """The one step that makes a voice visible (a separate method so tests can crash here)."""
        os.rename(staging, final)

    def delete(self, voice_id: str) -> StoredVoice:
        voice = self.get(voice_id)
        self._retry_leftovers()
        with _writing("delete the voice"):
            if not self._remove(voice.id):
                raise VoiceNotFound(f"no voice {voice_id!r}", field="voice_id")  # deleted by another process
        # The voice is gone first, then its name is free (a crash in between leaves a stale claim).
        self.claims.release(voice.name, voice.id)
        if self._stored_current() == voice.id:
            try:
                self.set_current(None)
            except (InsufficientStorage, StoreReadOnly):
                # The voice is gone all the same: current() no longer names it, and the next set replaces the file.
                log.warning("voice store: %s was the current voice; the default applies", voice.id)
        return voice

    def _remove(self, voice_id: str) -> bool:
        """Make a voice disappear atomically (rename to trash), then remove it; False if it was gone."""
        trash = self.root / f".trash-{voice_id}-{secrets.token_hex(4)}"
        try:
            os.rename(self.root / voice_id, trash)
        except FileNotFoundError:
            return False
        fsync_dir(self.root)
        self._discard(trash)
        return True

    def _stored_current(self) -> str | None:
        try:
            data = json.loads((self.root / _CURRENT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        value = data.get("voice_id") if isinstance(data, dict) else None
        return value if isinstance(value, str) else None

    def current(self) -> str | None:
        """The id set with ``POST /v1/voices/{id}/set``, or None for the engine's default.

        A custom voice deleted since (by a delete that could not clear the
        setting, or by another process) is no longer the current one.
        """
        value = self._stored_current()
        if value is not None and _ID.match(value) and not (self.root / value).is_dir():
            return None
        return value

    def set_current(self, voice_id: str | None) -> None:
        self._retry_leftovers()
        staging = self.root / f".tmp-current-{secrets.token_hex(4)}"
        with _writing("set the current voice"):
            try:
                fsync_write(staging, json.dumps({"voice_id": voice_id}).encode())
                os.replace(staging, self.root / _CURRENT)
            except BaseException:
                self._discard(staging)
                raise
        fsync_dir(self.root)
