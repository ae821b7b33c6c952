"""Helpers for tests that run a real server: a Hypercorn server on a free loopback port, texts, waiting."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

from tts_trio.api.app import create_app
from tts_trio.api.state import state_of
from tts_trio.server.shutdown_trigger import draining_trigger
from tts_trio.settings import Settings
from tts_trio.synthesis.service import TtsService

PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog near the river bank. "
    "Dr. Smith arrived at 3.30 p.m. and greeted everyone in the hall. "
    "Is this the real life, or is it just fantasy? "
    "Caught in a landslide, there is no escape from reality. "
    "Open your eyes and look up to the skies and see. "
    "The weather today is sunny with a light breeze from the west. "
    "Please remember to bring your umbrella tomorrow, just in case. "
    "Our meeting starts at nine o'clock sharp in room four. "
    "She sells sea shells by the sea shore every single summer. "
    "Thank you for listening, and have a wonderful day!"
)


@attrs.frozen
class LiveServer:
    """A real Hypercorn server on a free loopback port."""

    app: QuartTrio
    base_url: str

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/v1/tts/stream"

    @property
    def service(self) -> TtsService:
        state = state_of(self.app)
        assert state is not None
        return state.require_service()


async def start_live_server(
    nursery: trio.Nursery, settings: Settings, graceful_timeout: float = 1.0, keep_alive_timeout: float = 5.0
) -> tuple[LiveServer, Callable[[], Awaitable[None]]]:
    app = create_app(settings)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.worker_class = "trio"
    config.graceful_timeout = graceful_timeout
    config.keep_alive_timeout = keep_alive_timeout
    config.websocket_max_message_size = settings.ws_max_message_bytes
    shutdown = trio.Event()
    finished = trio.Event()

    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            trigger = draining_trigger(app, shutdown.wait, config.graceful_timeout)
            await serve(app, config, shutdown_trigger=trigger, task_status=task_status)  # type: ignore[arg-type]
        finally:
            finished.set()

    binds = await nursery.start(run)
    server = LiveServer(app=app, base_url=binds[0])

    async def stop() -> None:
        shutdown.set()
        with trio.fail_after(20):
            await finished.wait()

    return server, stop


async def eventually(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``predicate()`` holds.

    Polling on purpose: the state belongs to the server (another task tree or
    process) and has no event a test could await without changing the code.
    """
    with trio.fail_after(within):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.01)
