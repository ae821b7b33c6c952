"""ElevenLabs-compatible text-to-speech: REST (``POST /v1/text-to-speech/{voice_id}[/stream]``) and WebSockets.

Clients written for ElevenLabs (its SDK's ``text_to_speech.convert``,
``stream`` and ``convert_realtime``, LiveKit's plugin) work by pointing
their base URL here. ElevenLabs names the audio as ``codec_rate[_bitrate]``
(``mp3_44100_128``, ``pcm_24000``, ``ulaw_8000``, ``opus_48000_64``); each
maps onto one of our encodings at that rate (the bitrate is ignored).
``ulaw`` is G.711 mu-law made here from 8 kHz PCM, since the shared
encoders have no such format.

The sockets ``.../stream-input`` and ``.../multi-stream-input`` are our
text-in context session with ElevenLabs' messages
(:class:`~.elevenlabs_protocol.ElevenDialect`); this module adds only the
close the client may ask for, which the shared session does not do.

A voice id the engine knows selects that voice; any other id (ElevenLabs'
own ids such as ``21m00Tcm4TlvDq8N2WB2``) and every ``model_id`` speak
with the current engine's default voice, so a client that only knows
ElevenLabs' names still speaks. ``voice_settings.speed`` is honoured; the
other voice settings have no meaning for our engines and are accepted.

REST errors carry both ElevenLabs' ``{"detail": {"status", "message"}}`` and
our ``{"error": {"code", "message"}}``, with our 4xx status. See
docs/elevenlabs.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs
import trio
from quart import Blueprint, Response, current_app, jsonify, request, websocket

from tts_trio.api.dialects.elevenlabs_protocol import (
    DEFAULT_OUTPUT_FORMAT,
    ElevenDialect,
    parse_output_format,
    parse_stream_query,
    speed_of,
    voice_for,
)
from tts_trio.api.json_body import read_json_body
from tts_trio.api.response_body import relayed_body
from tts_trio.api.state import current_service, current_settings
from tts_trio.api.websocket.session import serve_session
from tts_trio.audio.g711 import to_mulaw
from tts_trio.errors import ApiError, InvalidParameter
from tts_trio.synthesis.params import GenerateParams, parse_json_params
from tts_trio.synthesis.pipeline import SentenceTimings, StreamError, StreamMetrics

blueprint = Blueprint("elevenlabs", __name__)

#: Body fields ElevenLabs defines; accepted, and only text, voice_settings.speed used.
_BODY_FIELDS = {
    "text", "model_id", "language_code", "voice_settings", "pronunciation_dictionary_locators", "seed",
    "previous_text", "next_text", "previous_request_ids", "next_request_ids", "use_pvc_as_ivc",
    "apply_text_normalization", "apply_language_text_normalization", "audio_effects",
}  # fmt: skip


def eleven_error(error: ApiError) -> Any:
    """Both shapes: ElevenLabs' ``detail`` (what its clients show) and our ``error``."""
    response = jsonify({"detail": {"status": error.code, "message": error.message}, "error": error.to_dict()})
    response.status_code = error.status
    if "retry_after" in error.details:
        response.headers["Retry-After"] = str(error.details["retry_after"])
    return response


@attrs.frozen
class _AudioWriter:
    """The encoded audio as it comes (mu-law made here); an error can only end the body early."""

    ulaw: bool
    chunk_size: None = None
    message_overhead: int = 0

    def audio(self, piece: bytes, index: int) -> bytes:
        return to_mulaw(piece) if self.ulaw else piece

    def timings(self, timings: SentenceTimings) -> None:
        return None

    def error(self, error: StreamError) -> None:
        return None

    def finished(self, metrics: StreamMetrics) -> Sequence[bytes]:
        return ()


async def _speak(voice_id: str) -> Any:
    settings = current_settings()
    service = current_service()
    try:
        body = await read_json_body(settings.max_body_bytes)
        if not isinstance(body, dict):
            raise InvalidParameter("the request must be a JSON object")
        unknown = sorted(set(body) - _BODY_FIELDS)
        if unknown:
            raise InvalidParameter(f"unknown field(s): {', '.join(unknown)}")
        if "text" not in body:
            raise InvalidParameter("text: required field missing", field="text")
        fmt = parse_output_format(request.args.get("output_format", DEFAULT_OUTPUT_FORMAT), service)
        params = parse_json_params(
            GenerateParams,
            {
                "text": body["text"],
                "voice_id": voice_for(voice_id, service),
                "speed": speed_of(body.get("voice_settings")),
            },
            max_text_chars=settings.max_text_chars,
        )
        job = service.job(params)
        place = await service.admission.acquire()
    except ApiError as error:
        return eleven_error(error)
    nursery: trio.Nursery = current_app.nursery  # type: ignore[attr-defined]
    audio = relayed_body(nursery, service, job, fmt.choice, place, _AudioWriter(fmt.ulaw), protocol="elevenlabs")
    place.bind(audio)  # a body that never runs still gives its place back
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **fmt.choice.headers(job.pool.audio_format)}
    response = Response(audio, mimetype=fmt.content_type, headers=headers)
    response.timeout = None
    return response


@blueprint.post("/v1/text-to-speech/<voice_id>")
async def convert(voice_id: str) -> Any:
    """The whole text's audio; streamed as it is made (ElevenLabs' clients read it either way)."""
    return await _speak(voice_id)


@blueprint.post("/v1/text-to-speech/<voice_id>/stream")
async def stream(voice_id: str) -> Any:
    return await _speak(voice_id)


@blueprint.websocket("/v1/text-to-speech/<voice_id>/stream-input")
async def stream_input(voice_id: str) -> None:
    """One stream per socket: text in pieces, ``{"text": ""}`` ends it (final message, then close 1000)."""
    await _serve_socket(voice_id, multi=False)


@blueprint.websocket("/v1/text-to-speech/<voice_id>/multi-stream-input")
async def multi_stream_input(voice_id: str) -> None:
    """Many contexts per socket, each named by ``context_id``; ``close_socket`` ends them and closes."""
    await _serve_socket(voice_id, multi=True)


async def _serve_socket(voice_id: str, *, multi: bool) -> None:
    # Refused before the upgrade (an HTTP 4xx, which ElevenLabs' clients report) when the query is wrong.
    query = parse_stream_query(voice_id, websocket.args, current_service())
    asked = trio.Event()
    dialect = ElevenDialect(query, multi=multi, on_close=asked.set)
    connection = websocket._get_current_object()  # type: ignore[attr-defined]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_close_when_asked, connection, dialect, asked, nursery.cancel_scope)
        await serve_session(dialect)
        nursery.cancel_scope.cancel()


async def _close_when_asked(
    connection: Any, dialect: ElevenDialect, asked: trio.Event, session: trio.CancelScope
) -> None:
    """Close with 1000 once the client asked to and every context's final message has gone out.

    A context's final is its last send, made before the session forgets the
    context, so an idle protocol means all of them were sent. The session
    has no event for that; it is looked at every 10 ms, only after the
    client asked to close.
    """
    await asked.wait()
    while dialect.protocol is not None and dialect.protocol.busy():  # noqa: ASYNC110
        await trio.sleep(0.01)
    with trio.move_on_after(current_settings().send_timeout):
        for payload in dialect.farewell:
            await connection.send(json.dumps(payload, separators=(",", ":")))
        await connection.close(1000)
    session.cancel()


def openapi_paths(max_chars: int) -> dict[str, Any]:
    """The ElevenLabs routes for the API description; see docs/elevenlabs.md."""
    error = {
        "type": "object",
        "required": ["detail", "error"],
        "properties": {
            "detail": {"type": "object", "properties": {"status": {"type": "string"}, "message": {"type": "string"}}},
            "error": {"type": "object"},
        },
    }
    errors = {
        str(status): {
            "description": "ElevenLabs' detail and our error",
            "content": {"application/json": {"schema": error}},
        }
        for status in (400, 404, 413, 415, 422, 503)
    }
    body = {
        "type": "object",
        "required": ["text"],
        "additionalProperties": False,
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": max_chars},
            "voice_settings": {
                "type": ["object", "null"],
                "properties": {"speed": {"type": ["number", "null"], "minimum": 0.25, "maximum": 4.0}},
            },
            **{
                name: {"description": "accepted, not used"}
                for name in sorted(_BODY_FIELDS - {"text", "voice_settings"})
            },
        },
    }
    parameters = [
        {"name": "voice_id", "in": "path", "required": True, "schema": {"type": "string"}},
        {
            "name": "output_format",
            "in": "query",
            "schema": {
                "type": "string",
                "default": DEFAULT_OUTPUT_FORMAT,
                "pattern": "^(mp3|pcm|ulaw|opus)_[0-9]+(_[0-9]+)?$",
            },
            "description": "codec_rate[_bitrate]: mp3, pcm (raw s16le), ulaw (8000 only) or opus",
        },
    ]
    audio: dict[str, Any] = {
        content_type: {} for content_type in ("audio/mpeg", "audio/pcm", "audio/basic", "audio/ogg")
    }
    operation = {
        "parameters": parameters,
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {"200": {"description": "Audio, streamed as it is synthesized", "content": audio}, **errors},
    }
    socket_parameters = [
        *parameters,
        {"name": "model_id", "in": "query", "schema": {"type": "string"}, "description": "accepted, not used"},
        *(
            {"name": name, "in": "query", "schema": {"enum": ["true", "false"]}, "description": "accepted, not used"}
            for name in ("enable_ssml_parsing", "auto_mode", "sync_alignment")
        ),
        {
            "name": "inactivity_timeout",
            "in": "query",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
            "description": "1 to 180; accepted, the server's context idle timeout applies",
        },
    ]

    def socket(summary: str) -> dict[str, Any]:
        return {
            "get": {
                "summary": summary,
                "parameters": socket_parameters,
                "responses": {
                    "101": {"description": "Switching to the WebSocket protocol"},
                    "400": {
                        "description": "A plain HTTP request, not a WebSocket upgrade",
                        "content": {"application/json": {"schema": {"type": "object", "required": ["error"]}}},
                    },
                },
            }
        }

    return {
        "/v1/text-to-speech/{voice_id}/stream-input": socket(
            "WebSocket: ElevenLabs' input streaming, one stream; see docs/elevenlabs.md"
        ),
        "/v1/text-to-speech/{voice_id}/multi-stream-input": socket(
            "WebSocket: ElevenLabs' multi-context input streaming; see docs/elevenlabs.md"
        ),
        "/v1/text-to-speech/{voice_id}": {"post": {"summary": "ElevenLabs-compatible speech", **operation}},
        "/v1/text-to-speech/{voice_id}/stream": {
            "post": {"summary": "ElevenLabs-compatible streamed speech", **operation}
        },
    }
