"""The fleet's desired engine: which engine (and config) every replica on one store should run.

An engine switch on any replica is recorded here, in ``.engine.json`` in
the voice store's directory, which the replicas share; each replica polls
the file and loads what it names (:mod:`tts_trio.synthesis.fleet`). The
record is a pointer, written like the current voice: the whole JSON into a
hidden ``.tmp-engine-*`` file, fsynced, renamed over ``.engine.json``
(:func:`os.replace`), the directory fsynced. A reader sees the old record
or the new one, never half of one, on a local disk and on NFS alike; no
lock is taken (shared file systems do not all keep ``flock``).

Two switches at the same moment on two replicas: the later rename wins,
and every replica, the loser's too, converges on it. Each record has a
random ``id``, so replicas compare ids, not generations: two racing
switches may both write generation ``n + 1``, and still no replica
mistakes one for the other.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import attrs
import cattrs

from tts_trio.voices.durable import fsync_dir, fsync_write
from tts_trio.voices.store import store_error

log = logging.getLogger(__name__)

FILE_NAME = ".engine.json"
#: Larger records are not ours (a config is a handful of fields).
MAX_BYTES = 64 << 10

_converter = cattrs.Converter(forbid_extra_keys=False)


@attrs.frozen
class DesiredEngine:
    """One recorded switch."""

    #: Counts switches on this store: the previous record's plus one (1 for the first).
    generation: int
    #: Unique per record: what replicas compare to know whether they run it.
    id: str
    engine: str
    #: The engine's config as the client sent it; each replica applies its own defaults to what is missing.
    config: dict[str, Any]
    #: When (UTC, ISO 8601) and where (host name) it was recorded: for operators.
    recorded_at: str
    replica: str

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def summary(self) -> dict[str, Any]:
        """What ``/health`` shows of it."""
        return {"generation": self.generation, "engine": self.engine, "recorded_at": self.recorded_at}


def read_desired(root: Path) -> DesiredEngine | None:
    """The recorded engine, or None when nothing was recorded (or the record cannot be read: logged)."""
    path = root / FILE_NAME
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as error:
        log.warning("fleet: cannot read %s: %s", FILE_NAME, os.strerror(error.errno or 0))
        return None
    try:
        if len(data) > MAX_BYTES:
            raise ValueError("too large")
        record = _converter.structure(json.loads(data), DesiredEngine)
        if record.generation < 1 or not record.id or not record.engine:
            raise ValueError("generation, id or engine missing")
        return record
    except (ValueError, TypeError, cattrs.BaseValidationError) as error:
        log.warning("fleet: ignoring a malformed %s: %s", FILE_NAME, error)
        return None


def record_desired(root: Path, engine: str, config: dict[str, Any]) -> DesiredEngine:
    """Record ``engine`` with ``config`` as what the fleet should run; blocking file I/O.

    A full or read-only store raises its answer (507 or 503, see
    :func:`~tts_trio.voices.store.store_error`) and leaves the old record.
    """
    previous = read_desired(root)
    record = DesiredEngine(
        generation=(previous.generation if previous is not None else 0) + 1,
        id=uuid.uuid4().hex,
        engine=engine,
        config=config,
        recorded_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        replica=socket.gethostname(),
    )
    staging = root / f".tmp-engine-{secrets.token_hex(4)}"
    try:
        fsync_write(staging, json.dumps(record.to_dict(), sort_keys=True).encode())
        os.replace(staging, root / FILE_NAME)
    except OSError as error:
        with contextlib.suppress(OSError):  # a store gone read-only: VoiceStore.open clears .tmp-* later
            staging.unlink(missing_ok=True)
        answer = store_error(error, "record the engine switch for the other replicas")
        if answer is None:
            raise
        raise answer from error
    fsync_dir(root)
    return record
