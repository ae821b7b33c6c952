"""``GET /v1/tts/stream-sse``: audio as Server-Sent Events while it is synthesized.

Events, in order: ``format`` (how to decode the audio), then ``audio``
events ``{"chunk": base64, "index": n}`` (n from 1, each decoded chunk at
most ``chunk_size`` bytes) with a ``timings`` event after each sentence's
audio, then ``metrics`` and ``done``; or ``error`` if the engine fails
mid-stream, or with code ``shutting_down`` if the server stops before the
stream could finish. The decoded chunks joined in order are one continuous file in
``output_format``: with ``wav`` (the default) the first chunk starts with an
open-ended WAV header, so the joined chunks play as a ``.wav`` file.

The producer runs in the app's nursery under the stream's own cancel scope;
the body generator only reads the channel. When the client disconnects the
generator is closed, its ``finally`` cancels the scope (synchronously), and
the pool stops the engine.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import trio
from quart import Blueprint, Response, current_app, request

from tts_trio.api.state import current_service, current_settings
from tts_trio.audio.encoding import EncodingChoice
from tts_trio.audio.formats import AudioChunk, frame_aligned, split_chunks
from tts_trio.audio.output import EncodedOutput
from tts_trio.synthesis.admission import Place
from tts_trio.synthesis.params import SseParams, parse_query_params
from tts_trio.synthesis.pipeline import DetachedStream, StreamError, StreamMetrics, SynthesisJob
from tts_trio.synthesis.service import TtsService

blueprint = Blueprint("sse", __name__)


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def audio_events(data: bytes, chunk_size: int, first_index: int, metrics: StreamMetrics) -> tuple[bytes, int]:
    """``audio`` events for ``data`` (one write for all: per-event writes cost more than synthesis)."""
    events = []
    index = first_index
    for piece in split_chunks(data, chunk_size):
        index += 1
        chunk = base64.b64encode(piece).decode()
        events.append(f'event: audio\ndata: {{"chunk":"{chunk}","index":{index}}}\n\n')
        metrics.audio_sent(len(piece))
    return "".join(events).encode(), index


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
    body = _sse_body(nursery, service, job, choice, chunk_size, place)
    place.bind(body)  # a body that never runs still gives its place back
    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # tell nginx not to buffer the stream
        **choice.headers(fmt),
    }
    response = Response(body, mimetype="text/event-stream", headers=headers)
    response.timeout = None  # Quart's RESPONSE_TIMEOUT would cut long streams
    return response


async def _sse_body(
    nursery: trio.Nursery,
    service: TtsService,
    job: SynthesisJob,
    choice: EncodingChoice,
    chunk_size: int,
    place: Place,
) -> AsyncIterator[bytes]:
    stream = DetachedStream.start(nursery, job)
    metrics = stream.metrics
    output = EncodedOutput(job.pool.audio_format, choice)
    index = 0
    completed = False
    with service.track_stream(job.pool):
        try:
            yield sse_event("format", choice.describe(job.pool.audio_format))
            async for item in stream.receive:
                if isinstance(item, StreamError):
                    completed = True  # ended by the server, not cancelled by the client
                    yield sse_event("error", {"code": item.code, "message": item.message})
                    return
                if isinstance(item, AudioChunk):
                    events, index = audio_events(await output.encode(item.pcm), chunk_size, index, metrics)
                    if events:
                        yield events
                else:
                    yield sse_event("timings", item.to_dict())
            events, index = audio_events(await output.finish(), chunk_size, index, metrics)
            if events:
                yield events
            metrics.finish()
            completed = True
            service.stream_finished(metrics, "sse")
            yield sse_event("metrics", metrics.to_dict())
            yield sse_event("done", {"status": "complete"})
        finally:
            if not completed:
                service.stream_cancelled("disconnect")
            stream.close()
            place.release()
