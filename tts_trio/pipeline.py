"""The streaming pipeline: text -> sentences -> engine pool -> bounded channel.

:func:`produce_audio` is the producer side of every stream. It runs in the
stream's own nursery, synthesizes one sentence at a time through the pool
and sends :class:`~tts_trio.audio.AudioChunk` items into a bounded channel
that the protocol (REST, SSE, WebSocket) drains. When the stream's cancel
scope is cancelled (stop, disconnect, shutdown) the pool stops the engine;
when the protocol closes its receiving end the producer ends at its next
send. Errors are delivered in-band as a :class:`StreamError` after the audio
that was produced before them, so every protocol can report them in order.
"""

from __future__ import annotations

import contextlib
import time

import attrs
import trio

from tts_trio.audio import AudioChunk, WordTiming
from tts_trio.errors import ApiError
from tts_trio.pool import EnginePool
from tts_trio.sentences import iter_sentences

#: Items buffered between the engine and a protocol (each at most ~1 s of audio).
CHANNEL_CAPACITY = 16


@attrs.frozen
class SynthesisJob:
    """What to say and how, after validation and voice resolution."""

    text: str
    voice: str
    max_sentence_chars: int = 400


@attrs.frozen
class StreamError:
    """An error that ended a stream after it started."""

    code: str
    message: str


StreamItem = AudioChunk | StreamError


@attrs.define
class StreamMetrics:
    """Measured while a stream runs; reported in ``metrics`` events."""

    started: float = attrs.field(factory=time.perf_counter)
    first_audio: float | None = None
    finished: float | None = None
    sentences: int = 0
    chunk_count: int = 0
    total_bytes: int = 0
    pcm_bytes: int = 0
    timings: list[WordTiming] = attrs.field(factory=list)

    def audio_sent(self, payload_bytes: int, pcm_bytes: int) -> None:
        """Count one message or event that carried audio to the client."""
        if self.first_audio is None:
            self.first_audio = time.perf_counter()
        self.chunk_count += 1
        self.total_bytes += payload_bytes
        self.pcm_bytes += pcm_bytes

    def finish(self) -> None:
        self.finished = time.perf_counter()

    def to_dict(self, bytes_per_second: int) -> dict[str, object]:
        end = self.finished or time.perf_counter()
        first = None if self.first_audio is None else round(self.first_audio - self.started, 4)
        return {
            "generation_time": round(end - self.started, 4),
            "time_to_first_audio": first,
            "total_bytes": self.total_bytes,
            "chunk_count": self.chunk_count,
            "sentences": self.sentences,
            "audio_duration": round(self.pcm_bytes / bytes_per_second, 3) if bytes_per_second else None,
        }


async def produce_audio(
    pool: EnginePool,
    job: SynthesisJob,
    send: trio.MemorySendChannel[StreamItem],
    metrics: StreamMetrics,
) -> None:
    """Synthesize ``job`` sentence by sentence into ``send``; close it when done.

    Never raises except ``trio.Cancelled``: a client that went away ends the
    stream quietly, an engine failure is sent as a :class:`StreamError`.
    """
    async with send:
        try:
            for index, sentence in enumerate(iter_sentences(job.text, max_chars=job.max_sentence_chars)):
                result = await pool.synthesize(sentence, sentence=index, voice=job.voice, send=send)  # type: ignore[arg-type]
                metrics.sentences += 1
                metrics.timings.extend(result.timings)
                if not result.completed:
                    break
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        except ApiError as error:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await send.send(StreamError(error.code, error.message))


def open_audio_stream(
    nursery: trio.Nursery,
    pool: EnginePool,
    job: SynthesisJob,
) -> tuple[trio.MemoryReceiveChannel[StreamItem], StreamMetrics]:
    """Start :func:`produce_audio` in ``nursery``; return its receiving end and metrics."""
    send, receive = trio.open_memory_channel[StreamItem](CHANNEL_CAPACITY)
    metrics = StreamMetrics()
    nursery.start_soon(produce_audio, pool, job, send, metrics)
    return receive, metrics
