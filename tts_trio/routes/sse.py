"""``GET /v1/tts/stream-sse``: audio as Server-Sent Events while it is synthesized.

Events, in order: ``format`` (how to decode the audio), ``audio`` with
``{"chunk": base64, "index": n}`` (n from 1, each decoded chunk at most
``chunk_size`` bytes), then ``metrics`` and ``done``; or ``error`` if the
engine fails mid-stream. With ``output_format=wav`` (the default) the first
chunk starts with an open-ended WAV header, so the decoded chunks joined
together are a playable ``.wav`` file; ``pcm`` sends bare samples.

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

from tts_trio.app import current_service, current_settings
from tts_trio.audio import AudioFormat, frame_aligned, split_chunks, streaming_wav_header
from tts_trio.params import SseParams, parse_query_params
from tts_trio.pipeline import CHANNEL_CAPACITY, StreamError, StreamItem, StreamMetrics, SynthesisJob, produce_audio
from tts_trio.service import TtsService

blueprint = Blueprint("sse", __name__)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@blueprint.get("/v1/tts/stream-sse")
async def stream_sse() -> Any:
    settings = current_settings()
    params = parse_query_params(SseParams, request.args.to_dict(flat=True), max_text_chars=settings.max_text_chars)
    service = current_service()
    job = service.job(params)
    fmt = service.pool.audio_format
    # The body runs after this handler returns, outside the app context, so it
    # gets the app's nursery now.
    nursery: trio.Nursery = current_app.nursery  # type: ignore[attr-defined]
    body = _sse_body(nursery, service, job, fmt, params.output_format, frame_aligned(params.chunk_size, fmt))
    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # tell nginx not to buffer the stream
        **fmt.headers(params.output_format),
    }
    response = Response(body, mimetype="text/event-stream", headers=headers)
    response.timeout = None  # Quart's RESPONSE_TIMEOUT would cut long streams
    return response


async def _sse_body(
    nursery: trio.Nursery, service: TtsService, job: SynthesisJob, fmt: AudioFormat, output_format: str, chunk_size: int
) -> AsyncIterator[bytes]:
    send, receive = trio.open_memory_channel[StreamItem](CHANNEL_CAPACITY)
    metrics = StreamMetrics()
    scope = trio.CancelScope()

    async def run_stream() -> None:
        with scope:
            await produce_audio(service.pool, job, send, metrics)

    nursery.start_soon(run_stream)
    pending_header = streaming_wav_header(fmt) if output_format == "wav" else b""
    index = 0
    with service.track_stream():
        try:
            yield _event("format", fmt.describe(output_format))
            async for item in receive:
                if isinstance(item, StreamError):
                    yield _event("error", {"code": item.code, "message": item.message})
                    return
                header_left = len(pending_header)
                data = pending_header + item.pcm
                pending_header = b""
                events = []
                for piece in split_chunks(data, chunk_size):
                    index += 1
                    chunk = base64.b64encode(piece).decode()
                    events.append(f'event: audio\ndata: {{"chunk":"{chunk}","index":{index}}}\n\n')
                    metrics.audio_sent(len(piece), max(0, len(piece) - header_left))
                    header_left = max(0, header_left - len(piece))
                # One write per engine chunk: per-event writes cost more than synthesis.
                yield "".join(events).encode()
            metrics.finish()
            yield _event("metrics", metrics.to_dict(fmt.sample_rate * fmt.frame_size))
            yield _event("done", {"status": "complete"})
        finally:
            scope.cancel()
            receive.close()
