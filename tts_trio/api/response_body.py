"""A streaming HTTP response body over the relay, shared by the SSE and OpenAI routes.

A response body is an async generator that runs after its handler
returned, so it cannot own a nursery: the producer runs in the app's
nursery under the stream's own cancel scope (:class:`DetachedStream`), and
this generator only reads the relay's batches, one body write per batch.
Its ``finally`` runs when the client goes away too: it cancels the
producer (which stops the engine), counts the cancellation, and gives the
admission place back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from tts_trio.audio.encoding import EncodingChoice
from tts_trio.audio.output import EncodedOutput
from tts_trio.synthesis.admission import Place
from tts_trio.synthesis.pipeline import DetachedStream, StreamMetrics, SynthesisJob
from tts_trio.synthesis.relay import Relay, Writer
from tts_trio.synthesis.service import TtsService


async def relayed_body(
    nursery: trio.Nursery,
    service: TtsService,
    job: SynthesisJob,
    choice: EncodingChoice,
    place: Place,
    writer: Writer[bytes],
    *,
    protocol: str,
    head: bytes = b"",
) -> AsyncIterator[bytes]:
    """Encoded audio as it is synthesized, framed by ``writer``; ``head`` goes out first."""
    stream = DetachedStream.start(nursery, job)
    relay = Relay(stream.receive, stream.metrics, EncodedOutput(job.pool.audio_format, choice), writer)
    with service.track_stream(job.pool):
        try:
            if head:
                yield head
            async for frames in relay.batches():
                if relay.completed and relay.failure is None:
                    service.stream_finished(stream.metrics, protocol)
                # One body write per batch: per-event writes cost more than synthesis.
                yield b"".join(frames)
        finally:
            if not relay.completed:  # cancelled by the client, not ended by the server
                service.stream_cancelled("disconnect")
            stream.close()
            place.release()


def ssml_headers(job: SynthesisJob) -> dict[str, str]:
    """``X-SSML-Warnings`` when the job's SSML had something the engine cannot do (e.g. ``<phoneme>``).

    The warnings name elements from the client's own text, so the header is
    kept to printable ASCII (no CR/LF can reach the header block) and bounded.
    """
    if not job.warnings:
        return {}
    text = "; ".join(job.warnings).encode("ascii", "replace").decode()
    return {"X-SSML-Warnings": "".join(ch if " " <= ch <= "~" else "?" for ch in text)[:1000]}


def engine_headers(job: SynthesisJob) -> dict[str, str]:
    """``X-Engine``: the engine that speaks (the current one, or a resident one the request named)."""
    return {"X-Engine": job.pool.name}


def cache_headers(source: StreamMetrics | SynthesisJob) -> dict[str, str]:
    """``X-Cache: hit`` or ``miss`` (the phrase cache, docs/cache.md); nothing when the cache is off.

    A job knows before its stream starts (decided when it was built), so a
    streamed response can send it; ``metrics.cache`` says the same once the producer started.
    """
    state = source.cache_state if isinstance(source, SynthesisJob) else source.cache
    return {} if state == "off" else {"X-Cache": state}
