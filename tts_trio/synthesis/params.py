"""Request parameters for every protocol, parsed and validated in one place.

JSON bodies and WebSocket messages are structured by a strict cattrs
converter (no silent ``"5"`` -> ``5`` or ``true`` -> ``1``, unknown keys are
an error naming them; an integral float such as ``9043.0`` is an integer, as
JSON Schema says); query strings are converted field by field first.
Every failure becomes an :class:`~tts_trio.errors.ApiError` that names the
field, so the same bad input gets the same answer on REST, SSE and
WebSocket.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ForbiddenExtraKeysError

from tts_trio.audio.encoding import FORMATS, MAX_RATE, MIN_RATE
from tts_trio.engines.phonemes import MARKS
from tts_trio.errors import BadRequest, EmptyText, InvalidParameter, TextTooLong
from tts_trio.strict import strict_converter

MIN_CHUNK_SIZE = 256
MAX_CHUNK_SIZE = 1 << 20
MAX_ID_CHARS = 128
MIN_SPEED = 0.25
MAX_SPEED = 4.0
#: Caption formats (tts_trio.synthesis.captions): SubRip and WebVTT.
CAPTION_FORMATS = ("srt", "vtt")


def clamp_speed(speed: float) -> float:
    """``speed`` within the range a request may ask for (an SSML fragment's speed is clamped, not refused)."""
    return max(MIN_SPEED, min(MAX_SPEED, speed))


#: Control characters other than tab and newline are spoken as a space, and so are the marks the server
#: uses for phonemes in a text (tts_trio.engines.phonemes): a client cannot mark phonemes itself.
_CONTROL = {code: " " for code in [*range(0, 9), *range(11, 32), 127, *map(ord, MARKS)]}


@attrs.frozen(kw_only=True)
class GenerateParams:
    """``POST /v1/tts/generate`` body."""

    text: str
    voice_id: str = "default"
    temperature: float = 0.7
    output_format: str = "wav"
    #: Output sample rate; the engine's own rate when not given.
    sample_rate: int | None = None
    #: Speaking rate, 1.0 is the engine's normal speed.
    speed: float = 1.0
    #: A resident engine by name (``TTS_ENGINES``); None: the current engine.
    engine: str | None = None


@attrs.frozen(kw_only=True)
class GenerateBodyParams(GenerateParams):
    """``POST /v1/tts/generate`` body."""

    #: Return JSON with the audio (base64) and word and sentence timings.
    timestamps: bool = False
    #: Add a ``captions`` document (``srt`` or ``vtt``) to that JSON; implies ``timestamps``.
    captions: str | None = None


@attrs.frozen(kw_only=True)
class SseParams(GenerateParams):
    """``GET /v1/tts/stream-sse`` query."""

    chunk_size: int = 4096
    #: Send a ``captions`` event (``srt`` or ``vtt`` cues) after each sentence's ``timings``.
    captions: str | None = None


@attrs.frozen(kw_only=True)
class WsGenerateParams(GenerateParams):
    """A WebSocket ``generate`` message (without its ``action``)."""

    chunk_size: int | None = None
    request_id: str | None = None
    #: Add ``captions`` (``srt`` or ``vtt`` cues) to each ``timings`` message.
    captions: str | None = None


@attrs.frozen(kw_only=True)
class ContextParams(GenerateParams):
    """Options of a WebSocket text-in context (given with its first ``append``)."""

    output_format: str = "pcm"
    #: Add ``captions`` (``srt`` or ``vtt`` cues) to each ``timings`` message.
    captions: str | None = None


P = TypeVar("P", bound=GenerateParams)


def parse_json_params(cls: type[P], data: Any, *, max_text_chars: int) -> P:
    """Structure and validate a decoded JSON object."""
    if not isinstance(data, dict):
        raise BadRequest("the request must be a JSON object")
    try:
        params = _converter.structure(data, cls)
    except cattrs.ClassValidationError as group:
        raise InvalidParameter(_describe(group)) from None
    return _validate(params, max_text_chars=max_text_chars)


def parse_query_params(cls: type[P], query: Mapping[str, str], *, max_text_chars: int) -> P:
    """Convert query-string values to the field types, then validate."""
    fields = {field.name: field for field in attrs.fields(cls)}
    data: dict[str, Any] = {}
    for name, value in query.items():
        field = fields.get(name)
        if field is None:
            raise InvalidParameter(f"unknown parameter {name!r}", field=name)
        data[name] = _from_query(name, value, field.type)
    return parse_json_params(cls, data, max_text_chars=max_text_chars)


def _from_query(name: str, value: str, field_type: Any) -> Any:
    kinds = str(field_type)
    if "bool" in kinds:
        if value.lower() in ("1", "true", "yes"):
            return True
        if value.lower() in ("0", "false", "no"):
            return False
        raise InvalidParameter(f"{name}: expected true or false, got {value[:40]!r}", field=name)
    try:
        if "int" in kinds:
            return _query_int(value)
        if "float" in kinds:
            return float(value)
    except ValueError:
        expected = "an integer" if "int" in kinds else "a number"
        raise InvalidParameter(f"{name}: expected {expected}, got {value[:40]!r}", field=name) from None
    return value


def _query_int(value: str) -> int:
    """An integer from a query string; ``9043.0`` counts, as it does in a JSON body (JSON Schema's rule)."""
    try:
        return int(value)
    except ValueError:
        number = float(value)
        if not number.is_integer():
            raise
        return int(number)


def clean_text(text: str) -> str:
    """Control characters become spaces; unpaired surrogates (not text at all) are refused."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParameter("text: contains characters that are not valid Unicode text", field="text") from None
    return text.translate(_CONTROL)


def with_text(params: P, text: str, *, max_text_chars: int) -> P:
    """``params`` for another text (an SSML document streamed into a context), checked as a request's text is."""
    return _validate(attrs.evolve(params, text=text), max_text_chars=max_text_chars)


def _validate(params: P, *, max_text_chars: int) -> P:
    text = clean_text(params.text).strip()
    if not text:
        raise EmptyText("text must contain something to say", field="text")
    if len(text) > max_text_chars:
        raise TextTooLong(
            f"text is {len(text)} characters; the limit is {max_text_chars}", field="text", limit=max_text_chars
        )
    if not 0.0 <= params.temperature <= 2.0:
        raise InvalidParameter("temperature: must be between 0 and 2", field="temperature")
    if params.output_format not in FORMATS:
        raise InvalidParameter(f"output_format: must be one of {', '.join(FORMATS)}", field="output_format")
    if params.sample_rate is not None and not MIN_RATE <= params.sample_rate <= MAX_RATE:
        raise InvalidParameter(f"sample_rate: must be between {MIN_RATE} and {MAX_RATE}", field="sample_rate")
    if not MIN_SPEED <= params.speed <= MAX_SPEED:
        raise InvalidParameter(f"speed: must be between {MIN_SPEED} and {MAX_SPEED}", field="speed")
    if not params.voice_id.strip() or len(params.voice_id) > MAX_ID_CHARS:
        raise InvalidParameter(f"voice_id: must be 1 to {MAX_ID_CHARS} characters", field="voice_id")
    chunk_size = getattr(params, "chunk_size", None)
    if chunk_size is not None and not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise InvalidParameter(f"chunk_size: must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE}", field="chunk_size")
    captions = getattr(params, "captions", None)
    if captions is not None and captions not in CAPTION_FORMATS:
        raise InvalidParameter(f"captions: must be one of {', '.join(CAPTION_FORMATS)}", field="captions")
    request_id = getattr(params, "request_id", None)
    if request_id is not None and len(request_id) > MAX_ID_CHARS:
        raise InvalidParameter(f"request_id: must be at most {MAX_ID_CHARS} characters", field="request_id")
    return attrs.evolve(params, text=text)


def _describe(group: cattrs.ClassValidationError) -> str:
    with_notes, others = group.group_exceptions()
    for exc, note in with_notes:
        if isinstance(exc, KeyError):
            return f"{note.name}: required field missing"
        return f"{note.name}: {exc}"
    for exc in others:
        if isinstance(exc, ForbiddenExtraKeysError):
            return f"unknown field(s): {', '.join(sorted(exc.extra_fields))}"
        return str(exc)
    return "invalid parameters"


_converter = strict_converter()
