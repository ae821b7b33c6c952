"""The one error model of the API.

Every failure a client can cause is a subclass of :class:`ApiError` with a
machine-readable ``code`` and an HTTP ``status``. Handlers turn them into
``{"error": {"code", "message"}}`` bodies (HTTP) or ``{"type": "error",
"code", "message"}`` messages (WebSocket). Library and engine failures are
translated once, at the engine boundary, so no exception text from a
library ever reaches a client.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Base of all errors that are reported to a client."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body.update(self.details)
        return body


class BadRequest(ApiError):
    """Raised when a request cannot be parsed at all (not JSON, wrong shape)."""

    status = 400
    code = "bad_request"


class InvalidJson(BadRequest):
    """Raised when a body or WebSocket message is not valid JSON."""

    code = "invalid_json"


class UnknownAction(BadRequest):
    """Raised when a WebSocket message names an action the server does not know."""

    code = "unknown_action"


class InvalidParameter(ApiError):
    """Raised when a field has the wrong type, is missing, or is out of range."""

    status = 422
    code = "invalid_parameter"


class EmptyText(InvalidParameter):
    """Raised when the text to speak is empty or only whitespace."""

    code = "empty_text"


class TextTooLong(ApiError):
    """Raised when the text exceeds the configured maximum length."""

    status = 413
    code = "text_too_long"


class BodyTooLarge(ApiError):
    """Raised when a request body exceeds the configured size, counted while reading."""

    status = 413
    code = "body_too_large"


class NotFound(ApiError):
    """Raised for a route that does not exist."""

    status = 404
    code = "not_found"


class VoiceNotFound(NotFound):
    """Raised when ``voice_id`` names no voice of the current engine."""

    code = "voice_not_found"


class VoiceNotSupported(ApiError):
    """Raised when a custom (cloned) voice is used with an engine that cannot clone."""

    status = 422
    code = "voice_not_supported"


class MethodNotAllowed(ApiError):
    """Raised when a route exists but not for this HTTP method."""

    status = 405
    code = "method_not_allowed"


class QueueFull(ApiError):
    """Raised when a WebSocket already has the maximum number of queued generations."""

    status = 429
    code = "queue_full"


class EngineUnavailable(ApiError):
    """Raised when no engine can serve (not loaded, shutting down)."""

    status = 503
    code = "engine_unavailable"


class SynthesisFailed(ApiError):
    """Raised when the engine fails while synthesizing; the message is generic on purpose."""

    status = 503
    code = "synthesis_failed"


class EngineTimeout(SynthesisFailed):
    """Raised when a sentence takes longer than the per-sentence deadline."""

    code = "engine_timeout"
