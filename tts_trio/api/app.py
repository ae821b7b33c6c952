"""The application factory: builds the shared state, registers routes, hooks and handlers.

Nothing here does work of its own. A reader looking for a behaviour
follows the blueprint names in :mod:`tts_trio.api.routes` and
:mod:`tts_trio.api.websocket`; errors are in :mod:`tts_trio.api.error_handlers`.
The Hypercorn fixes are not installed here but by the entry points
(:func:`tts_trio.server.hypercorn_fixes.install`), which are what serve.
"""

from __future__ import annotations

import logging
from typing import Any

from quart import request, websocket
from quart_trio import QuartTrio

from tts_trio.api import error_handlers
from tts_trio.api.dialects import cartesia, deepgram, elevenlabs
from tts_trio.api.routes import engines, generate, health, lexicon, openai, pages, sse, voices
from tts_trio.api.security import Cors, KeyRing, check_http, check_websocket
from tts_trio.api.state import STATE_KEY, AppState, state_of
from tts_trio.api.websocket import session as websocket_session
from tts_trio.observability import Metrics, new_request_id, request_id
from tts_trio.settings import Settings, cors_origins, load_keys
from tts_trio.synthesis.drain import Shutdown
from tts_trio.synthesis.service import TtsService
from tts_trio.voices.lexicon import Lexicon
from tts_trio.wyoming import listener as wyoming_listener

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> QuartTrio:
    """Build the app; the engine starts when the app starts serving."""
    settings = settings or Settings.load()
    app = QuartTrio("tts_trio")
    # Quart's own check (Content-Length only) is the outer bound; each route
    # counts bytes against its own limit (JSON bodies vs. voice uploads).
    app.config["MAX_CONTENT_LENGTH"] = max(settings.max_body_bytes, settings.max_upload_bytes)
    app.config["BODY_TIMEOUT"] = 30
    users, admins = load_keys(settings)
    state = AppState(
        settings=settings,
        shutdown=Shutdown(),
        metrics=Metrics(),
        keys=KeyRing.from_settings(users, admins),
        cors=Cors(cors_origins(settings)),
        lexicon=Lexicon(settings.voices_path),
    )
    app.extensions[STATE_KEY] = state

    for module in (
        health,
        generate,
        sse,
        websocket_session,
        engines,
        voices,
        lexicon,
        openai,
        elevenlabs,
        cartesia,
        deepgram,
        pages,
    ):
        app.register_blueprint(module.blueprint)
    error_handlers.register(app)

    @app.before_request
    async def guard_request() -> Any:
        request_id.set(new_request_id(request.headers.get("X-Request-Id")))
        preflight = state.cors.preflight()
        if preflight is not None:
            return preflight
        check_http(state.keys)
        return None

    @app.before_websocket
    async def guard_websocket() -> None:
        request_id.set(new_request_id(websocket.headers.get("X-Request-Id")))
        route = websocket.url_rule.rule if websocket.url_rule is not None else "unmatched"
        state.metrics.requests.labels(route, "WEBSOCKET", "101").inc()
        check_websocket(state.keys)

    @app.after_request
    async def finish_response(response: Any) -> Any:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        state.metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        response.headers["X-Request-Id"] = request_id.get()
        return state.cors.decorate(response)

    @app.before_serving
    async def open_service() -> None:
        state.service = await TtsService.open(
            settings, app.nursery, state.metrics, state.shutdown, lexicon=state.lexicon
        )  # type: ignore[attr-defined]
        log.info("engine %s ready with %d slots", state.service.engine.name, state.service.pool.statistics().total)
        await wyoming_listener.start(app)  # off unless --wyoming-port is given

    @app.after_serving
    async def close_service() -> None:
        await wyoming_listener.stop(app)
        service, state.service = state.service, None
        if service is not None:
            await service.aclose()

    return app


def begin_shutdown(app: QuartTrio, graceful_timeout: float) -> None:
    """Start draining ``app`` (see :mod:`tts_trio.synthesis.drain`); the server's shutdown trigger calls this."""
    state = state_of(app)
    if state is not None:
        state.shutdown.begin(graceful_timeout)
