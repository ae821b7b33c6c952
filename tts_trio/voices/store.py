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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import attrs

from tts_trio.errors import VoiceExists, VoiceNotFound

log = logging.getLogger(__name__)

REFERENCE_RATE = 24000
_ID = re.compile(r"^v_[0-9a-f]{16}$")
_META = "voice.json"
_AUDIO = "reference.wav"
_CURRENT = ".current.json"
#: Staging entries older than this were left by a crash (a write takes well under a second).
STALE_SECONDS = 600.0


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


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class VoiceStore:
    """Custom voices in one directory; every method is blocking file I/O (call from a thread)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self) -> None:
        """Create the directory and clear what a crash may have left behind."""
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.glob(".tmp-*"):
            # Another process sharing the directory may be writing right now: only old ones are ours to clear.
            if time.time() - leftover.stat().st_mtime < STALE_SECONDS:
                continue
            log.warning("removing an unfinished write left by an earlier crash: %s", leftover.name)
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        for leftover in self.root.glob(".trash-*"):
            shutil.rmtree(leftover, ignore_errors=True)

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
        """Store a voice atomically; raise :class:`VoiceExists` for a taken name."""
        if any(voice.name.casefold() == name.casefold() for voice in self.list()):
            raise VoiceExists(f"a voice named {name!r} already exists; delete it first or choose another name")
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
        staging = self.root / f".tmp-{voice.id}"
        staging.mkdir()
        try:
            _fsync_write(staging / _AUDIO, wav)
            _fsync_write(staging / _META, json.dumps(attrs.asdict(voice), indent=2).encode())
            _fsync_dir(staging)
            self._commit(staging, self.root / voice.id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_dir(self.root)
        return voice

    def _commit(self, staging: Path, final: Path) -> None:
        """The one step that makes a voice visible (a separate method so tests can crash here)."""
        os.rename(staging, final)

    def delete(self, voice_id: str) -> StoredVoice:
        voice = self.get(voice_id)
        trash = self.root / f".trash-{voice.id}-{secrets.token_hex(4)}"
        try:
            os.rename(self.root / voice.id, trash)
        except FileNotFoundError:
            raise VoiceNotFound(f"no voice {voice_id!r}", field="voice_id") from None  # deleted by another process
        _fsync_dir(self.root)
        shutil.rmtree(trash, ignore_errors=True)
        if self.current() == voice.id:
            self.set_current(None)
        return voice

    def current(self) -> str | None:
        """The id set with ``POST /v1/voices/{id}/set``, or None for the engine's default."""
        try:
            data = json.loads((self.root / _CURRENT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        value = data.get("voice_id") if isinstance(data, dict) else None
        return value if isinstance(value, str) else None

    def set_current(self, voice_id: str | None) -> None:
        staging = self.root / f".tmp-current-{secrets.token_hex(4)}"
        _fsync_write(staging, json.dumps({"voice_id": voice_id}).encode())
        os.replace(staging, self.root / _CURRENT)
        _fsync_dir(self.root)
