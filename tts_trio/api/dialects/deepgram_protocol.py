"""Deepgram's text-to-speech protocol without the socket: query, messages and rules in, effects out.

Nothing here awaits or touches a socket, so every rule can be tested
message by message (tests/unit/api/dialects/). :mod:`.deepgram` is the I/O.

Deepgram's ``WS /v1/speak`` carries one ordered stream of binary audio per
socket. Text arrives in ``Speak`` messages; a ``Flush`` ends a *segment*:
all audio of the text so far, then ``{"type": "Flushed", "sequence_id"}``.
A ``Clear`` drops every segment not yet spoken and the one being spoken,
then ``{"type": "Cleared", "sequence_id"}``; a ``Close`` speaks what is
held and closes. Sentences are handed to a segment as soon as their end is
certain (our :class:`~tts_trio.synthesis.sentences.SentenceAssembler`), so
the first audio does not wait for the ``Flush``. ``sequence_id`` counts the
``Flush`` and ``Clear`` messages of the socket from 0, one counter for both,
so a client can match every answer to what it sent.

Problems with a message are answered with Deepgram's ``Warning`` (the
SDK's ``description`` and ``code``, and the older ``warn_code`` /
``warn_msg`` that some clients, LiveKit's plugin among them, log) and the
socket stays usable.

G.711 (``mulaw`` / ``alaw``) is encoded here from our 16-bit PCM: it is a
per-sample table lookup, needs no codec, and is what telephony stacks ask
Deepgram for.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from tts_trio.audio.formats import AudioFormat, streaming_wav_header
from tts_trio.audio.g711 import ALAW_TAG, MULAW_TAG, to_alaw, to_mulaw
from tts_trio.errors import ApiError, InvalidParameter, ShuttingDown
from tts_trio.synthesis.params import MAX_SPEED, MIN_SPEED, clean_text
from tts_trio.synthesis.sentences import SentenceAssembler

#: Segments (text between Flushes) one socket may have waiting or speaking at once.
MAX_SEGMENTS = 32

#: Deepgram encoding -> (our output format, G.711 law or None, default rate, allowed rates or None: any).
_ENCODINGS: dict[str, tuple[str, str | None, int, tuple[int, ...] | None]] = {
    "linear16": ("pcm", None, 24000, None),
    "mulaw": ("pcm", "mulaw", 8000, (8000, 16000)),
    "alaw": ("pcm", "alaw", 8000, (8000, 16000)),
    "mp3": ("mp3", None, 22050, (22050,)),
    "opus": ("opus", None, 48000, (48000,)),
    "flac": ("flac", None, 48000, (8000, 16000, 22050, 32000, 48000)),
    "aac": ("aac", None, 22050, (22050,)),
}
#: Encodings the WebSocket streams (Deepgram's own WebSocket offers only these).
WS_ENCODINGS = ("linear16", "mulaw", "alaw")
#: Containers each REST encoding allows; the first is the default (Deepgram's).
_CONTAINERS = {
    "linear16": ("wav", "none"),
    "mulaw": ("wav", "none"),
    "alaw": ("wav", "none"),
    "mp3": ("none",),
    "opus": ("ogg",),
    "flac": ("none",),
    "aac": ("none",),
}
#: Query parameters Deepgram's clients send that change nothing here.
_IGNORED = frozenset({"mip_opt_out", "bit_rate", "tag"})
_KNOWN = frozenset({"model", "encoding", "sample_rate", "container", "speed"})
_CONTENT_TYPES = {
    "linear16": "audio/l16",
    "mulaw": "audio/basic",
    "alaw": "audio/x-alaw-basic",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "aac": "audio/aac",
}
#: The model name reported when the client named none (Deepgram's default model).
DEFAULT_MODEL = "aura-asteria-en"


@attrs.frozen
class SpeakQuery:
    """A validated Deepgram query: what to say it with and how to encode it."""

    model: str
    encoding: str
    sample_rate: int
    #: ``wav``, ``ogg`` or ``none`` (REST only; the WebSocket is always ``none``).
    container: str
    speed: float

    @property
    def output_format(self) -> str:
        """Our encoder's format: G.711 starts from PCM, and linear16 in a WAV container is our ``wav``."""
        fmt = _ENCODINGS[self.encoding][0]
        return "wav" if fmt == "pcm" and self.law is None and self.container == "wav" else fmt

    @property
    def law(self) -> str | None:
        return _ENCODINGS[self.encoding][1]

    @property
    def content_type(self) -> str:
        if self.container == "wav":
            return "audio/wav"
        return _CONTENT_TYPES[self.encoding]

    def head(self) -> bytes:
        """What goes before the audio: a WAV header for G.711 in a WAV container (our encoder writes PCM's)."""
        if self.law is not None and self.container == "wav":
            return g711_wav_header(self.law, self.sample_rate)
        return b""


def _number(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise InvalidParameter(f"{name}: expected a number, got {value[:40]!r}", field=name) from None
    if number != number or number in (float("inf"), float("-inf")):
        raise InvalidParameter(f"{name}: expected a number, got {value[:40]!r}", field=name)
    return number


def parse_query(query: Mapping[str, str], *, rest: bool) -> SpeakQuery:
    """Validate Deepgram's query parameters; raises :class:`InvalidParameter` naming the parameter."""
    unknown = sorted(set(query) - _KNOWN - _IGNORED)
    if query.get("mip_opt_out", "false").lower() not in ("true", "false"):
        raise InvalidParameter("mip_opt_out: expected true or false", field="mip_opt_out")
    if "bit_rate" in query and not _number("bit_rate", query["bit_rate"]).is_integer():
        raise InvalidParameter("bit_rate: expected an integer", field="bit_rate")
    if "callback" in unknown or "callback_method" in unknown:
        raise InvalidParameter(
            "callback: this server answers in the response; callbacks are not supported", field="callback"
        )
    if unknown:
        raise InvalidParameter(f"unknown query parameter(s): {', '.join(unknown)[:200]}", field=unknown[0])
    encoding = query.get("encoding", "linear16")
    allowed = WS_ENCODINGS if not rest else tuple(_ENCODINGS)
    if encoding not in allowed:
        raise InvalidParameter(f"encoding: must be one of {', '.join(allowed)}", field="encoding")
    _, _, default_rate, rates = _ENCODINGS[encoding]
    if "sample_rate" in query:
        number = _number("sample_rate", query["sample_rate"])
        if not number.is_integer():
            raise InvalidParameter("sample_rate: must be a whole number of Hz", field="sample_rate")
        sample_rate = int(number)
        if rates is not None and sample_rate not in rates:
            listed = ", ".join(str(rate) for rate in rates)
            raise InvalidParameter(f"sample_rate: {encoding} supports {listed}", field="sample_rate")
        if not 8000 <= sample_rate <= 48000:
            raise InvalidParameter("sample_rate: must be between 8000 and 48000", field="sample_rate")
    else:
        sample_rate = default_rate
    containers = _CONTAINERS[encoding] if rest else ("none",)
    container = query.get("container", containers[0])
    if container not in containers:
        raise InvalidParameter(f"container: {encoding} allows {', '.join(containers)}", field="container")
    speed = _number("speed", query["speed"]) if "speed" in query else 1.0
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise InvalidParameter(f"speed: must be between {MIN_SPEED} and {MAX_SPEED}", field="speed")
    model = query.get("model", DEFAULT_MODEL)
    if not model or len(model) > 128:
        raise InvalidParameter("model: must be 1 to 128 characters", field="model")
    return SpeakQuery(model=model, encoding=encoding, sample_rate=sample_rate, container=container, speed=speed)


def voice_for_model(model: str, is_voice: Callable[[str], bool]) -> str:
    """Our voice for a Deepgram model: the voice of that id when there is one, else the default voice.

    Deepgram's model names (``aura-2-thalia-en``) name Deepgram's voices,
    which no local engine has; a client that only knows them still speaks,
    with the current engine's default voice.
    """
    return model if is_voice(model) else "default"


# -- G.711 ---------------------------------------------------------------------
def g711(law: str | None, pcm: bytes) -> bytes:
    """Our PCM in the requested law (unchanged for linear16)."""
    if law == "mulaw":
        return to_mulaw(pcm)
    if law == "alaw":
        return to_alaw(pcm)
    return pcm


def g711_wav_header(law: str, sample_rate: int) -> bytes:
    """A WAV header for an open-ended G.711 stream (8-bit mono samples)."""
    return streaming_wav_header(AudioFormat(sample_rate, 1, 1), MULAW_TAG if law == "mulaw" else ALAW_TAG)


# -- messages (client -> server) ---------------------------------------------
@attrs.frozen
class Speak:
    text: str


@attrs.frozen
class Flush:
    pass


@attrs.frozen
class Clear:
    pass


@attrs.frozen
class Close:
    pass


Message = Speak | Flush | Clear | Close


@attrs.frozen
class Problem(Exception):
    """A message that is refused with a ``Warning``; the socket stays usable."""

    code: str
    description: str


def warning(code: str, description: str) -> dict[str, Any]:
    """Deepgram's warning: the SDK's fields, plus the older names some clients read."""
    return {"type": "Warning", "description": description, "code": code, "warn_code": code, "warn_msg": description}


def problem_for(error: ApiError) -> Problem:
    """One of our errors as a Deepgram warning (code in Deepgram's upper case)."""
    return Problem(error.code.upper(), error.message)


def parse_message(message: str | bytes | None) -> Message:
    """One client message; raises :class:`Problem`."""
    if message is None or isinstance(message, bytes):
        raise Problem(
            "INVALID_MESSAGE",
            'binary messages are not accepted; send JSON text such as {"type": "Speak", "text": "Hello"}',
        )
    try:
        data = json.loads(message)
    except (json.JSONDecodeError, RecursionError):
        raise Problem("INVALID_JSON", "the message is not valid JSON") from None
    if not isinstance(data, dict):
        raise Problem("INVALID_MESSAGE", "a message must be a JSON object with a 'type'")
    kind = data.get("type")
    if kind == "Speak":
        text = data.get("text")
        if not isinstance(text, str):
            raise Problem("INVALID_TEXT", "Speak needs 'text', a string")
        try:
            return Speak(clean_text(text))
        except ApiError as error:
            raise Problem("INVALID_TEXT", error.message) from None
    if kind == "Flush":
        return Flush()
    if kind == "Clear":
        return Clear()
    if kind == "Close":
        return Close()
    shown = "no 'type'" if kind is None else f"unknown type {str(kind)[:40]!r}"
    raise Problem("UNKNOWN_MESSAGE_TYPE", f"{shown}; use Speak, Flush, Clear or Close")


# -- the rules -------------------------------------------------------------------
@attrs.define(eq=False)
class Segment:
    """The text between two Flushes, spoken in order after the segments before it."""

    number: int
    #: The ``Flushed`` to send after its last audio; None until flushed, and for the segment a Close ends.
    sequence_id: int | None = None


@attrs.frozen
class StartSegment:
    segment: Segment


@attrs.frozen
class Sentences:
    segment: Segment
    sentences: tuple[str, ...]


@attrs.frozen
class EndSegment:
    """No more text for the segment: it ends (with its ``Flushed``, if it has a sequence id) once spoken."""

    segment: Segment


@attrs.frozen
class CancelSegments:
    segments: tuple[Segment, ...]


@attrs.frozen
class SendMessage:
    payload: dict[str, Any]


@attrs.frozen
class CloseSocket:
    """Close the socket once every segment has been spoken."""


Effect = StartSegment | Sentences | EndSegment | CancelSegments | SendMessage | CloseSocket


class SpeakRules:
    """The rules of one socket: the segment being filled, the live segments, the sequence counter.

    ``check_open`` raises :class:`ShuttingDown` while the server drains.
    """

    def __init__(self, *, max_text_chars: int, max_sentence_chars: int, check_open: Callable[[], None]) -> None:
        self.max_text_chars = max_text_chars
        self.max_sentence_chars = max_sentence_chars
        self._check_open = check_open
        self._assembler = SentenceAssembler(max_chars=max_sentence_chars)
        self._current: Segment | None = None
        #: Characters received for the segment being filled (the text limit holds per segment).
        self._chars = 0
        self._sequence = 0
        self._numbers = 0
        #: Segments started and not yet ended by the I/O side (waiting or speaking).
        self.live: list[Segment] = []
        self.closing = False

    def busy(self) -> bool:
        return bool(self.live) or bool(self._assembler.pending.strip())

    def handle(self, message: Message) -> list[Effect]:
        """The effects of one message, in order; raises :class:`Problem` for a ``Warning``."""
        if self.closing:
            raise Problem("SOCKET_CLOSING", "Close was received; the socket closes once its audio is sent")
        if isinstance(message, Speak):
            return self._speak(message.text)
        if isinstance(message, Flush):
            return self._flush()
        if isinstance(message, Clear):
            return self._clear()
        return self._close()

    def _next_sequence(self) -> int:
        sequence, self._sequence = self._sequence, self._sequence + 1
        return sequence

    def _segment(self, effects: list[Effect]) -> Segment:
        """The segment being filled, started (and announced in ``effects``) if there is none."""
        if self._current is None:
            if len(self.live) >= MAX_SEGMENTS:
                raise Problem(
                    "TOO_MANY_SEGMENTS",
                    f"{MAX_SEGMENTS} flushed segments are still waiting to be spoken; wait for Flushed or send Clear",
                )
            self._numbers += 1
            self._current = Segment(self._numbers)
            self.live.append(self._current)
            effects.append(StartSegment(self._current))
        return self._current

    def _speak(self, text: str) -> list[Effect]:
        try:
            self._check_open()
        except ShuttingDown as error:
            raise problem_for(error) from None
        if self._chars + len(text) > self.max_text_chars:
            raise Problem(
                "TEXT_LENGTH_EXCEEDED",
                f"a segment may hold at most {self.max_text_chars} characters; this text was dropped; "
                "send Flush to start a new segment",
            )
        self._chars += len(text)
        sentences = tuple(self._assembler.feed(text))
        if not sentences:
            return []
        effects: list[Effect] = []
        try:
            segment = self._segment(effects)
        except Problem:
            self._assembler = SentenceAssembler(max_chars=self.max_sentence_chars)
            self._chars = 0
            raise
        effects.append(Sentences(segment, sentences))
        return effects

    def _end_current(self, effects: list[Effect], sequence_id: int | None) -> None:
        held = tuple(self._assembler.flush())
        self._chars = 0
        if self._current is None and not held and sequence_id is None:
            return  # a Close with nothing held: nothing to end
        segment = self._segment(effects)
        if held:
            effects.append(Sentences(segment, held))
        segment.sequence_id = sequence_id
        effects.append(EndSegment(segment))
        self._current = None

    def _flush(self) -> list[Effect]:
        effects: list[Effect] = []
        if self._current is None and len(self.live) >= MAX_SEGMENTS:
            self._segment(effects)  # raises the warning before a sequence id is used
        self._end_current(effects, self._next_sequence())
        return effects

    def _clear(self) -> list[Effect]:
        cleared = tuple(self.live)
        self.live.clear()
        self._current = None
        self._chars = 0
        self._assembler = SentenceAssembler(max_chars=self.max_sentence_chars)
        return [CancelSegments(cleared), SendMessage({"type": "Cleared", "sequence_id": self._next_sequence()})]

    def _close(self) -> list[Effect]:
        effects: list[Effect] = []
        # Too many segments: what is held is dropped, the socket still closes.
        with contextlib.suppress(Problem):
            self._end_current(effects, None)
        self.closing = True
        effects.append(CloseSocket())
        return effects

    def segment_ended(self, segment: Segment) -> None:
        """The I/O side is done with ``segment`` (spoken, failed or cancelled)."""
        if segment in self.live:
            self.live.remove(segment)


# -- the OpenAPI description (merged into /openapi.json by tts_trio.api.openapi) -------------
def _rates_schema(rates: tuple[int, ...] | None) -> dict[str, Any]:
    if rates is None:
        return {"type": "integer", "minimum": 8000, "maximum": 48000}
    return {"type": "integer", "enum": list(rates)}


def _query_schema(*, rest: bool) -> dict[str, Any]:
    """Deepgram's query as one object: each encoding has its own rates and containers (one branch each)."""
    encodings = tuple(_ENCODINGS) if rest else WS_ENCODINGS

    def branch(encoding: str) -> dict[str, Any]:
        properties: dict[str, Any] = {"sample_rate": _rates_schema(_ENCODINGS[encoding][3])}
        properties["container"] = {"enum": list(_CONTAINERS[encoding] if rest else ("none",))}
        return {"properties": {"encoding": {"const": encoding}, **properties}, "required": ["encoding"]}

    linear16 = branch("linear16")
    default = {
        "not": {"required": ["encoding"]},
        "properties": {k: v for k, v in linear16["properties"].items() if k != "encoding"},
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "model": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "description": "One of our voice ids, or any other name (a Deepgram model): the default voice",
            },
            "encoding": {"type": "string", "enum": list(encodings), "default": "linear16"},
            "sample_rate": {"type": "integer", "minimum": 8000, "maximum": 48000},
            "container": {"type": "string", "enum": ["none", "wav", "ogg"]},
            "speed": {"type": "number", "minimum": MIN_SPEED, "maximum": MAX_SPEED, "default": 1.0},
            "mip_opt_out": {"type": "boolean", "description": "Accepted and ignored"},
            "bit_rate": {"type": "integer", "description": "Accepted and ignored"},
            "tag": {"type": "string", "description": "Accepted and ignored"},
        },
        "anyOf": [default, *(branch(encoding) for encoding in encodings)],
    }


def openapi_paths(max_chars: int) -> dict[str, Any]:
    """``/v1/speak`` for the API description; see docs/deepgram.md."""
    error = {
        "type": "object",
        "required": ["err_code", "err_msg", "request_id"],
        "properties": {"err_code": {"type": "string"}, "err_msg": {"type": "string"}, "request_id": {"type": "string"}},
    }

    def errors(*statuses: int) -> dict[str, Any]:
        return {
            str(status): {"description": "Deepgram's error body", "content": {"application/json": {"schema": error}}}
            for status in statuses
        }

    def query(rest: bool) -> dict[str, Any]:
        return {
            "name": "query",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": True,
            "schema": _query_schema(rest=rest),
        }

    text = {"type": "string", "minLength": 1, "maxLength": max_chars, "pattern": r"[^\s\x00-\x1f\x7f]"}
    body = {"type": "object", "required": ["text"], "additionalProperties": False, "properties": {"text": text}}
    audio: dict[str, Any] = {content_type: {} for content_type in {"audio/wav", *_CONTENT_TYPES.values()}}
    return {
        "/v1/speak": {
            "post": {
                "summary": "Deepgram-compatible speech (streamed as it is synthesized); see docs/deepgram.md",
                "parameters": [query(True)],
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {"200": {"description": "Audio", "content": audio}, **errors(400, 413, 422, 503)},
            },
            "get": {
                "summary": "WebSocket: Deepgram's Speak / Flush / Clear / Close; see docs/deepgram.md",
                "parameters": [query(False)],
                "responses": {
                    "101": {"description": "Switching to the WebSocket protocol"},
                    "405": {"description": "A plain HTTP GET, not a WebSocket upgrade"},
                },
            },
        }
    }
