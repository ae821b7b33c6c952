"""The one error model of the API.

Every failure a client can cause is a subclass of :class:`ApiError` with a
machine-readable ``code`` and an HTTP ``status``. Handlers turn them into
``{"error": {"code", "message"}}`` bodies (HTTP) or ``{"type": "error",
"code", "message"}`` messages (WebSocket). Library and engine failures are
translated once, at the engine boundary, so no exception text from a
library ever reaches a client. An error is never changed once raised: code
that needs another wording builds a new one (:meth:`ApiError.reworded`).

The tree::

    ApiError
    ├── BadRequest (400)              ├── NotFound (404)
    │   ├── InvalidJson               │   ├── VoiceNotFound
    │   └── UnknownAction             │   ├── UnknownEngine
    ├── Unauthorized (401)            │   └── LexiconEntryNotFound
    ├── Forbidden (403)               ├── Conflict (409)
    ├── ContextIdle (408)             │   ├── VoiceExists
    ├── TooLarge (413)                │   ├── BuiltinVoice
    │   ├── TextTooLong               │   └── LexiconFull
    │   └── BodyTooLarge              ├── QueueFull (429)
    └── InvalidParameter (422)        ├── Unavailable (503)
        ├── EmptyText                 │   ├── EngineUnavailable
        ├── VoiceNotSupported         │   │   └── EngineLoadError
        ├── InvalidAudio              │   ├── Overloaded
        ├── AudioDuration             │   ├── ShuttingDown
        ├── LexiconEntryInvalid       │   ├── StoreReadOnly
        └── LexiconImportInvalid      │   ├── TooManyConnections
                                      │   └── SynthesisFailed
                                      │       └── EngineTimeout
                                      └── InsufficientStorage (507)
"""

from __future__ import annotations

from typing import Any, ClassVar


class ApiError(Exception):
    """Base of all errors that are reported to a client."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body.update(self.details)
        return body

    def reworded(self, message: str, **details: Any) -> ApiError:
        """A new error of the same class with ``message`` and these details (the others kept)."""
        return type(self)(message, **{**self.details, **details})


def error_for_code(code: str, message: str, **details: Any) -> ApiError:
    """An error of the class that owns ``code`` (the most general one), or :class:`SynthesisFailed`.

    In-band stream errors carry only their code; a REST answer made from
    one needs the status of the class that code belongs to.
    """
    pending: list[type[ApiError]] = [ApiError]
    while pending:  # breadth first: a base class wins over a subclass that shares its code
        cls = pending.pop(0)
        if cls.code == code:
            return cls(message, **details)
        pending.extend(cls.__subclasses__())
    return SynthesisFailed(message, **details)


# -- 400 ---------------------------------------------------------------------------------------
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


# -- 401 / 403 -----------------------------------------------------------------------------------
class Unauthorized(ApiError):
    """Raised when a key is needed and none (or an unknown one) was given."""

    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    """Raised when a valid key lacks the admin right a route needs."""

    status = 403
    code = "forbidden"


# -- 404 -----------------------------------------------------------------------------------------
class NotFound(ApiError):
    """Raised for a route, model or other named thing that does not exist."""

    status = 404
    code = "not_found"


class VoiceNotFound(NotFound):
    """Raised when ``voice_id`` names no voice of the current engine."""

    code = "voice_not_found"


class UnknownEngine(NotFound):
    """Raised when a request names an engine that is not in the catalog."""

    code = "unknown_engine"


# -- 408 -----------------------------------------------------------------------------------------
class ContextIdle(ApiError):
    """Raised when a text-in context waited too long for text, flush or end."""

    status = 408
    code = "context_idle"


# -- 409 -----------------------------------------------------------------------------------------
class Conflict(ApiError):
    """Raised when a change clashes with what is stored."""

    status = 409
    code = "conflict"


class VoiceExists(Conflict):
    """Raised when a custom voice with the same name already exists."""

    code = "voice_exists"


class BuiltinVoice(Conflict):
    """Raised when a client tries to delete a voice that comes with the engine."""

    code = "builtin_voice"


# -- 413 -----------------------------------------------------------------------------------------
class TooLarge(ApiError):
    """Raised when what was sent is over a configured size."""

    status = 413
    code = "too_large"


class TextTooLong(TooLarge):
    """Raised when the text exceeds the configured maximum length."""

    code = "text_too_long"


class BodyTooLarge(TooLarge):
    """Raised when a request body exceeds the configured size, counted while reading."""

    code = "body_too_large"


# -- 422 -----------------------------------------------------------------------------------------
class InvalidParameter(ApiError):
    """Raised when a field has the wrong type, is missing, or is out of range."""

    status = 422
    code = "invalid_parameter"


class EmptyText(InvalidParameter):
    """Raised when the text to speak is empty or only whitespace."""

    code = "empty_text"


class VoiceNotSupported(InvalidParameter):
    """Raised when a custom (cloned) voice is used with an engine that cannot clone."""

    code = "voice_not_supported"


class InvalidAudio(InvalidParameter):
    """Raised when an upload cannot be decoded as audio."""

    code = "invalid_audio"


class AudioDuration(InvalidParameter):
    """Raised when reference audio is too short or too long for cloning."""

    code = "audio_duration"


# -- 429 -----------------------------------------------------------------------------------------
class QueueFull(ApiError):
    """Raised when a WebSocket already has the maximum number of queued generations or contexts."""

    status = 429
    code = "queue_full"


# -- 503 -----------------------------------------------------------------------------------------
class Unavailable(ApiError):
    """Raised when the server cannot do the work now; a retry (elsewhere or later) may succeed."""

    status = 503
    code = "unavailable"


class EngineUnavailable(Unavailable):
    """Raised when no engine can serve (not loaded, shutting down, every instance stuck)."""

    code = "engine_unavailable"


class EngineLoadError(EngineUnavailable):
    """Raised when an engine cannot be built here (package, key or model missing, or its load failed).

    The message says what to do (a ``pip install`` line, a variable to set)
    and never carries the library's own exception text, which stays in the
    chained cause for the server log.
    """


class Overloaded(Unavailable):
    """Raised when the server cannot take another stream soon enough; carries ``retry_after``."""

    code = "overloaded"


class StoreBusy(Unavailable):
    """Raised when another replica holds a store lock for longer than a change may wait; carries ``retry_after``."""

    code = "store_busy"


class ShuttingDown(Unavailable):
    """Raised for work the server will not start (or finish) because it is stopping; carries ``retry_after``."""

    code = "shutting_down"


class StoreReadOnly(Unavailable):
    """Raised when the voice store refuses a write (read-only file system, no permission); carries ``retry_after``.

    Reads keep working; the next write tries again, so the store recovers
    as soon as it is writable, without a restart.
    """

    code = "store_read_only"


class SynthesisFailed(Unavailable):
    """Raised when the engine fails while synthesizing; the message is generic on purpose."""

    code = "synthesis_failed"


class EngineTimeout(SynthesisFailed):
    """Raised when a sentence takes longer than the per-sentence deadline."""

    code = "engine_timeout"


# -- 507 -----------------------------------------------------------------------------------------
class InsufficientStorage(ApiError):
    """Raised when the voice store's disk (or the quota on it) is full; nothing was written.

    The next write tries again, so the store recovers as soon as space is freed.
    """

    status = 507
    code = "insufficient_storage"


class TooManyConnections(Unavailable):
    """Raised (answered by the connection cap, tts_trio.server.connection_limit) when the server has
    ``max_connections`` HTTP requests and WebSockets open; carries ``retry_after``."""

    code = "too_many_connections"


class LexiconEntryInvalid(InvalidParameter):
    """Raised when a pronunciation lexicon entry breaks a rule (word, spoken form, phonemes, case_sensitive)."""

    code = "lexicon_entry_invalid"


class LexiconImportInvalid(InvalidParameter):
    """Raised when a TSV lexicon import has a bad line; carries its number (``line``); nothing was imported."""

    code = "lexicon_import_invalid"


class LexiconEntryNotFound(NotFound):
    """Raised when a delete names a word the pronunciation lexicon does not have."""

    code = "lexicon_entry_not_found"


class LexiconFull(Conflict):
    """Raised when a new entry would take the pronunciation lexicon over its limit; carries ``limit``."""

    code = "lexicon_full"
