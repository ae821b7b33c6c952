"""``GET /v1/tts/stream-sse``: audio as Server-Sent Events while it is synthesized.

Events, in order: ``format`` (how to decode the audio), then ``audio``
events ``{"chunk": base64, "index": n}`` (n from 1, each decoded chunk at
most ``chunk_size`` bytes) with a ``timings`` event after each sentence's
audio, then ``metrics`` and ``done``; or ``error`` if the engine fails
mid-stream, or with code ``shutting_down`` if the server stops before the
stream could finish. The decoded chunks joined in order are one continuous file in
``output_format``: with ``wav`` (the default) the first chunk starts with an
open-ended WAV header, so the joined chunks play as a ``.wav`` file.

With ``captions=srt`` or ``captions=vtt`` each ``timings`` event is followed
by a ``captions`` event for the same sentence: ``{"sentence": n, "format":
"vtt", "text": ..., "cues": [{"number", "start", "end", "text"}]}``, where
``text`` is that sentence's cue blocks (numbering continues across events)
and the first ``vtt`` event's ``text`` starts with the ``WEBVTT`` header, so
the ``text`` of all the events joined is the whole document, the same one
``POST /v1/tts/generate`` returns for the text.

The producer runs in the app's nursery under the stream's own cancel scope;
the body generator only reads the channel. When the client disconnects the
generator is closed, its ``finally`` cancels the scope (synchronously), and
the pool stops the engine.
"""

from __future__ import annotations

import json
from binascii import b2a_base64
from collections.abc import Sequence
from typing import Any

import attrs
import trio
from quart import Blueprint, Response, current_app, request

from tts_trio.api.response_body import cache_headers, engine_headers, relayed_body, ssml_headers
from tts_trio.api.state import current_service, current_settings
from tts_trio.audio.formats import frame_aligned
from tts_trio.synthesis.captions import SentenceCaptions
from tts_trio.synthesis.params import SseParams, parse_query_params
from tts_trio.synthesis.pipeline import SentenceTimings, StreamError, StreamMetrics

blueprint = Blueprint("sse", __name__)


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    """One Server-Sent Event (the one framing of this route and the OpenAI route)."""
    return b"event: " + name.encode() + b"\ndata: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def sse_audio_event(piece: bytes, index: int) -> bytes:
    """``sse_event("audio", {"chunk": base64, "index": index})`` without a JSON round trip (the hot path)."""
    return b'event: audio\ndata: {"chunk":"' + b2a_base64(piece, newline=False) + b'","index":' + b"%d}\n\n" % index


@attrs.define
class SseWriter:
    """Frames a stream as this route's events: ``audio``, ``timings``, ``captions``, ``error``, ``metrics``, ``done``.

    With ``captions`` (``srt`` or ``vtt``) it counts the cues sent so far, so
    it belongs to one stream.
    """

    chunk_size: int
    message_overhead: int = 0
    captions: str | None = None
    _captioner: SentenceCaptions | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self._captioner = SentenceCaptions(self.captions) if self.captions is not None else None

    def audio(self, piece: bytes, index: int) -> bytes:
        return sse_audio_event(piece, index)

    def timings(self, timings: SentenceTimings) -> bytes:
        event = sse_event("timings", timings.to_dict())
        if self._captioner is None:
            return event
        return event + sse_event("captions", self._captioner.for_sentence(timings))

    def error(self, error: StreamError) -> bytes:
        return sse_event("error", {"code": error.code, "message": error.message})

    def finished(self, metrics: StreamMetrics) -> Sequence[bytes]:
        return (sse_event("metrics", metrics.to_dict()), sse_event("done", {"status": "complete"}))


@blueprint.get("/v1/tts/stream-sse")
async def stream_sse() -> Any:
    settings = current_settings()
    params = parse_query_params(SseParams, request.args.to_dict(flat=True), max_text_chars=settings.max_text_chars)
    service = current_service()
    job = service.job(params)
    choice = service.encoding(params, job)
    fmt = job.pool.audio_format
    # Raw PCM chunks stay whole frames so each one can be decoded on its own.
    chunk_size = frame_aligned(params.chunk_size, fmt) if choice.output_format == "pcm" else params.chunk_size
    # The body runs after this handler returns, outside the app context, so it
    # gets the app's nursery now.
    nursery: trio.Nursery = current_app.nursery  # type: ignore[attr-defined]
    place = await service.admission.acquire()  # 503 + Retry-After while the status can still say so
    body = relayed_body(
        nursery,
        service,
        job,
        choice,
        place,
        SseWriter(chunk_size, captions=params.captions),
        protocol="sse",
        head=sse_event("format", choice.describe(fmt)),
    )
    place.bind(body)  # a body that never runs still gives its place back
    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # tell nginx not to buffer the stream
        **choice.headers(fmt),
        **ssml_headers(job),
        **cache_headers(job),
        **engine_headers(job),
    }
    response = Response(body, mimetype="text/event-stream", headers=headers)
    response.timeout = None  # Quart's RESPONSE_TIMEOUT would cut long streams
    return response
