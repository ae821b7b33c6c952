"""ElevenLabs' TTS API without the I/O: output formats, voices, and its WebSocket messages as our commands.

The REST routes and both sockets share :func:`parse_output_format`,
:func:`voice_for` and :func:`speed_of`. The sockets
(``/v1/text-to-speech/{voice_id}/stream-input`` with one stream,
``.../multi-stream-input`` with ``context_id`` on each message) are our
text-in context session (:mod:`tts_trio.api.websocket.session`):
:class:`ElevenDialect` turns each message into append, flush, end and stop
commands and frames a context's stream as ElevenLabs' ``audio`` /
``isFinal`` messages, so ordering, cancellation and back-pressure are those
of our own socket. Closing the socket (``{"text": ""}`` on the single stream,
``close_socket`` on the multi one) is asked of the caller through
``on_close``; nothing here awaits.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from tts_trio.api.websocket.frames import CONTEXT_CHUNK_BYTES
from tts_trio.api.websocket.protocol import Append, Command, CommandError, Context, End, Flush, Stop, WsProtocol
from tts_trio.audio.encoding import EncodingChoice, choose_encoding
from tts_trio.audio.formats import AudioFormat, WordTiming
from tts_trio.audio.g711 import to_mulaw
from tts_trio.errors import ApiError, BadRequest, InvalidJson, InvalidParameter, VoiceNotFound, error_for_code
from tts_trio.synthesis.params import clean_text
from tts_trio.synthesis.pipeline import SentenceTimings, StreamError, StreamMetrics
from tts_trio.synthesis.service import TtsService

#: ElevenLabs' codec names -> (our format, the content type ElevenLabs' clients expect).
CODECS = {
    "mp3": ("mp3", "audio/mpeg"),
    "pcm": ("pcm", "audio/pcm"),
    "ulaw": ("pcm", "audio/basic"),
    "opus": ("opus", "audio/ogg"),
}
DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"
#: The one context of ``stream-input``, and of a ``multi-stream-input`` message without ``context_id``.
DEFAULT_CONTEXT = "default"
#: Fields of ElevenLabs' client messages (both sockets); anything else is refused.
MESSAGE_FIELDS = frozenset(
    {
        "text", "voice_settings", "generation_config", "generator_config", "xi_api_key", "xi-api-key",
        "authorization", "flush", "try_trigger_generation", "pronunciation_dictionary_locators",
        "context_id", "contextId", "close_context", "close_socket",
    }
)  # fmt: skip
#: Query parameters with a meaning here; ElevenLabs' others (language_code, enable_logging, ...) are ignored.
_QUERY_FLAGS = ("enable_ssml_parsing", "auto_mode", "sync_alignment")


# -- formats, voices, settings ------------------------------------------------------------------
@attrs.frozen
class ElevenFormat:
    """An ElevenLabs ``output_format``: what we encode, and how it is labelled."""

    name: str
    choice: EncodingChoice
    content_type: str
    ulaw: bool


def parse_output_format(name: str, service: TtsService) -> ElevenFormat:
    """``mp3_44100_128`` and the like; raises :class:`InvalidParameter` naming what is wrong."""
    codec, _, rest = name.partition("_")
    rate_text = rest.partition("_")[0]
    if codec not in CODECS or not rate_text.isdigit():
        raise InvalidParameter(
            f"output_format: {name[:40]!r} is not codec_rate[_bitrate] with codec mp3, pcm, ulaw or opus",
            field="output_format",
        )
    ours, content_type = CODECS[codec]
    rate = int(rate_text)
    if codec == "ulaw" and rate != 8000:
        raise InvalidParameter("output_format: ulaw is only 8000 Hz", field="output_format")
    choice = choose_encoding(ours, rate, service.pool.audio_format)
    return ElevenFormat(name, choice, content_type, codec == "ulaw")


def voice_for(voice_id: str, service: TtsService) -> str:
    """Our voice for an ElevenLabs voice id: itself when the engine knows it, else the default voice."""
    try:
        service.resolve_voice(voice_id)
    except (VoiceNotFound, ApiError):
        return "default"
    return voice_id


def speed_of(voice_settings: Any) -> float:
    """``voice_settings.speed``, the one voice setting our engines have (1 when absent)."""
    if voice_settings is None:
        return 1.0
    if not isinstance(voice_settings, dict):
        raise InvalidParameter("voice_settings: must be an object", field="voice_settings")
    speed = voice_settings.get("speed", 1.0)
    if speed is None:
        return 1.0
    if not isinstance(speed, int | float) or isinstance(speed, bool):
        raise InvalidParameter("voice_settings.speed: must be a number", field="voice_settings")
    return float(speed)


@attrs.frozen
class StreamQuery:
    """The socket's query: the voice and format every context of it uses."""

    voice_id: str
    fmt: ElevenFormat
    model_id: str | None = None


def parse_stream_query(voice_id: str, query: Mapping[str, str], service: TtsService) -> StreamQuery:
    """Checked before the upgrade, so a wrong format is an HTTP 4xx (what ElevenLabs' clients report)."""
    for name in _QUERY_FLAGS:
        value = query.get(name)
        if value is not None and value not in ("true", "false"):
            raise InvalidParameter(f"{name}: must be true or false", field=name)
    timeout = query.get("inactivity_timeout")
    if timeout is not None and not (timeout.isdigit() and 1 <= int(timeout) <= 180):
        raise InvalidParameter("inactivity_timeout: must be a whole number of seconds from 1 to 180")
    fmt = parse_output_format(query.get("output_format", DEFAULT_OUTPUT_FORMAT), service)
    return StreamQuery(voice_for(voice_id, service), fmt, query.get("model_id"))


# -- outgoing messages --------------------------------------------------------------------------
def socket_error(error: ApiError, context_id: str | None = None) -> dict[str, Any]:
    """ElevenLabs' error message: ``error`` the code, ``message`` the text; ``code`` is our HTTP status."""
    payload: dict[str, Any] = {"message": error.message, "error": error.code, "code": error.status}
    if context_id is not None:
        payload["contextId"] = context_id
    return payload


def char_alignment(timings: SentenceTimings) -> dict[str, list[Any]]:
    """A sentence's characters with start and duration (ms from the stream's start), and a space after it.

    Each word's characters share its span evenly; what lies between words
    (spaces, punctuation) spans the gap. Without word timings the whole
    sentence is spread evenly. The trailing space keeps sentences apart in a
    client that joins the characters of successive messages into words.
    """
    text = timings.text
    spans: list[tuple[int, int, float, float]] = []
    cursor, clock = 0, timings.start
    for word in _located(text, timings.words):
        at = text.find(word.word, cursor)
        begin, finish = max(clock, word.start), max(clock, word.end)
        if at > cursor:
            spans.append((cursor, at, clock, begin))
        spans.append((at, at + len(word.word), begin, finish))
        cursor, clock = at + len(word.word), finish
    if cursor < len(text):
        spans.append((cursor, len(text), clock, max(clock, timings.end)))
    starts: list[int] = []
    durations: list[int] = []
    for first, last, begin, finish in spans:
        step = (finish - begin) / (last - first)
        for index in range(last - first):
            start = round((begin + index * step) * 1000)
            starts.append(start)
            durations.append(max(0, round((begin + (index + 1) * step) * 1000) - start))
    end_ms = round(max(clock, timings.end) * 1000)
    return {"chars": [*text, " "], "charStartTimesMs": [*starts, end_ms], "charDurationsMs": [*durations, 0]}


def _located(text: str, words: Sequence[WordTiming]) -> list[WordTiming]:
    """The words found in order in ``text`` (an engine may spell a word differently: it is skipped)."""
    found, cursor = [], 0
    for word in words:
        at = text.find(word.word, cursor) if word.word else -1
        if at >= 0:
            found.append(word)
            cursor = at + len(word.word)
    return found


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


@attrs.frozen
class ElevenWriter:
    """A context's stream as ElevenLabs' messages; ``context_id`` None on the single stream (no ``contextId``).

    Audio goes out as it is made; the alignment of a sentence follows its
    audio in a message of its own (``audio`` empty), since our timings are
    known only once the sentence is spoken.
    """

    context_id: str | None
    ulaw: bool
    chunk_size: int = CONTEXT_CHUNK_BYTES
    message_overhead: int = 0

    def _ids(self) -> dict[str, str]:
        return {} if self.context_id is None else {"contextId": self.context_id}

    def start(self, choice: EncodingChoice, source: AudioFormat) -> str | None:
        return None  # ElevenLabs sends nothing before the first audio

    def audio(self, piece: bytes, index: int) -> str:
        data = base64.b64encode(to_mulaw(piece) if self.ulaw else piece).decode()
        return _json({"audio": data, "isFinal": None, "normalizedAlignment": None, "alignment": None, **self._ids()})

    def timings(self, timings: SentenceTimings) -> str:
        alignment = char_alignment(timings)
        return _json(
            {"audio": "", "isFinal": None, "normalizedAlignment": alignment, "alignment": alignment, **self._ids()}
        )

    def error(self, error: StreamError) -> str:
        return _json(socket_error(error_for_code(error.code, error.message), self.context_id))

    def finished(self, metrics: StreamMetrics) -> Sequence[str]:
        return (_json(final_message(self.context_id)),)


def final_message(context_id: str | None) -> dict[str, Any]:
    return {"isFinal": True} if context_id is None else {"isFinal": True, "contextId": context_id}


# -- incoming messages --------------------------------------------------------------------------
def parse_message(message: str | bytes | None) -> dict[str, Any]:
    """One client message as a JSON object of ElevenLabs' fields; raises the :class:`ApiError` the client gets."""
    if message is None or isinstance(message, bytes):
        raise BadRequest("binary messages are not accepted; send JSON text")
    try:
        data = json.loads(message)
    except (json.JSONDecodeError, RecursionError):
        raise InvalidJson("the message is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("a message must be a JSON object")
    unknown = sorted(set(data) - MESSAGE_FIELDS)
    if unknown:
        raise InvalidParameter(f"unknown field(s): {', '.join(name[:40] for name in unknown[:5])}")
    text = data.get("text")
    if text is not None and not isinstance(text, str):
        raise InvalidParameter("text: must be a string", field="text")
    for name in ("flush", "try_trigger_generation", "close_context", "close_socket"):
        if data.get(name) is not None and not isinstance(data[name], bool):
            raise InvalidParameter(f"{name}: must be true or false", field=name)
    return data


def context_id_of(data: dict[str, Any]) -> str:
    context_id = data.get("context_id", data.get("contextId"))
    if context_id is None:
        return DEFAULT_CONTEXT
    if not isinstance(context_id, str) or not 0 < len(context_id) <= 128:
        raise InvalidParameter("context_id: a string of 1 to 128 characters is required", field="context_id")
    return context_id


class ElevenDialect:
    """ElevenLabs' socket messages as our context commands (see the module's docstring).

    A context opens with its first text that is not blank; the blank
    ``" "`` before it only brings its ``voice_settings``. ``flush`` speaks
    what is held. On ``multi-stream-input``, ``close_context`` stops the
    context at once (its ``isFinal`` comes next and no audio of it after),
    except right after a ``flush`` of it: then what was flushed is still
    spoken, and the ``isFinal`` follows it, since a client that flushes and
    closes (LiveKit's plugin at the end of each turn) asks for that audio. A
    second ``close_context`` stops even that. ``close_socket`` ends every
    context after its held text and then closes the socket; on
    ``stream-input`` ``{"text": ""}`` does so for its one stream.
    """

    label = "elevenlabs"

    def __init__(
        self, query: StreamQuery, *, multi: bool, max_pending: int = 16, on_close: Callable[[], None] | None = None
    ) -> None:
        self.query = query
        self.multi = multi
        self.on_close = on_close
        #: Set by the first message; the caller waits on it for the contexts to end before closing.
        self.protocol: WsProtocol | None = None
        #: Once the client asked to close: later messages are ignored.
        self.closing = False
        #: Sent by the caller just before it closes (the final of a stream that never spoke).
        self.farewell: list[dict[str, Any]] = []
        self._max_pending = max_pending
        #: Speed of each context initialized but not yet opened (no text yet).
        self._pending: dict[str, float] = {}
        #: Contexts whose last message was a flush.
        self._flushed: set[str] = set()

    def commands(self, message: str | bytes | None, protocol: WsProtocol) -> Sequence[Command | dict[str, Any]]:
        self.protocol = protocol
        if self.closing:
            return ()
        data = parse_message(message)
        if data.get("close_socket") is True and self.multi:
            return self._close(protocol)
        context_id = context_id_of(data) if self.multi else DEFAULT_CONTEXT
        try:
            return self._commands(context_id, data, protocol)
        except ApiError as error:
            raise CommandError(error, {"context_id": context_id} if self.multi else {}) from None

    def _commands(self, context_id: str, data: dict[str, Any], protocol: WsProtocol) -> list[Command | dict[str, Any]]:
        is_open = context_id in protocol.contexts
        if self.multi and data.get("close_context") is True:
            return self._close_context(context_id, protocol)
        text = clean_text(data.get("text") or "")
        flush = data.get("flush") is True
        if not self.multi and data.get("text") == "" and not flush:
            return self._close(protocol)  # the single stream's end
        if not is_open and not text.strip():
            self._remember(context_id, data)
            self._flushed.discard(context_id)
            return []
        commands: list[Command | dict[str, Any]] = []
        if text:
            options = {} if is_open else self._options(context_id, data)
            commands.append(Append(context_id, text, options))
        if flush:
            commands.append(Flush(context_id))
        elif not text and not protocol.contexts[context_id].assembler.pending.strip():
            commands.append(Flush(context_id))  # a keep-alive: restarts the idle wait, speaks nothing
        if flush:
            self._flushed.add(context_id)
        else:
            self._flushed.discard(context_id)
        return commands

    def _close_context(self, context_id: str, protocol: WsProtocol) -> list[Command | dict[str, Any]]:
        self._pending.pop(context_id, None)
        flushed = context_id in self._flushed
        self._flushed.discard(context_id)
        context = protocol.contexts.get(context_id)
        if context is None:
            return [final_message(context_id)]  # never spoke, or already ended: its end is now
        if flushed and not context.ended:
            return [End(context_id)]
        return [Stop(context_id)]

    def _close(self, protocol: WsProtocol) -> list[Command | dict[str, Any]]:
        self.closing = True
        commands: list[Command | dict[str, Any]] = [
            End(context_id) for context_id, context in protocol.contexts.items() if not context.ended
        ]
        if not self.multi and DEFAULT_CONTEXT not in protocol.contexts:
            self.farewell.append(final_message(None))
        self._pending.clear()
        if self.on_close is not None:
            self.on_close()
        return commands

    def _remember(self, context_id: str, data: dict[str, Any]) -> None:
        """An initialized context's speed, kept until its first text (a later init replaces it)."""
        previous = self._pending.pop(context_id, 1.0)
        speed = previous if data.get("voice_settings") is None else speed_of(data["voice_settings"])
        if len(self._pending) >= self._max_pending:
            del self._pending[next(iter(self._pending))]  # the oldest initialized context that never spoke
        self._pending[context_id] = speed

    def _options(self, context_id: str, data: dict[str, Any]) -> dict[str, Any]:
        speed = self._pending.pop(context_id, 1.0)
        if data.get("voice_settings") is not None:
            speed = speed_of(data["voice_settings"])
        choice = self.query.fmt.choice
        return {
            "voice_id": self.query.voice_id,
            "output_format": choice.output_format,
            "sample_rate": choice.sample_rate,
            "speed": speed,
        }

    def context_writer(self, context: Context) -> ElevenWriter:
        return ElevenWriter(context.context_id if self.multi else None, self.query.fmt.ulaw)

    def outgoing(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        context_id = payload.get("context_id")
        ids = context_id if self.multi and isinstance(context_id, str) else None
        if payload.get("type") == "stopped":
            return final_message(ids)
        if payload.get("type") == "error":
            return socket_error(error_for_code(str(payload.get("code")), str(payload.get("message"))), ids)
        return None  # ``pong`` has no ElevenLabs counterpart

    def error(self, error: ApiError, ids: dict[str, str] | None = None) -> dict[str, Any]:
        return socket_error(error, (ids or {}).get("context_id") if self.multi else None)
