"""Under the bare ``hypercorn`` command, drain on SIGTERM and refuse ``-w N``, as ``tts-trio serve`` does.

``tts-trio serve`` owns its signals and hands Hypercorn a shutdown trigger
that starts the app's drain (:mod:`tts_trio.synthesis.drain`), so open
streams end with a final event instead of being cut. Under
``hypercorn ... tts_trio.asgi:app`` the app gets no such notice: Hypercorn's
parent process catches SIGTERM and tells its worker through a multiprocess
event, polled by a trigger the worker builds for itself, and the ASGI
lifespan shutdown arrives only after the graceful timeout, when every
stream is already gone. Hypercorn has no hook for this, so :func:`apply`
wraps ``hypercorn.trio.run.worker_serve``: for a tts-trio app it wraps that
trigger in :func:`tts_trio.server.shutdown_trigger.draining_trigger`, and it refuses
several workers (engines, slots and the current engine live in one process).

It relies on ``trio_worker`` importing the app first and looking
``worker_serve`` up by its module-level name afterwards, which is why that
function is fingerprinted too. ``hypercorn.trio.serve`` (what ``tts-trio
serve`` and the tests use) holds its own reference to ``worker_serve`` and
is not affected.
"""

from __future__ import annotations

import sys
from typing import Any

import trio
from hypercorn.trio import run as hypercorn_run

from tts_trio.api.state import state_of
from tts_trio.server.hypercorn_fixes.guard import Fix, Target, replace
from tts_trio.server.shutdown_trigger import check_one_worker, draining_trigger
from tts_trio.settings import SettingsError

NAME = "worker_trigger"


def apply() -> None:
    """Wrap ``worker_serve`` once per process (idempotent)."""
    original = hypercorn_run.worker_serve

    async def worker_serve(
        asgi_app: Any,
        config: Any,
        *,
        sockets: Any = None,
        shutdown_trigger: Any = None,
        task_status: Any = trio.TASK_STATUS_IGNORED,
    ) -> None:
        app: Any = getattr(asgi_app, "app", None)  # Hypercorn's wrapper around the ASGI app
        if state_of(app) is not None:
            try:
                check_one_worker(config, "(hypercorn -w)")
            except SettingsError as error:
                print(f"tts-trio: {error}", file=sys.stderr, flush=True)
                raise SystemExit(2) from None  # Hypercorn then stops every worker and exits non-zero
            if shutdown_trigger is not None:
                shutdown_trigger = draining_trigger(app, shutdown_trigger, config.graceful_timeout)
        await original(asgi_app, config, sockets=sockets, shutdown_trigger=shutdown_trigger, task_status=task_status)

    replace(hypercorn_run, "worker_serve", worker_serve, NAME)


FIX = Fix(
    name=NAME,
    issue="none upstream: Hypercorn tells an app of SIGTERM only after the graceful timeout (lifespan shutdown)",
    written_for="0.18.0",
    replaces=(
        Target(
            "hypercorn.trio.run",
            "worker_serve",
            "8dc8347a9fc357ca334f8c3e4bcf0368176510a96d434f21a5eb4c9ec4103726",
        ),
    ),
    relies_on=(
        Target(
            "hypercorn.trio.run",
            "trio_worker",
            "93848f30a88b81756a00e7d37f2f2c76677701f9a61fdf69e9e76b0701a8fb42",
        ),
    ),
    apply=apply,
)
