"""How failures become answers: JSON bodies for HTTP, never an exception's text.

Every handler here works in both contexts Quart dispatches errors in: an
HTTP request and a WebSocket handshake. A WebSocket to a path the server
does not serve is routed like any request and fails before it is accepted;
Quart then sends the handler's response as the handshake's HTTP answer, so
the handler must not touch ``request`` (there is none), only the context
that exists (:func:`_current_method_and_path`).
"""

from __future__ import annotations

import logging
from typing import Any

from quart import has_request_context, has_websocket_context, jsonify, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.routing import WebsocketMismatch

from tts_trio.errors import ApiError

log = logging.getLogger(__name__)

#: Our codes for the HTTP errors Quart and Werkzeug raise themselves.
HTTP_CODES = {
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


def error_response(status: int, body: dict[str, Any]) -> Any:
    response = jsonify({"error": body})
    response.status_code = status
    return response


def _current_method_and_path() -> tuple[str, str]:
    """The method and path of what failed: an HTTP request, or ``WEBSOCKET`` and its path."""
    if has_websocket_context():
        return "WEBSOCKET", websocket.path
    if has_request_context():
        return request.method, request.path
    return "-", "-"


async def api_error(error: ApiError) -> Any:
    response = error_response(error.status, error.to_dict())
    if "retry_after" in error.details:
        response.headers["Retry-After"] = str(error.details["retry_after"])
    return response


async def http_error(error: HTTPException) -> Any:
    status = error.code or 500
    method, path = _current_method_and_path()
    if method == "WEBSOCKET" and (status == 405 or isinstance(error, WebsocketMismatch)):
        # A handshake to a path that has HTTP routes only: for a WebSocket there is no route.
        status = 404
    code = HTTP_CODES.get(status, "http_error")
    message = error.description or error.name
    if status == 404:
        message = f"no route {method} {path}"
    elif status == 405:
        message = f"{method} is not allowed on {path}"
    elif isinstance(error, WebsocketMismatch):
        message = f"{path} is a WebSocket route; open it with a WebSocket client"
    response = error_response(status, {"code": code, "message": message})
    valid_methods = getattr(error, "valid_methods", None)
    if status == 405 and valid_methods:
        response.headers["Allow"] = ", ".join(valid_methods)
    return response


async def unexpected_error(error: Exception) -> Any:
    log.exception("unhandled error", exc_info=error)
    return error_response(500, {"code": "internal_error", "message": "internal server error"})


def register(app: QuartTrio) -> None:
    """Install the handlers on ``app`` (most specific first, as Quart looks them up by class)."""
    app.register_error_handler(ApiError, api_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)
