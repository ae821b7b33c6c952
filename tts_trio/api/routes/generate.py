"""``POST /v1/tts/generate``: the whole text as one file, or JSON with word timings.

The audio is a complete file in ``output_format`` (WAV gets exact sizes in
its header). With ``"timestamps": true`` the answer is JSON instead: the
same file base64-encoded, its format, and the start and end of every
sentence and (where the engine reports them) every word. With
``"captions": "srt"`` or ``"vtt"`` that JSON also carries ``captions``, the
whole SubRip or WebVTT document made from the same timings
(:mod:`tts_trio.synthesis.captions`); ``captions`` implies ``timestamps``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs
import trio
from quart import Blueprint, Response, jsonify

from tts_trio.api.json_body import read_json_body
from tts_trio.api.response_body import cache_headers, engine_headers, ssml_headers
from tts_trio.api.state import current_service, current_settings
from tts_trio.audio.encoding import EncodingChoice, encode_complete, is_cheap
from tts_trio.audio.output import EncodedOutput
from tts_trio.synthesis import captions
from tts_trio.synthesis.admission import Place
from tts_trio.synthesis.params import GenerateBodyParams, parse_json_params
from tts_trio.synthesis.pipeline import SentenceTimings, StreamError, StreamMetrics, open_audio_stream
from tts_trio.synthesis.relay import Relay

blueprint = Blueprint("generate", __name__)


@attrs.frozen
class _Collect:
    """Keeps the stream as it comes (PCM and timings) for one file at the end; errors end it."""

    chunk_size: None = None
    message_overhead: int = 0

    def audio(self, piece: bytes, index: int) -> bytes:
        return piece

    def timings(self, timings: SentenceTimings) -> SentenceTimings:
        return timings

    def error(self, error: StreamError) -> None:
        return None

    def finished(self, metrics: StreamMetrics) -> Sequence[bytes | SentenceTimings]:
        return ()


@contextmanager
def _released(place: Place) -> Iterator[None]:
    try:
        yield
    finally:
        place.release()


@blueprint.post("/v1/tts/generate")
async def generate() -> Any:
    settings = current_settings()
    body = await read_json_body(settings.max_body_bytes)
    params = parse_json_params(GenerateBodyParams, body, max_text_chars=settings.max_text_chars)
    service = current_service()
    job = service.job(params)
    choice = service.encoding(params, job)
    fmt = job.pool.audio_format
    pcm: list[bytes] = []
    sentences: list[SentenceTimings] = []
    place = await service.admission.acquire()
    with service.track_stream(job.pool), _released(place):
        async with trio.open_nursery() as nursery:
            receive, metrics = open_audio_stream(nursery, job)
            # The engine's PCM as it is, encoded once at the end (WAV gets exact sizes);
            # the relay's own counts are of no use here, the client gets one file.
            relay = Relay(
                receive, StreamMetrics(), EncodedOutput(fmt, EncodingChoice("pcm", fmt.sample_rate)), _Collect()
            )
            async for frames in relay.batches():
                for frame in frames:
                    if isinstance(frame, SentenceTimings):
                        sentences.append(frame)
                    else:
                        pcm.append(frame)
    if relay.failure is not None:
        raise relay.failure.to_api_error()
    audio = b"".join(pcm)
    if is_cheap(choice, fmt):
        payload = encode_complete(fmt, choice, audio)
    else:
        payload = await trio.to_thread.run_sync(encode_complete, fmt, choice, audio)
    metrics.audio_sent(len(payload))
    metrics.finish()
    service.stream_finished(metrics, "rest")
    headers = {**choice.headers(fmt), **ssml_headers(job), **cache_headers(job), **engine_headers(job)}
    headers["X-Audio-Duration"] = f"{metrics.audio_seconds:.3f}"
    headers["X-Generation-Time"] = f"{metrics.to_dict()['generation_time']}"
    if params.timestamps or params.captions is not None:
        answer: dict[str, Any] = {
            "audio": base64.b64encode(payload).decode(),
            "format": choice.describe(fmt),
            "duration": round(metrics.audio_seconds, 4),
            "sentences": [sentence.to_dict() for sentence in sentences],
            "words": [word.to_dict() for sentence in sentences for word in sentence.words],
        }
        if params.captions is not None:
            answer["captions"] = captions.render(params.captions, captions.cues(sentences))
        response = jsonify(answer)
        response.headers.update({**ssml_headers(job), **cache_headers(job), **engine_headers(job)})
        return response
    return Response(payload, mimetype=choice.content_type, headers=headers)
