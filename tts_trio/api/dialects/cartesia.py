"""Cartesia-compatible TTS: ``WS /tts/websocket``, ``POST /tts/bytes`` and ``POST /tts/sse``.

Clients written for Cartesia (its ``cartesia`` SDK, LiveKit's
``livekit-plugins-cartesia``) work by pointing their base URL here; see
docs/cartesia.md for what is supported. The WebSocket is our own
text-in context session (:mod:`tts_trio.api.websocket.session`) with
Cartesia's messages (:class:`~.cartesia_protocol.CartesiaDialect`), so
several contexts per socket, ordering, cancellation and back-pressure
behave exactly as on ``WS /v1/tts/stream``. The REST routes stream the
audio as it is synthesized through the shared relay.

Every ``model_id`` is accepted and ignored; a voice id the engine knows
selects that voice, any other (Cartesia's UUIDs) speaks with the current
engine's default voice. Errors carry Cartesia's fields (``title``,
``message``, ``error_code``, ``status_code``) and our ``error`` object,
with our 4xx status.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs
import trio
from quart import Blueprint, Response, current_app, jsonify

from tts_trio.api.dialects.cartesia_protocol import (
    CartesiaDialect,
    CartesiaFormat,
    CartesiaWriter,
    cartesia_error,
    convert_samples,
    generate_fields,
    parse_output_format,
    wav_header,
)
from tts_trio.api.json_body import read_json_body
from tts_trio.api.response_body import relayed_body
from tts_trio.api.state import current_service, current_settings
from tts_trio.api.websocket.session import serve_session
from tts_trio.errors import ApiError, InvalidParameter
from tts_trio.synthesis.params import GenerateParams, parse_json_params
from tts_trio.synthesis.pipeline import SentenceTimings, StreamError, StreamMetrics, SynthesisJob
from tts_trio.synthesis.service import TtsService

blueprint = Blueprint("cartesia", __name__)

_CONTENT_TYPES = {"raw": "application/octet-stream", "wav": "audio/wav", "mp3": "audio/mpeg"}


@blueprint.websocket("/tts/websocket")
async def tts_websocket() -> None:
    """Cartesia's streaming socket; the ``cartesia_version`` query and ``Cartesia-Version`` header are not needed."""
    await serve_session(CartesiaDialect(current_service()))


def _error_response(error: ApiError) -> Any:
    """Cartesia's fields (what its clients show) and our ``error`` object, with our status."""
    body = cartesia_error(error)
    del body["type"], body["done"]
    response = jsonify({**body, "error": error.to_dict()})
    response.status_code = error.status
    if "retry_after" in error.details:
        response.headers["Retry-After"] = str(error.details["retry_after"])
    return response


@attrs.frozen
class _Request:
    job: SynthesisJob
    fmt: CartesiaFormat
    add_timestamps: bool
    context_id: str | None


def _parse(body: Any, service: TtsService, max_text_chars: int, containers: Sequence[str]) -> _Request:
    if not isinstance(body, dict):
        raise InvalidParameter("the request must be a JSON object")
    transcript = body.get("transcript")
    if not isinstance(transcript, str):
        raise InvalidParameter("transcript: a string is required", field="transcript")
    fmt = parse_output_format(body.get("output_format"), containers=containers)
    fields = generate_fields(body, fmt, service)
    params = parse_json_params(GenerateParams, {"text": transcript, **fields}, max_text_chars=max_text_chars)
    add_timestamps = body.get("add_timestamps") is True
    context_id = body.get("context_id")
    return _Request(service.job(params), fmt, add_timestamps, context_id if isinstance(context_id, str) else None)


@attrs.frozen
class _AudioWriter:
    """The audio as it comes, in the asked sample encoding; an error can only end the body early."""

    encoding: str
    chunk_size: None = None
    message_overhead: int = 0

    def audio(self, piece: bytes, index: int) -> bytes:
        return convert_samples(piece, self.encoding) if self.encoding != "mp3" else piece

    def timings(self, timings: SentenceTimings) -> None:
        return None

    def error(self, error: StreamError) -> None:
        return None

    def finished(self, metrics: StreamMetrics) -> Sequence[bytes]:
        return ()


@attrs.define
class _SseWriter:
    """Cartesia's SSE events: each ``data`` is the JSON its SDK parses (chunk, timestamps, done, error)."""

    messages: CartesiaWriter
    chunk_size: int = 16384
    message_overhead: int = 0

    @staticmethod
    def _event(payload: dict[str, Any]) -> bytes:
        return f"event: {payload['type']}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()

    def audio(self, piece: bytes, index: int) -> bytes:
        return self._event(self.messages.audio_payload(piece))

    def timings(self, timings: SentenceTimings) -> bytes | None:
        payload = self.messages.timings_payload(timings)
        return None if payload is None else self._event(payload)

    def error(self, error: StreamError) -> bytes:
        return self._event(self.messages.error_payload(error))

    def finished(self, metrics: StreamMetrics) -> Sequence[bytes]:
        return (self._event(self.messages.done_payload()),)


async def _respond(containers: Sequence[str], sse: bool) -> Any:
    settings = current_settings()
    service = current_service()
    try:
        body = await read_json_body(settings.max_body_bytes)
        parsed = _parse(body, service, settings.max_text_chars, containers)
        choice = service.encoding(
            GenerateParams(text="-", output_format=parsed.fmt.choice_format, sample_rate=parsed.fmt.sample_rate),
            parsed.job,
        )
        place = await service.admission.acquire()
    except ApiError as error:
        return _error_response(error)
    nursery: trio.Nursery = current_app.nursery  # type: ignore[attr-defined]
    source = parsed.job.pool.audio_format
    if sse:
        writer: _AudioWriter | _SseWriter = _SseWriter(
            CartesiaWriter(parsed.context_id, parsed.fmt.encoding, parsed.add_timestamps)
        )
        head, content_type = b"", "text/event-stream"
    else:
        writer = _AudioWriter(parsed.fmt.encoding)
        wav = parsed.fmt.container == "wav"
        head = wav_header(parsed.fmt.encoding, choice.sample_rate) if wav else b""
        content_type = _CONTENT_TYPES[parsed.fmt.container]
    audio = relayed_body(nursery, service, parsed.job, choice, place, writer, protocol="cartesia", head=head)
    place.bind(audio)  # a body that never runs still gives its place back
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **choice.headers(source)}
    response = Response(audio, mimetype=content_type, headers=headers)
    response.timeout = None
    return response


@blueprint.post("/tts/bytes")
async def tts_bytes() -> Any:
    """The whole transcript's audio (raw, WAV or MP3), streamed as it is made."""
    return await _respond(("raw", "wav", "mp3"), sse=False)


@blueprint.post("/tts/sse")
async def tts_sse() -> Any:
    """The audio as base64 ``chunk`` events of raw samples, then ``done`` (timestamps with ``add_timestamps``)."""
    return await _respond(("raw",), sse=True)
