"""The streaming pipeline: text -> sentences -> engine pool -> bounded channel.

:func:`produce_audio` is the producer side of every stream. It runs in the
stream's own nursery, synthesizes one sentence at a time through the pool
and sends items into a bounded channel that
:class:`~tts_trio.synthesis.relay.Relay` drains for every protocol (REST,
SSE, WebSocket, OpenAI): :class:`~tts_trio.audio.formats.AudioChunk` for audio and,
after each sentence's audio, :class:`SentenceTimings` with the sentence's
place in the stream and its words. When the stream's cancel scope is
cancelled (stop, disconnect, shutdown) the pool stops the engine; when the
protocol closes its receiving end the producer ends at its next send.
Errors are delivered in-band as a :class:`StreamError` after the audio that
was produced before them, so every protocol can report them in order.

Sentences come either from a complete text (split lazily) or from an async
iterator, which is how text streamed in by an LLM is spoken while it is
still being written.

An SSML text (:mod:`tts_trio.synthesis.ssml`) arrives as a job's
:attr:`SynthesisJob.script`: :class:`Spoken` fragments, each split into
sentences lazily as a plain text is and each with its own engine voice
parameters (a ``prosody`` rate), and :class:`Silence` (a ``break``, a
paragraph's pause), which is sent as zero samples at the engine's rate
through the same channel, so it is encoded like any audio and takes its
place in the timings: the next sentence starts after it. Silence never
touches the pool; it is sent like audio, so a stopped or cut stream ends
at its next send exactly as between sentences.

The phrase cache (:mod:`tts_trio.synthesis.cache`): a job built with a
:class:`~tts_trio.synthesis.cache.CacheLookup` (``job.cache``, decided when
the service built the job) is either a hit, whose recorded items are
replayed into the channel without touching the pool (each send is a
checkpoint, so a stop or the drain cancels a replay as it does a
synthesis), or a miss, whose items are recorded as they are sent and
committed only when the stream completed normally. Text streamed in
(``sentences``) is never cached. ``metrics.cache`` says which it was.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar, cast

import attrs
import trio

from tts_trio.audio.formats import AudioChunk, AudioFormat, WordTiming
from tts_trio.engines.pool import EnginePool
from tts_trio.errors import ApiError, ShuttingDown, error_for_code
from tts_trio.synthesis.cache import CacheEntry, CacheLookup, CacheState, Recorder
from tts_trio.synthesis.drain import Shutdown
from tts_trio.synthesis.fragments import first_fragment
from tts_trio.synthesis.respelling import Respeller, Respelling
from tts_trio.synthesis.sentences import iter_sentences

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Items buffered between the engine and a protocol (each at most ~1 s of audio).
CHANNEL_CAPACITY = 16


@attrs.frozen
class Spoken:
    """A fragment of an SSML text, spoken with its own voice parameters (split into sentences when spoken)."""

    text: str
    #: The engine's voice parameters for this fragment, complete (nothing may carry over).
    voice_parameters: dict[str, Any]


@attrs.frozen
class Silence:
    """A pause in an SSML text: this many seconds of zero samples."""

    seconds: float


ScriptItem = Spoken | Silence


@attrs.frozen
class SynthesisJob:
    """What to say and how, after validation and voice resolution, on which engine."""

    pool: EnginePool
    text: str
    #: The engine's voice (a name or a reference file); None keeps the engine's own.
    voice: str | None
    max_sentence_chars: int = 400
    voice_parameters: dict[str, Any] = attrs.field(factory=dict)
    #: The server's drain, which cuts the stream short at its deadline. Required:
    #: a stream of its own would never be cut, and the drain would wait it out.
    shutdown: Shutdown = attrs.field(kw_only=True)
    #: Speak a long first sentence in two parts (see :mod:`tts_trio.synthesis.fragments`).
    cut_first_sentence: bool = attrs.field(default=False, kw_only=True)
    #: What an SSML text says, in order; None for a plain text (``text`` is split into sentences).
    script: tuple[ScriptItem, ...] | None = attrs.field(default=None, kw_only=True)
    #: What an SSML text asked for that could not be done as asked (reported with the metrics).
    warnings: tuple[str, ...] = attrs.field(default=(), kw_only=True)
    #: Part of the cache key for what a later stage changes in the text (e.g. a lexicon's version);
    #: set it before the service looks the job up (:meth:`TtsService.cache_lookup`).
    extra_key: str = attrs.field(default="", kw_only=True)
    #: The job's place in the phrase cache; None: not cached (the cache is off).
    cache: CacheLookup | None = attrs.field(default=None, kw_only=True)
    #: Words the lexicon replaced, in text order: their timings are reported as the original words.
    respellings: tuple[Respelling, ...] = attrs.field(default=(), kw_only=True)
    #: The lexicon for text streamed in (``sentences``), applied to each sentence as it comes.
    pronounce: Callable[[str], str] | None = attrs.field(default=None, kw_only=True, eq=False)

    @property
    def cache_state(self) -> CacheState:
        """``hit`` (replayed from the cache), ``miss`` (synthesized and recorded) or ``off``."""
        return "off" if self.cache is None else self.cache.state


@attrs.frozen
class SentenceTimings:
    """Where one sentence sits in the stream, with its words (times in seconds)."""

    index: int
    text: str
    start: float
    end: float
    words: tuple[WordTiming, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "sentence": self.index,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "words": [word.to_dict() for word in self.words],
        }


@attrs.frozen
class StreamError:
    """An error that ended a stream after it started."""

    code: str
    message: str

    def to_api_error(self) -> ApiError:
        """The HTTP error for a response whose headers are not sent yet (503, same code)."""
        details = {"retry_after": 1} if self.code == ShuttingDown.code else {}
        return error_for_code(self.code, self.message, **details)


StreamItem = AudioChunk | SentenceTimings | StreamError


@attrs.define
class StreamMetrics:
    """Measured while a stream runs; reported in ``metrics`` events."""

    started: float = attrs.field(factory=time.perf_counter)
    first_audio: float | None = None
    finished: float | None = None
    sentences: int = 0
    chunk_count: int = 0
    total_bytes: int = 0
    audio_seconds: float = 0.0
    #: The job's SSML warnings; in :meth:`to_dict` only when there are any.
    warnings: tuple[str, ...] = ()
    #: ``hit``, ``miss`` or ``off`` (the phrase cache; set when the producer starts, not in :meth:`to_dict`).
    cache: CacheState = "off"

    def audio_sent(self, payload_bytes: int) -> None:
        """Count one message or event that carried audio to the client."""
        if self.first_audio is None:
            self.first_audio = time.perf_counter()
        self.chunk_count += 1
        self.total_bytes += payload_bytes

    def finish(self) -> None:
        self.finished = time.perf_counter()

    def to_dict(self) -> dict[str, object]:
        end = self.finished or time.perf_counter()
        first = None if self.first_audio is None else round(self.first_audio - self.started, 4)
        summary: dict[str, object] = {
            "generation_time": round(end - self.started, 4),
            "time_to_first_audio": first,
            "total_bytes": self.total_bytes,
            "chunk_count": self.chunk_count,
            "sentences": self.sentences,
            "audio_duration": round(self.audio_seconds, 3),
        }
        if self.warnings:
            summary["ssml_warnings"] = list(self.warnings)
        return summary


async def _each(source: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        for item in source:
            yield item


async def _plain_steps(
    sentences: Iterable[str] | AsyncIterable[str | ScriptItem], job: SynthesisJob
) -> AsyncIterator[Spoken | Silence]:
    """The sentences of a plain text (or of text streamed in), all with the job's voice parameters.

    Text streamed into a context may also bring the script of a whole SSML
    document (its own voice parameters and silences, the lexicon applied):
    it is spoken as a job's script is.
    """
    cut = job.cut_first_sentence
    pronounce = job.pronounce
    async for item in _each(sentences):
        if not isinstance(item, str):
            for step in _script_steps((item,), job, cut=cut):
                yield step
            cut = cut and isinstance(item, Silence)
            continue
        parts = [item]
        if cut:
            cut = False
            head, rest = first_fragment(item)
            parts = [head, rest] if rest else [head]
        for part in parts:
            yield Spoken(part if pronounce is None else pronounce(part), job.voice_parameters)


def _script_steps(
    script: Iterable[ScriptItem], job: SynthesisJob, *, cut: bool | None = None
) -> Iterator[Spoken | Silence]:
    """An SSML script sentence by sentence, split lazily; the first sentence cut as a plain text's is."""
    cut = job.cut_first_sentence if cut is None else cut
    for item in script:
        if isinstance(item, Silence):
            yield item
            continue
        for sentence in iter_sentences(item.text, max_chars=job.max_sentence_chars):
            if cut:
                cut = False
                head, rest = first_fragment(sentence)
                yield Spoken(head, item.voice_parameters)
                if rest:
                    yield Spoken(rest, item.voice_parameters)
            else:
                yield Spoken(sentence, item.voice_parameters)


class _Sink(Protocol):
    """Where a stream's items go: the channel, or the channel through a :class:`_Recording`."""

    def send_nowait(self, value: StreamItem) -> None: ...

    async def send(self, value: StreamItem) -> None: ...


class _Recording:
    """The channel's sending end, keeping every audio piece and timing that went through for the cache.

    The pool sends into it as into the channel (``send_nowait`` from its
    delivery callback, ``send`` for what did not fit); an item is kept only
    once the channel took it, so the recording is the channel's order.
    """

    def __init__(self, send: trio.MemorySendChannel[StreamItem], recorder: Recorder) -> None:
        self._send = send
        self._recorder = recorder

    def send_nowait(self, value: StreamItem) -> None:
        self._send.send_nowait(value)
        if not isinstance(value, StreamError):
            self._recorder.add(value)

    async def send(self, value: StreamItem) -> None:
        await self._send.send(value)
        if not isinstance(value, StreamError):
            self._recorder.add(value)


async def _send_silence(send: _Sink, seconds: float, fmt: AudioFormat, sentence: int) -> int:
    """Send ``seconds`` of zero samples in pieces of at most one second; return the bytes sent."""
    total = round(seconds * fmt.sample_rate) * fmt.frame_size
    most = fmt.sample_rate * fmt.frame_size
    remaining = total
    while remaining > 0:
        size = min(remaining, most)
        await send.send(AudioChunk(bytes(size), sentence))
        remaining -= size
    return total


async def produce_audio(
    job: SynthesisJob,
    send: trio.MemorySendChannel[StreamItem],
    metrics: StreamMetrics,
    sentences: Iterable[str] | AsyncIterable[str | ScriptItem] | None = None,
) -> None:
    """Synthesize ``job`` sentence by sentence into ``send``; close it when done.

    ``sentences`` replaces splitting ``job.text`` (or its SSML script) when the
    text arrives over time. Never raises except ``trio.Cancelled``: a client that went away
    ends the stream quietly, an engine failure is sent as a :class:`StreamError`,
    and so is a stream cut short because the server drains (``shutting_down``).
    """
    pool = job.pool
    fmt: AudioFormat = pool.audio_format
    bytes_per_second = fmt.sample_rate * fmt.frame_size
    steps: AsyncIterable[Spoken | Silence] | Iterable[Spoken | Silence]
    if sentences is not None:
        steps = _plain_steps(sentences, job)
    elif job.script is not None:
        steps = _script_steps(job.script, job)
    else:
        steps = _plain_steps(iter_sentences(job.text, max_chars=job.max_sentence_chars), job)
    metrics.warnings = job.warnings
    # Text streamed in is never cached: the job's text is not what is spoken.
    lookup = job.cache if sentences is None else None
    metrics.cache = "off" if lookup is None else lookup.state
    shutdown = job.shutdown
    async with send:
        with shutdown.stream() as cut:
            try:
                if lookup is not None:
                    lookup.cache.count(lookup.state)
                if lookup is not None and lookup.entry is not None:
                    await _replay(lookup.entry, send, metrics, bytes_per_second)
                else:
                    recorder = None if lookup is None else lookup.recorder()
                    sink: _Sink = send if recorder is None else _Recording(send, recorder)
                    completed = await _synthesize(job, steps, sink, metrics, fmt)
                    if completed and recorder is not None:
                        recorder.commit(metrics.audio_seconds, metrics.sentences)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            except ApiError as error:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await send.send(StreamError(error.code, error.message))
            except Exception:
                # Nothing may escape into the nursery this runs in (for SSE, the app's own).
                log.exception("a stream failed unexpectedly")
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await send.send(StreamError("synthesis_failed", "the stream failed; see the server log"))
        if cut.cancelled_caught:
            shutdown.on_cut()
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await send.send(StreamError("shutting_down", "the server is shutting down; the stream was cut short"))


async def _synthesize(
    job: SynthesisJob,
    steps: AsyncIterable[Spoken | Silence] | Iterable[Spoken | Silence],
    send: _Sink,
    metrics: StreamMetrics,
    fmt: AudioFormat,
) -> bool:
    """Speak ``steps`` through the pool into ``send``; True when every sentence completed."""
    pool = job.pool
    bytes_per_second = fmt.sample_rate * fmt.frame_size
    # The pool only calls send_nowait and send, which a _Recording has too.
    channel = cast("trio.MemorySendChannel[StreamItem]", send)
    position = 0.0
    index = 0
    respell = Respeller(job.respellings)
    async for step in _each(steps):
        if isinstance(step, Silence):
            position += await _send_silence(send, step.seconds, fmt, index) / bytes_per_second
            metrics.audio_seconds = position
            continue
        sentence = step.text
        result = await pool.synthesize(
            sentence, sentence=index, voice=job.voice, send=channel, voice_parameters=step.voice_parameters
        )
        duration = result.pcm_bytes / bytes_per_second
        words = respell(tuple(word.shifted(position) for word in result.words))
        timings = SentenceTimings(index, sentence, round(position, 4), round(position + duration, 4), words)
        position += duration
        metrics.sentences += 1
        metrics.audio_seconds = position
        await send.send(timings)
        index += 1
        if not result.completed:
            return False
    return True


async def _replay(
    entry: CacheEntry, send: trio.MemorySendChannel[StreamItem], metrics: StreamMetrics, bytes_per_second: int
) -> None:
    """Send a cached stream's items as a fresh synthesis sent them; no engine, no slot.

    Every ``send`` is a checkpoint (a memory channel's send yields even when
    there is room), so a stop, a disconnect or the drain cancels a replay
    between any two pieces.
    """
    audio_bytes = 0
    for item in entry.items:
        await send.send(item)
        if isinstance(item, AudioChunk):
            audio_bytes += len(item.pcm)
            metrics.audio_seconds = audio_bytes / bytes_per_second
        else:
            metrics.sentences += 1
    metrics.audio_seconds = entry.audio_seconds
    metrics.sentences = entry.sentences


def open_audio_stream(
    nursery: trio.Nursery,
    job: SynthesisJob,
    sentences: Iterable[str] | AsyncIterable[str | ScriptItem] | None = None,
) -> tuple[trio.MemoryReceiveChannel[StreamItem], StreamMetrics]:
    """Start :func:`produce_audio` in ``nursery``; return its receiving end and metrics."""
    send, receive = trio.open_memory_channel[StreamItem](CHANNEL_CAPACITY)
    metrics = StreamMetrics()
    nursery.start_soon(produce_audio, job, send, metrics, sentences)
    return receive, metrics


@attrs.define
class DetachedStream:
    """A stream whose producer runs in a long-lived nursery (the app's), for response bodies.

    A streaming response body is an async generator that runs after its
    handler returned, so it cannot own a nursery; the producer runs in the
    app's nursery under this stream's own cancel scope instead. The body must
    call :meth:`close` in its ``finally`` (it is synchronous, as cleanup of a
    closed generator must be): that cancels the producer, which stops the
    engine.
    """

    receive: trio.MemoryReceiveChannel[StreamItem]
    metrics: StreamMetrics
    scope: trio.CancelScope

    @classmethod
    def start(cls, nursery: trio.Nursery, job: SynthesisJob) -> DetachedStream:
        send, receive = trio.open_memory_channel[StreamItem](CHANNEL_CAPACITY)
        stream = cls(receive, StreamMetrics(), trio.CancelScope())

        async def run() -> None:
            with stream.scope:
                await produce_audio(job, send, stream.metrics)

        nursery.start_soon(run)
        return stream

    def close(self) -> None:
        self.scope.cancel()
        self.receive.close()
