"""Cartesia's TTS API without the I/O: requests parsed into our parameters, our stream framed as Cartesia's.

Cartesia's clients (its SDK, LiveKit's plugin) speak in ``model_id``,
``voice: {"mode": "id", "id": ...}`` (or a bare id), ``output_format:
{"container", "encoding", "sample_rate"}`` and ``transcript``. Here those
become :class:`~tts_trio.synthesis.params.GenerateParams` fields plus what
only Cartesia has: the sample encoding (``pcm_s16le``, ``pcm_f32le``,
``pcm_mulaw``, ``pcm_alaw``, made from our 16-bit PCM as it goes out) and
whether word timestamps were asked for.

The WebSocket is driven by the shared session (:mod:`tts_trio.api.websocket.session`):
:class:`CartesiaDialect` turns each Cartesia message into our context
commands (append, flush, end, stop) and frames the context's stream as
Cartesia's ``chunk``, ``timestamps``, ``done`` and ``error`` messages, so
the ordering, cancellation and back-pressure rules are the ones our own
socket has. Nothing here awaits.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from tts_trio.api.websocket.frames import CONTEXT_CHUNK_BYTES
from tts_trio.api.websocket.protocol import Append, Command, CommandError, Context, End, Flush, Stop, WsProtocol
from tts_trio.audio.encoding import EncodingChoice
from tts_trio.audio.formats import AudioFormat, WordTiming, streaming_wav_header
from tts_trio.audio.g711 import to_alaw, to_mulaw
from tts_trio.errors import ApiError, BadRequest, InvalidJson, InvalidParameter, error_for_code
from tts_trio.synthesis.pipeline import SentenceTimings, StreamError, StreamMetrics
from tts_trio.synthesis.service import TtsService

#: Cartesia's raw sample encodings: bytes per sample, and the WAV format tag of each.
ENCODINGS = {"pcm_s16le": (2, 1), "pcm_f32le": (4, 3), "pcm_mulaw": (1, 7), "pcm_alaw": (1, 6)}
CONTAINERS = ("raw", "wav", "mp3")
#: Cartesia's named speeds (the ``speed`` field); numbers go in ``generation_config.speed``.
NAMED_SPEEDS = {"slowest": 0.6, "slow": 0.8, "normal": 1.0, "fast": 1.25, "fastest": 1.5}
_TITLES = {400: "Bad request", 401: "Unauthorized", 404: "Not found", 408: "Timeout", 413: "Too large"}
_TITLES |= {422: "Invalid request", 429: "Too many requests", 503: "Unavailable"}


# -- sample encodings ---------------------------------------------------------------------------
def convert_samples(pcm: bytes, encoding: str) -> bytes:
    """Our 16-bit little-endian PCM in a Cartesia encoding (stateless per sample, so pieces convert alone)."""
    if encoding == "pcm_s16le":
        return pcm
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
    if encoding == "pcm_f32le":
        return (samples.astype("<f4") / 32768.0).tobytes()
    return to_mulaw(pcm) if encoding == "pcm_mulaw" else to_alaw(pcm)


def wav_header(encoding: str, sample_rate: int) -> bytes:
    """An open-ended WAV header (length unknown) for a Cartesia sample encoding."""
    width, tag = ENCODINGS[encoding]
    return streaming_wav_header(AudioFormat(sample_rate, width, 1), tag)


# -- requests ------------------------------------------------------------------------------------
@attrs.frozen
class CartesiaFormat:
    """A Cartesia ``output_format``: what our encoder makes, and the encoding and container sent."""

    choice_format: str
    sample_rate: int | None
    container: str
    encoding: str


def parse_output_format(value: Any, *, containers: Sequence[str] = CONTAINERS) -> CartesiaFormat:
    """``{"container", "encoding", "sample_rate", "bit_rate"}``; raises :class:`InvalidParameter` naming the field."""
    if value is None:
        return CartesiaFormat("pcm", None, "raw", "pcm_s16le")
    if not isinstance(value, dict):
        raise InvalidParameter("output_format: must be an object", field="output_format")
    container = value.get("container", "raw")
    if not isinstance(container, str) or container not in containers:
        raise InvalidParameter(
            f"output_format.container: must be one of {', '.join(containers)}", field="output_format"
        )
    rate = value.get("sample_rate")
    if rate is not None and (not isinstance(rate, int) or isinstance(rate, bool)):
        raise InvalidParameter("output_format.sample_rate: must be an integer", field="output_format")
    if container == "mp3":
        return CartesiaFormat("mp3", rate, "mp3", "mp3")  # bit_rate: the encoder's own
    encoding = value.get("encoding", "pcm_s16le")
    if not isinstance(encoding, str) or encoding not in ENCODINGS:
        raise InvalidParameter(f"output_format.encoding: must be one of {', '.join(ENCODINGS)}", field="output_format")
    return CartesiaFormat("pcm", rate, container, encoding)


def voice_id_of(voice: Any, service: TtsService) -> str:
    """Our voice for a Cartesia voice: its id when the engine knows it, else the current engine's default.

    Cartesia's own voice ids (UUIDs) and embeddings mean nothing here; a
    client that only knows them still speaks, with the default voice.
    """
    if isinstance(voice, dict):
        voice = voice.get("id")
    if not isinstance(voice, str) or not voice.strip() or len(voice) > 128:
        return "default"
    try:
        service.resolve_voice(voice)
    except ApiError:
        return "default"
    return voice


def speed_of(data: dict[str, Any]) -> float:
    """``generation_config.speed`` (a number), else ``speed`` (a name or a number), else 1."""
    config = data.get("generation_config")
    speed: Any = None
    if isinstance(config, dict):
        speed = config.get("speed")
    if speed is None:
        speed = data.get("speed")
    if speed is None:
        return 1.0
    if isinstance(speed, str):
        if speed not in NAMED_SPEEDS:
            raise InvalidParameter(f"speed: must be a number or one of {', '.join(NAMED_SPEEDS)}", field="speed")
        return NAMED_SPEEDS[speed]
    if not isinstance(speed, int | float) or isinstance(speed, bool):
        raise InvalidParameter("speed: must be a number", field="speed")
    return float(speed)


def generate_fields(data: dict[str, Any], fmt: CartesiaFormat, service: TtsService) -> dict[str, Any]:
    """The :class:`GenerateParams` fields (without ``text``) of a Cartesia request."""
    fields: dict[str, Any] = {
        "voice_id": voice_id_of(data.get("voice"), service),
        "output_format": fmt.choice_format,
        "speed": speed_of(data),
    }
    if fmt.sample_rate is not None:
        fields["sample_rate"] = fmt.sample_rate
    return fields


def cartesia_error(error: ApiError, context_id: str | None = None) -> dict[str, Any]:
    """Cartesia's error fields (``title``, ``message``, ``error_code``, ``status_code``) for one of ours."""
    payload: dict[str, Any] = {
        "type": "error",
        "done": True,
        "status_code": error.status,
        "title": _TITLES.get(error.status, "Error"),
        "message": error.message,
        "error_code": error.code,
    }
    if context_id is not None:
        payload["context_id"] = context_id
    return payload


def written_words(timings: SentenceTimings) -> tuple[WordTiming, ...]:
    """The sentence's words, then the punctuation written after its last word as one more (zero-length) word.

    The engine's words carry no punctuation, and a client that matches them
    to the text it sent needs every character of the sentence accounted
    for: LiveKit's plugin takes punctuation between words as part of the
    next word, but a full stop after the last one is left over, and the
    next sentence's words then no longer match (its transcript loses
    them). Only punctuation is added: when the engine's words do not
    match the text (numbers it expanded), nothing is.
    """
    words = timings.words
    if not words:
        return words
    position = 0
    for word in words:
        found = re.compile(re.escape(word.word), re.IGNORECASE).search(timings.text, position)
        if found is None:
            return words
        position = found.end()
    tail = timings.text[position:].strip()
    if not tail or any(character.isalnum() for character in tail):
        return words
    last = words[-1]
    return (*words, WordTiming(tail, last.end, last.end))


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


# -- the stream as Cartesia messages ------------------------------------------------------------------
@attrs.define
class CartesiaWriter:
    """A context's (or an SSE request's) stream as Cartesia's ``chunk``/``timestamps``/``done``/``error``.

    ``step_time`` is the milliseconds since the previous message of the
    stream (since the request, for the first), what Cartesia reports as
    server-side time per chunk.
    """

    context_id: str | None
    encoding: str
    add_timestamps: bool
    chunk_size: int = CONTEXT_CHUNK_BYTES
    message_overhead: int = 0
    _last: float = attrs.field(factory=time.perf_counter)

    def _ids(self) -> dict[str, Any]:
        return {} if self.context_id is None else {"context_id": self.context_id}

    def _step_ms(self) -> float:
        now = time.perf_counter()
        step, self._last = (now - self._last) * 1000.0, now
        return round(step, 3)

    def start(self, choice: EncodingChoice, source: AudioFormat) -> str | None:
        return None  # Cartesia sends nothing before the first chunk

    def audio_payload(self, piece: bytes) -> dict[str, Any]:
        data = base64.b64encode(convert_samples(piece, self.encoding)).decode()
        step = self._step_ms()
        return {"type": "chunk", "data": data, "done": False, "status_code": 206, "step_time": step, **self._ids()}

    def timings_payload(self, timings: SentenceTimings) -> dict[str, Any] | None:
        if not self.add_timestamps or not timings.words:
            return None
        stamps = written_words(timings)
        words = {
            "words": [word.word for word in stamps],
            "start": [word.start for word in stamps],
            "end": [word.end for word in stamps],
        }
        return {"type": "timestamps", "done": False, "status_code": 206, "word_timestamps": words, **self._ids()}

    def error_payload(self, error: StreamError) -> dict[str, Any]:
        return cartesia_error(error_for_code(error.code, error.message), self.context_id)

    def done_payload(self) -> dict[str, Any]:
        return {"type": "done", "done": True, "status_code": 200, **self._ids()}

    # The Writer protocol (the relay's frames), as WebSocket text messages.
    def audio(self, piece: bytes, index: int) -> str:
        return _json(self.audio_payload(piece))

    def timings(self, timings: SentenceTimings) -> str | None:
        payload = self.timings_payload(timings)
        return None if payload is None else _json(payload)

    def error(self, error: StreamError) -> str:
        return _json(self.error_payload(error))

    def finished(self, metrics: StreamMetrics) -> Sequence[str]:
        return (_json(self.done_payload()),)


@attrs.frozen
class _ContextOptions:
    encoding: str
    add_timestamps: bool


class CartesiaDialect:
    """Cartesia's WebSocket messages as our context commands (see the module's docstring).

    A message for a context that is not open opens it with the message's
    voice, format and speed; later messages' options are ignored (the
    SDK repeats them on every message). ``continue: false`` (the default)
    ends the context after the message's text, ``flush: true`` (or
    ``max_buffer_delay_ms: 0``, which says "do not wait for more text")
    speaks what is held now, and ``cancel: true`` stops the context.
    """

    label = "cartesia"

    def __init__(self, service: TtsService) -> None:
        self.service = service
        #: Per open context: what only Cartesia has. Replaced when an id is opened again.
        self._options: dict[str, _ContextOptions] = {}

    def commands(self, message: str | bytes | None, protocol: WsProtocol) -> Sequence[Command | dict[str, Any]]:
        if message is None or isinstance(message, bytes):
            raise BadRequest("binary messages are not accepted; send JSON text")
        try:
            data = json.loads(message)
        except (json.JSONDecodeError, RecursionError):
            raise InvalidJson("the message is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("a message must be a JSON object")
        context_id = data.get("context_id")
        if not isinstance(context_id, str) or not 0 < len(context_id) <= 128:
            raise InvalidParameter("context_id: a string of 1 to 128 characters is required", field="context_id")
        try:
            return self._commands(context_id, data, protocol)
        except ApiError as error:
            raise CommandError(error, {"context_id": context_id}) from None

    def _commands(self, context_id: str, data: dict[str, Any], protocol: WsProtocol) -> list[Command | dict[str, Any]]:
        if data.get("cancel") is True:
            # Cancelling a context that has ended (or never was) is a no-op, as on Cartesia.
            return [Stop(context_id)] if context_id in protocol.contexts else []
        transcript = data.get("transcript", "")
        if not isinstance(transcript, str):
            raise InvalidParameter("transcript: must be a string", field="transcript")
        more = _flag(data, "continue")
        flush = _flag(data, "flush") or data.get("max_buffer_delay_ms") == 0
        commands: list[Command | dict[str, Any]] = []
        if context_id not in protocol.contexts:
            if not transcript.strip() and not more:
                return [{"type": "done", "done": True, "status_code": 200, "context_id": context_id}]
            fmt = parse_output_format(data.get("output_format"), containers=("raw",))
            options = generate_fields(data, fmt, self.service)
            # Kept only for open contexts (and this one), so refused opens cannot pile up.
            self._options = {key: value for key, value in self._options.items() if key in protocol.contexts}
            self._options[context_id] = _ContextOptions(fmt.encoding, _flag(data, "add_timestamps"))
            commands.append(Append(context_id, transcript or " ", options))
        elif transcript:
            commands.append(Append(context_id, transcript, {}))
        if not more:
            commands.append(End(context_id))
        elif flush:
            commands.append(Flush(context_id))
        return commands

    def context_writer(self, context: Context) -> CartesiaWriter:
        options = self._options.pop(context.context_id, _ContextOptions("pcm_s16le", False))
        return CartesiaWriter(context.context_id, options.encoding, options.add_timestamps)

    def outgoing(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        if payload.get("type") == "error":
            error = error_for_code(str(payload.get("code")), str(payload.get("message")))
            context_id = payload.get("context_id")
            return cartesia_error(error, context_id if isinstance(context_id, str) else None)
        return None  # ``stopped`` and ``pong`` have no Cartesia counterpart

    def error(self, error: ApiError, ids: dict[str, str] | None = None) -> dict[str, Any]:
        return cartesia_error(error, (ids or {}).get("context_id"))


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidParameter(f"{name}: must be true or false", field=name)
    return value


def openapi_paths(max_chars: int) -> dict[str, Any]:
    """``/tts/websocket``, ``/tts/bytes`` and ``/tts/sse`` for the API description; see docs/cartesia.md."""
    error = {
        "type": "object",
        "required": ["status_code", "title", "message", "error_code", "error"],
        "properties": {
            "status_code": {"type": "integer"},
            "title": {"type": "string"},
            "message": {"type": "string"},
            "error_code": {"type": "string"},
            "error": {"type": "object"},
        },
    }
    errors = {
        str(status): {"description": "Cartesia's error fields", "content": {"application/json": {"schema": error}}}
        for status in (400, 413, 422, 503)
    }
    rates = {"type": "integer", "minimum": 8000, "maximum": 48000}
    output_format = {
        "type": "object",
        "properties": {
            "container": {"enum": list(CONTAINERS)},
            "encoding": {"enum": list(ENCODINGS)},
            "sample_rate": rates,
            "bit_rate": {"type": "integer", "description": "accepted, not used"},
        },
    }
    voice = {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"mode": {}, "id": {"type": "string"}}}]}
    body = {
        "type": "object",
        "required": ["transcript"],
        "properties": {
            "model_id": {"type": "string", "description": "accepted, not used"},
            "transcript": {"type": "string", "minLength": 1, "maxLength": max_chars},
            "voice": voice,
            "output_format": output_format,
            "speed": {"oneOf": [{"enum": list(NAMED_SPEEDS)}, {"type": "number"}]},
            "generation_config": {"type": "object", "properties": {"speed": {"type": "number"}}},
            "add_timestamps": {"type": "boolean", "description": "SSE only"},
            "context_id": {"type": "string", "description": "SSE only: echoed in the events"},
        },
    }
    request = {"required": True, "content": {"application/json": {"schema": body}}}
    audio: dict[str, Any] = {
        content_type: {} for content_type in ("application/octet-stream", "audio/wav", "audio/mpeg")
    }
    return {
        "/tts/websocket": {
            "get": {
                "summary": "WebSocket: Cartesia's generation requests and cancel; see docs/cartesia.md",
                "responses": {
                    "101": {"description": "Switching to the WebSocket protocol"},
                    "400": {
                        "description": "A plain HTTP request, not a WebSocket upgrade",
                        "content": {"application/json": {"schema": {"type": "object", "required": ["error"]}}},
                    },
                },
            }
        },
        "/tts/bytes": {
            "post": {
                "summary": "Cartesia-compatible speech (raw, WAV or MP3, streamed as it is synthesized)",
                "requestBody": request,
                "responses": {"200": {"description": "Audio", "content": audio}, **errors},
            }
        },
        "/tts/sse": {
            "post": {
                "summary": "Cartesia-compatible speech as Server-Sent Events (chunk, timestamps, done, error)",
                "requestBody": request,
                "responses": {
                    "200": {"description": "text/event-stream", "content": {"text/event-stream": {}}},
                    **errors,
                },
            }
        },
    }
