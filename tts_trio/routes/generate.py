"""``POST /v1/tts/generate``: the whole text as one WAV (or raw PCM) response."""

from __future__ import annotations

from typing import Any

import trio
from quart import Blueprint, Response

from tts_trio.app import current_service, current_settings
from tts_trio.audio import wav_file
from tts_trio.errors import SynthesisFailed
from tts_trio.params import GenerateParams, parse_json_params
from tts_trio.pipeline import StreamError, open_audio_stream
from tts_trio.routes.json_body import read_json_body

blueprint = Blueprint("generate", __name__)


@blueprint.post("/v1/tts/generate")
async def generate() -> Any:
    settings = current_settings()
    body = await read_json_body(settings.max_body_bytes)
    params = parse_json_params(GenerateParams, body, max_text_chars=settings.max_text_chars)
    service = current_service()
    job = service.job(params)
    fmt = service.pool.audio_format
    pcm = bytearray()
    failure: StreamError | None = None
    with service.track_stream():
        async with trio.open_nursery() as nursery:
            receive, metrics = open_audio_stream(nursery, service.pool, job)
            async with receive:
                async for item in receive:
                    if isinstance(item, StreamError):
                        failure = item
                        break
                    pcm += item.pcm
    if failure is not None:
        raise SynthesisFailed(failure.message)
    payload = wav_file(fmt, bytes(pcm)) if params.output_format == "wav" else bytes(pcm)
    metrics.audio_sent(len(payload), len(pcm))
    metrics.finish()
    headers = fmt.headers(params.output_format)
    headers["X-Audio-Duration"] = f"{fmt.duration(len(pcm)):.3f}"
    headers["X-Generation-Time"] = f"{metrics.to_dict(fmt.sample_rate * fmt.frame_size)['generation_time']}"
    # Raw PCM is little-endian, which audio/L16 (big-endian by RFC 2586) is not.
    mimetype = "audio/wav" if params.output_format == "wav" else "application/octet-stream"
    return Response(payload, mimetype=mimetype, headers=headers)
