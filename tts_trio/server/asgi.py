"""A module-level app for ``hypercorn -c hypercorn.toml tts_trio.server.asgi:app``.

Settings come from the environment (``TTS_ENGINE``, ``TTS_VOICES_PATH``, ...);
``tts-trio serve`` is the usual way to start the server.

Under the bare ``hypercorn`` command the app gets no signal of its own:
Hypercorn's parent process catches SIGTERM and tells its worker through a
shutdown trigger. Importing this module wraps that trigger so the app drains
(:mod:`tts_trio.synthesis.drain`) exactly as under ``tts-trio serve``; Hypercorn's
trio worker imports the app first and looks up ``worker_serve`` afterwards,
so the wrapper is in place in time. It also refuses ``-w N`` for N > 1, as
``tts-trio serve`` does.
"""

from __future__ import annotations

import sys
from typing import Any

import trio
from hypercorn.trio import run as hypercorn_run

from tts_trio.api.app import create_app
from tts_trio.server import hypercorn_fixes
from tts_trio.server.launch import check_one_worker, draining_trigger
from tts_trio.settings import SettingsError

hypercorn_fixes.install()
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
        if getattr(asgi_app, "app", None) is app:
            try:
                check_one_worker(config, "(hypercorn -w)")
            except SettingsError as error:
                print(f"tts-trio: {error}", file=sys.stderr, flush=True)
                raise SystemExit(2) from None  # Hypercorn then stops every worker and exits non-zero
            if shutdown_trigger is not None:
                shutdown_trigger = draining_trigger(app, shutdown_trigger, config.graceful_timeout)
        await original(asgi_app, config, sockets=sockets, shutdown_trigger=shutdown_trigger, task_status=task_status)

    setattr(worker_serve, _MARK, True)
    hypercorn_run.worker_serve = worker_serve  # type: ignore[assignment]


_drain_on_hypercorn_shutdown()
