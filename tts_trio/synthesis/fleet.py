"""One engine for the whole fleet: follow the desired engine recorded on the shared store.

Replicas sharing a voice store (``TTS_VOICES_PATH``) act as one service:
``POST /v1/engines/switch`` on any of them loads the engine there and then
records it as the fleet's desired engine
(:mod:`tts_trio.voices.desired_engine`). Every replica looks at the record
every ``TTS_FLEET_POLL`` seconds (:func:`follow`) and, when it names a
switch this replica does not run yet, loads that engine while its old one
keeps serving, then makes it current, exactly as a local switch does
(:meth:`tts_trio.synthesis.engine_set.EngineSet.converge`).

A replica that cannot load it (a package or model missing on that node)
stays on its old engine, says so in ``/health`` and ``/ready``
(``fleet.status`` ``diverged`` and the error), and tries again every
:data:`RETRY_SECONDS`. A replica that starts while a switch is recorded
opens the recorded engine instead of ``TTS_ENGINE``; the recorded switch
is what the fleet was told last. ``TTS_FLEET_POLL=0`` keeps switches local
to the replica that was asked (and the record unread and unwritten).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import attrs
import trio

from tts_trio.errors import ApiError
from tts_trio.synthesis.drain import Shutdown
from tts_trio.voices.desired_engine import DesiredEngine, read_desired

log = logging.getLogger(__name__)

#: Seconds a replica waits before trying again to load a desired engine that failed to load.
RETRY_SECONDS = 30.0

FleetStatus = Literal["converged", "converging", "diverged", "off"]


@attrs.define
class Fleet:
    """What this replica knows of the fleet's desired engine, and whether it runs it."""

    root: Path
    #: Seconds between looks at the record; 0: switches stay local.
    poll: float
    #: The record this replica runs (None: it runs what its settings say, and none was recorded yet).
    running: DesiredEngine | None = None
    #: The record as last read.
    desired: DesiredEngine | None = None
    #: A desired engine is being loaded now.
    loading: bool = False
    #: Why the desired engine could not be loaded here (``{"code", "message"}``), and when to try again.
    error: dict[str, str] | None = None
    failed_id: str | None = None
    retry_at: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.poll > 0

    def read(self) -> DesiredEngine | None:
        """Read the record now (blocking file I/O; call from a thread) without remembering it."""
        return read_desired(self.root) if self.enabled else None

    def seen(self, record: DesiredEngine | None) -> None:
        """Remember what a read found (from the event loop, so no switch happens in between)."""
        self.desired = record

    def wanted(self, now: float) -> DesiredEngine | None:
        """The last read record, when this replica should load it now."""
        desired = self.desired
        if desired is None or (self.running is not None and desired.id == self.running.id):
            return None
        if desired.id == self.failed_id and now < self.retry_at:
            return None
        return desired

    def runs(self, record: DesiredEngine | None) -> None:
        self.running = record
        if record is not None and (self.desired is None or self.desired.generation <= record.generation):
            self.desired = record
        self.error = None
        self.failed_id = None

    def failed(self, record: DesiredEngine, error: ApiError, now: float) -> None:
        self.error = {"code": error.code, "message": error.message}
        self.failed_id = record.id
        self.retry_at = now + RETRY_SECONDS

    @property
    def status(self) -> FleetStatus:
        if not self.enabled:
            return "off"
        if self.desired is None or (self.running is not None and self.desired.id == self.running.id):
            return "converged"
        if self.failed_id == self.desired.id and not self.loading:
            return "diverged"
        return "converging"

    def describe(self) -> dict[str, Any]:
        """The ``fleet`` object of ``/health`` (and of ``/ready`` when not converged)."""
        return {
            "status": self.status,
            "generation": self.running.generation if self.running is not None else 0,
            "desired": self.desired.summary() if self.desired is not None else None,
            "error": self.error,
        }


async def follow(shutdown: Shutdown, fleet: Fleet, converge: Callable[[], Awaitable[None]]) -> None:
    """Poll the record until the server shuts down, and ``converge()`` on each new switch it names."""
    while not shutdown.started.is_set():
        await trio.sleep(fleet.poll)
        fleet.seen(await trio.to_thread.run_sync(fleet.read))
        if fleet.wanted(trio.current_time()) is not None and not shutdown.started.is_set():
            await converge()
