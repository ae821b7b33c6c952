"""One Wyoming connection: a reader loop, one task that synthesizes, sends under a lock.

Events a client may send:

* ``describe`` → ``info`` (:mod:`.info`); ``ping`` → ``pong``.
* ``synthesize`` (text, optional voice) → ``audio-start``, ``audio-chunk``
  events (raw PCM at the engine's rate) as each sentence is synthesized,
  ``audio-stop``.
* ``synthesize-start`` (optional voice), ``synthesize-chunk`` (text) ...,
  ``synthesize-stop``: sentences are spoken as soon as their end is certain
  (:class:`~tts_trio.synthesis.sentences.SentenceAssembler`, as for
  WebSocket contexts), in one ``audio-start`` … ``audio-stop``, then
  ``synthesize-stopped``. A ``synthesize`` during a stream is ignored: Home
  Assistant sends one for servers that do not stream.

Work runs one at a time in order; a ``synthesize`` while one runs waits
(up to ``ws_max_queued`` of them). Each takes an admission place and counts
as an active stream like every HTTP stream, and is cancelled (the engine
stopped) when the client disconnects. Errors, a refused place, a malformed
or unknown event, are answered with an ``error`` event (``text``, ``code``)
and the connection goes on, unless the event's framing was lost
(:mod:`.framing`): then the connection is closed after it. When the server
drains, the connection is closed as soon as its work has ended.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import attrs
import trio
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped, SynthesizeVoice

from tts_trio.api.state import AppState
from tts_trio.audio.encoding import EncodingChoice
from tts_trio.audio.formats import AudioFormat, frame_aligned
from tts_trio.audio.output import EncodedOutput
from tts_trio.errors import ApiError, ContextIdle, InvalidParameter, QueueFull, TextTooLong
from tts_trio.settings import Settings
from tts_trio.synthesis.admission import Place
from tts_trio.synthesis.params import GenerateParams, clean_text, parse_json_params
from tts_trio.synthesis.pipeline import SentenceTimings, StreamError, StreamMetrics, SynthesisJob, open_audio_stream
from tts_trio.synthesis.relay import Relay
from tts_trio.synthesis.sentences import SentenceAssembler
from tts_trio.synthesis.service import TtsService
from tts_trio.wyoming.framing import EventReader, FrameLimits, MalformedEvent, encode_event
from tts_trio.wyoming.info import describe, voice_id_for

log = logging.getLogger(__name__)

#: The protocol's label in metrics.
PROTOCOL = "wyoming"
#: Samples per ``audio-chunk`` event at most (what wyoming's own servers send).
SAMPLES_PER_CHUNK = 1024
#: How long, and how many bytes, a connection closed for broken framing skips of what still comes.
LINGER_SECONDS = 1.0
LINGER_BYTES = 8 << 20
#: The event types this server answers; others are counted as ``unknown`` (bounded label values).
_KNOWN = frozenset({"describe", "ping", "synthesize", "synthesize-start", "synthesize-chunk", "synthesize-stop"})


class ClientGone(Exception):
    """The client closed the connection, broke it, or read nothing for ``send_timeout``."""


@attrs.define(eq=False)
class _Work:
    """One synthesis the client asked for: a whole text, or (streaming) sentences as they arrive."""

    job: SynthesisJob
    sentences: trio.MemoryReceiveChannel[str] | None = None
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    #: Why it was cancelled, for metrics: the client left, unless the server stopped it (too much text).
    cancel_cause: str = "disconnect"

    @property
    def streaming(self) -> bool:
        return self.sentences is not None


@attrs.define(eq=False)
class _Incoming:
    """The text side of a streaming synthesis, fed by ``synthesize-chunk`` events."""

    work: _Work
    sentences: trio.MemorySendChannel[str]
    assembler: SentenceAssembler
    received_chars: int = 0


@attrs.frozen
class _ChunkWriter:
    """The relay's framing for Wyoming: each piece of PCM is one ``audio-chunk`` event."""

    fmt: AudioFormat
    chunk_size: int
    message_overhead: int = 0

    def audio(self, piece: bytes, index: int) -> bytes:
        fmt = self.fmt
        chunk = AudioChunk(rate=fmt.sample_rate, width=fmt.sample_width, channels=fmt.channels, audio=piece)
        return encode_event(chunk.event())

    def timings(self, timings: SentenceTimings) -> None:
        return None

    def error(self, error: StreamError) -> None:
        return None  # sent after audio-stop, by the session

    def finished(self, metrics: StreamMetrics) -> tuple[bytes, ...]:
        return ()


class WyomingSession:
    """One connection, from its first event to its close."""

    def __init__(self, stream: trio.abc.HalfCloseableStream, state: AppState) -> None:
        self.stream = stream
        self.state = state
        self.settings = state.settings
        self.reader = EventReader(stream, FrameLimits.for_text(self.settings.max_text_chars))
        self._send_lock = trio.Lock()
        # Bounded by ws_max_queued (checked before each send), not by the channel.
        self._work_send, self._work_receive = trio.open_memory_channel[_Work](math.inf)
        self._pending = 0
        self._incoming: _Incoming | None = None
        #: Replaced each time work ends, so the drain can wait for the connection to go idle.
        self._work_ended = trio.Event()

    async def run(self) -> None:
        """Serve the connection until the client leaves, its framing breaks, or the server drains."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._run_work)
                nursery.start_soon(self._close_when_drained, nursery.cancel_scope)
                await self._read_events()
                nursery.cancel_scope.cancel()  # the client left: what it asked for is cancelled
        except* ClientGone:
            pass
        finally:
            with trio.CancelScope(shield=True):
                await self.stream.aclose()

    # -- incoming ---------------------------------------------------------------
    async def _read_events(self) -> None:
        while True:
            try:
                event = await self.reader.receive()
            except MalformedEvent as malformed:
                self._count("malformed", "malformed_event")
                await self._send(Error(text=malformed.message, code="malformed_event").event())
                if malformed.fatal:
                    await self._linger()
                    return
                continue
            if event is None:
                return
            try:
                await self._handle(event)
            except ApiError as error:
                self._count(event.type, error.code)
                await self._send(Error(text=error.message, code=error.code).event())
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                self._count(event.type, "malformed_event")
                text = f"malformed {event.type[:40]!r} event: {error!r}"[:300]
                await self._send(Error(text=text, code="malformed_event").event())
            else:
                self._count(event.type, "ok")

    async def _linger(self) -> None:
        """Before closing a connection whose framing broke: end our side, skip what the client still sends.

        Closing a socket with unread bytes makes the kernel reset the
        connection, and a reset can discard the error event before the
        client read it. Bounded in time and bytes, so a client cannot hold
        the connection open this way.
        """
        with (
            trio.move_on_after(LINGER_SECONDS),
            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
        ):
            async with self._send_lock:
                await self.stream.send_eof()
            skipped = 0
            while skipped < LINGER_BYTES:
                data = await self.stream.receive_some(65536)
                if not data:
                    return
                skipped += len(data)

    def _count(self, event_type: str, outcome: str) -> None:
        label = event_type if event_type in _KNOWN else "unknown"
        self.state.metrics.requests.labels(PROTOCOL, label, outcome).inc()
        if outcome != "ok":
            self.state.metrics.protocol_errors.labels(PROTOCOL, outcome).inc()

    async def _handle(self, event: Event) -> None:
        if Describe.is_type(event.type):
            await self._send(describe(self.state.require_service()).event())
        elif Ping.is_type(event.type):
            await self._send(Pong(text=Ping.from_event(event).text).event())
        elif Synthesize.is_type(event.type):
            if self._incoming is not None:
                return  # Home Assistant's copy of a streamed text, for servers that do not stream
            request = Synthesize.from_event(event)
            if not isinstance(request.text, str):
                raise InvalidParameter("text: a string is required", field="text")
            self._enqueue(_Work(self._job(request.text, request.voice)))
        elif SynthesizeStart.is_type(event.type):
            if self._incoming is not None:
                raise InvalidParameter("a streaming synthesis is already open; send synthesize-stop first")
            voice = SynthesizeStart.from_event(event).voice
            send, receive = trio.open_memory_channel[str](math.inf)  # bounded by max_text_chars
            work = _Work(self._job(None, voice), sentences=receive)
            self._enqueue(work)
            self._incoming = _Incoming(work, send, SentenceAssembler(max_chars=self.settings.max_sentence_chars))
        elif SynthesizeChunk.is_type(event.type):
            self._feed(SynthesizeChunk.from_event(event).text)
        elif SynthesizeStop.is_type(event.type):
            incoming = self._require_incoming("synthesize-stop")
            self._speak(incoming, incoming.assembler.flush())
            incoming.sentences.close()
            self._incoming = None
        else:
            raise InvalidParameter(f"unsupported event type {event.type[:40]!r}")

    def _job(self, text: str | None, voice: SynthesizeVoice | None) -> SynthesisJob:
        """The job for a request, validated like every HTTP one (voice, text length)."""
        service = self.state.require_service()
        voice_id = voice_id_for(service, voice)
        if text is None:  # streaming: the text comes in chunks, checked as it arrives
            return service.job(GenerateParams(text="", voice_id=voice_id))
        params = parse_json_params(
            GenerateParams, {"text": text, "voice_id": voice_id}, max_text_chars=self.settings.max_text_chars
        )
        return service.job(params)

    def _enqueue(self, work: _Work) -> None:
        self.state.require_service().shutdown.check()
        if self._pending > self.settings.ws_max_queued:
            raise QueueFull(f"at most {self.settings.ws_max_queued} syntheses may wait on one connection")
        self._pending += 1
        self._work_send.send_nowait(work)

    def _require_incoming(self, what: str) -> _Incoming:
        if self._incoming is None:
            raise InvalidParameter(f"{what} without synthesize-start")
        return self._incoming

    def _feed(self, text: Any) -> None:
        incoming = self._require_incoming("synthesize-chunk")
        if not isinstance(text, str):
            raise InvalidParameter("text: a string is required", field="text")
        text = clean_text(text)
        incoming.received_chars += len(text)
        if incoming.received_chars > self.settings.max_text_chars:
            incoming.work.cancel_cause = "stop"
            incoming.work.scope.cancel()
            incoming.sentences.close()
            self._incoming = None
            raise TextTooLong(f"a streamed text may have at most {self.settings.max_text_chars} characters")
        self._speak(incoming, incoming.assembler.feed(text))

    def _speak(self, incoming: _Incoming, sentences: list[str]) -> None:
        for sentence in sentences:
            try:
                incoming.sentences.send_nowait(sentence)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the synthesis already ended (an error, the drain); its end event says why

    # -- synthesis ----------------------------------------------------------------
    async def _run_work(self) -> None:
        async for work in self._work_receive:
            try:
                with work.scope:
                    await self._synthesize(work)
            finally:
                self._pending -= 1
                if work.sentences is not None:
                    work.sentences.close()
                self._ended_work()

    async def _admitted(self, service: TtsService) -> Place | None:
        try:
            return await service.admission.acquire()
        except ApiError as error:  # overloaded, or the server drains
            self.state.metrics.protocol_errors.labels(PROTOCOL, error.code).inc()
            await self._send(Error(text=error.message, code=error.code).event())
            return None

    async def _synthesize(self, work: _Work) -> None:
        service = self.state.require_service()
        place = await self._admitted(service)
        if place is None:
            if work.streaming:
                await self._send(SynthesizeStopped().event())
            return
        job = work.job
        fmt = job.pool.audio_format
        writer = _ChunkWriter(fmt, frame_aligned(SAMPLES_PER_CHUNK * fmt.frame_size, fmt))
        relay: Relay[bytes] | None = None
        try:
            with service.track_stream(job.pool):
                start = AudioStart(rate=fmt.sample_rate, width=fmt.sample_width, channels=fmt.channels)
                await self._send(start.event())
                async with trio.open_nursery() as nursery:
                    source = None if work.sentences is None else _until_idle(work.sentences, self.settings)
                    receive, metrics = open_audio_stream(nursery, job, source)
                    output = EncodedOutput(fmt, EncodingChoice("pcm", fmt.sample_rate))
                    relay = Relay(receive, metrics, output, writer)
                    async for frames in relay.batches():
                        await self._send_bytes(b"".join(frames))
            end = [AudioStop().event()]
            if relay.failure is not None:
                end.append(Error(text=relay.failure.message, code=relay.failure.code).event())
            else:
                service.stream_finished(metrics, PROTOCOL)
            if work.streaming:
                end.append(SynthesizeStopped().event())
            await self._send_bytes(b"".join(encode_event(event) for event in end))
        finally:
            place.release()
            if relay is None or not relay.completed:
                service.stream_cancelled(work.cancel_cause)

    def _ended_work(self) -> None:
        self._work_ended.set()
        self._work_ended = trio.Event()

    async def _close_when_drained(self, session: trio.CancelScope) -> None:
        """When the server drains, close once the connection's work has ended (or been cut by the drain)."""
        await self.state.shutdown.started.wait()
        while self._pending:
            await self._work_ended.wait()
        session.cancel()

    # -- outgoing ---------------------------------------------------------------
    async def _send(self, event: Event) -> None:
        await self._send_bytes(encode_event(event))

    async def _send_bytes(self, data: bytes) -> None:
        """One write under the lock, shielded (half an event would corrupt the stream), within the send timeout."""
        async with self._send_lock:
            with trio.move_on_after(self.settings.send_timeout) as scope:
                scope.shield = True
                try:
                    await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    raise ClientGone("the client closed the connection") from None
            if scope.cancelled_caught:
                raise ClientGone(f"the client read nothing for {self.settings.send_timeout:g} s")


async def _until_idle(sentences: trio.MemoryReceiveChannel[str], settings: Settings) -> AsyncIterator[str]:
    """A streamed text's sentences; ends it with :class:`ContextIdle` when no text comes for too long.

    The stream holds an admission place while it waits for text, as a
    WebSocket context does, so it gets the same ``context_idle_timeout``.
    """
    idle = settings.context_idle_timeout
    while True:
        with trio.move_on_after(idle) as waited:
            try:
                sentence = await sentences.receive()
            except trio.EndOfChannel:
                return
        if waited.cancelled_caught:
            raise ContextIdle(f"no text for {idle:g} s; send synthesize-chunk or synthesize-stop")
        yield sentence
