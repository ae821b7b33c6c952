"""A module-level app for ``hypercorn -c hypercorn.toml tts_trio.asgi:app``.

Settings come from the environment (``TTS_ENGINE``, ``TTS_VOICES_PATH``, ...);
``tts-trio serve`` is the usual way to start the server.

Under the bare ``hypercorn`` command the app gets no signal of its own:
Hypercorn's parent process catches SIGTERM and tells its worker through a
shutdown trigger. Importing this module wraps that trigger so the app drains
(:mod:`tts_trio.shutdown`) exactly as under ``tts-trio serve``; Hypercorn's
trio worker imports the app first and looks up ``worker_serve`` afterwards,
so the wrapper is in place in time.
"""

from __future__ import annotations

from typing import Any

import trio
from hypercorn.trio import run as hypercorn_run

from tts_trio.app import create_app
from tts_trio.server import draining_trigger

app = create_app()

_MARK = "_tts_trio_draining"


def _drain_on_hypercorn_shutdown() -> None:
    original = hypercorn_run.worker_serve
    if getattr(original, _MARK, False):
        return

    async def worker_serve(
        asgi_app: Any,
        config: Any,
        *,
        sockets: Any = None,
        shutdown_trigger: Any = None,
        task_status: Any = trio.TASK_STATUS_IGNORED,
    ) -> None:
        if shutdown_trigger is not None and getattr(asgi_app, "app", None) is app:
            shutdown_trigger = draining_trigger(app, shutdown_trigger, config.graceful_timeout)
        await original(asgi_app, config, sockets=sockets, shutdown_trigger=shutdown_trigger, task_status=task_status)

    setattr(worker_serve, _MARK, True)
    hypercorn_run.worker_serve = worker_serve  # type: ignore[assignment]


_drain_on_hypercorn_shutdown()
