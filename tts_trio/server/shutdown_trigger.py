"""What both ways of serving share: the trigger that starts the drain, and the one-worker rule.

``tts-trio serve`` (:mod:`tts_trio.server.launch`) and bare ``hypercorn``
(:mod:`tts_trio.server.hypercorn_fixes.worker_trigger`) both hand
Hypercorn a shutdown trigger made here and refuse several workers the same
way; keeping them below both is what lets the fixes package not import the
launch module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hypercorn.config import Config
from quart_trio import QuartTrio

from tts_trio.api.app import begin_shutdown
from tts_trio.settings import SettingsError

ShutdownTrigger = Callable[[], Awaitable[None]]


def check_one_worker(config: Config, where: str) -> None:
    """Refuse several worker processes: engines, slots and the current engine live in one process."""
    if config.workers > 1:
        raise SettingsError(
            f"invalid setting workers = {config.workers} {where}: run one process per machine or container "
            "and scale out with replicas behind a proxy (engine state lives in the process)"
        )


def draining_trigger(app: QuartTrio, wait: ShutdownTrigger, graceful_timeout: float) -> ShutdownTrigger:
    """A Hypercorn shutdown trigger that returns after ``wait()`` and starts the app's drain.

    Hypercorn stops accepting when the trigger returns and cancels what is
    still open ``graceful_timeout`` seconds later; the drain makes streams
    end with a final event before that.
    """

    async def trigger() -> None:
        await wait()
        begin_shutdown(app, graceful_timeout)

    return trigger
