"""The application factory: wires settings, the service, the routes and error handlers.

Nothing here does work of its own; a reader looking for a behaviour should
follow the blueprint names in ``tts_trio/routes``.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from quart import current_app, jsonify, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from tts_trio import containment, h2_flow_control, socket_sends
from tts_trio.errors import ApiError
from tts_trio.observability import Metrics, new_request_id, request_id
from tts_trio.security import Cors, KeyRing, check_http, check_websocket
from tts_trio.service import TtsService
from tts_trio.settings import Settings, cors_origins, load_keys
from tts_trio.shutdown import Shutdown

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    411: "length_required",
    413: "body_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    431: "headers_too_large",
}


def create_app(settings: Settings | None = None) -> QuartTrio:
    """Build the app; the engine starts when the app starts serving."""
    settings = settings or Settings.load()
    containment.install()  # one connection's failure must not end the server
    h2_flow_control.install()  # a slow HTTP/2 reader must slow its own stream
    socket_sends.install()  # a client that reads nothing cannot hold a connection (or the shutdown)
    app = QuartTrio(__name__)
    # Quart's own check (Content-Length only) is the outer bound; each route
    # counts bytes against its own limit (JSON bodies vs. voice uploads).
    app.config["MAX_CONTENT_LENGTH"] = max(settings.max_body_bytes, settings.max_upload_bytes)
    app.config["BODY_TIMEOUT"] = 30
    app.extensions["tts_settings"] = settings
    shutdown = Shutdown()
    app.extensions["tts_shutdown"] = shutdown

    from tts_trio.routes import engines, generate, health, openai, pages, sse, voices
    from tts_trio.routes import websocket as websocket_routes

    for module in (health, generate, sse, websocket_routes, engines, voices, openai, pages):
        app.register_blueprint(module.blueprint)

    metrics = Metrics()
    app.extensions["tts_metrics"] = metrics
    users, admins = load_keys(settings)
    keys = KeyRing.from_settings(users, admins)
    cors = Cors(cors_origins(settings))

    @app.before_request
    async def guard_request() -> Any:
        request_id.set(new_request_id(request.headers.get("X-Request-Id")))
        preflight = cors.preflight()
        if preflight is not None:
            return preflight
        check_http(keys)
        return None

    @app.before_websocket
    async def guard_websocket() -> None:
        request_id.set(new_request_id(websocket.headers.get("X-Request-Id")))
        metrics.requests.labels("/v1/tts/stream", "WEBSOCKET", "101").inc()
        check_websocket(keys)

    @app.after_request
    async def finish_response(response: Any) -> Any:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        response.headers["X-Request-Id"] = request_id.get()
        return cors.decorate(response)

    @app.before_serving
    async def open_service() -> None:
        app.extensions["tts"] = await TtsService.open(
            settings,
            app.nursery,  # type: ignore[attr-defined]
            metrics,
            shutdown,
        )
        log.info("engine %s ready with %d slots", settings.engine, app.extensions["tts"].pool.statistics().total)

    @app.after_serving
    async def close_service() -> None:
        service = app.extensions.pop("tts", None)
        if service is not None:
            await service.aclose()

    @app.errorhandler(ApiError)
    async def api_error(error: ApiError) -> Any:
        response = error_response(error.status, error.to_dict())
        if "retry_after" in error.details:
            response.headers["Retry-After"] = str(error.details["retry_after"])
        return response

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Any:
        status = error.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        message = error.description or error.name
        if status == 404:
            message = f"no route {request.method} {request.path}"
        elif status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        response = error_response(status, {"code": code, "message": message})
        if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    async def unexpected_error(error: Exception) -> Any:
        log.exception("unhandled error", exc_info=error)
        return error_response(500, {"code": "internal_error", "message": "internal server error"})

    return app


def error_response(status: int, body: dict[str, Any]) -> Any:
    response = jsonify({"error": body})
    response.status_code = status
    return response


def current_service() -> TtsService:
    """The service of the app handling the current request."""
    service = current_app.extensions.get("tts")
    if service is None:
        from tts_trio.errors import EngineUnavailable

        raise EngineUnavailable("the engine is not ready")
    return cast(TtsService, service)


def begin_shutdown(app: QuartTrio, graceful_timeout: float) -> None:
    """Start draining ``app`` (see :mod:`tts_trio.shutdown`); the server's shutdown trigger calls this."""
    shutdown: Shutdown = app.extensions["tts_shutdown"]
    shutdown.begin(graceful_timeout)


def current_settings() -> Settings:
    return cast(Settings, current_app.extensions["tts_settings"])
