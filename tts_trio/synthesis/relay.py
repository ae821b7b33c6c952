"""The consumer side of every stream: drain, encode, frame, in batches.

Every protocol does the same thing with a stream's channel: take
:class:`~tts_trio.audio.formats.AudioChunk`, :class:`SentenceTimings` and
:class:`StreamError` items in order, encode the audio
(:class:`~tts_trio.audio.output.EncodedOutput`), cut it into pieces of at
most the protocol's chunk size, count what the client receives
(:class:`StreamMetrics`), and end with the encoder's tail and a summary, or
with the error in band after the audio produced before it. Only the framing
differs (SSE events, WebSocket messages, raw body bytes), so that is all a
protocol writes: a :class:`Writer` turns each piece, timing, error or the
end into one frame.

:class:`Relay` yields frames in batches, which a response body joins into
one write and a WebSocket sends back to back: under load a write per event
costs more than synthesis (each is a trip through Hypercorn, h11 or h2 and
the socket, and a wake-up of the task). The first audio of a stream goes
out at once, so time to first audio is untouched; after it a batch closes
at the end of a sentence (its ``timings``), when it holds
:data:`MAX_BATCH_BYTES`, when the stream ends, or when its first frame has
waited :data:`LINGER` seconds, so a slow engine's audio is never held back
longer than that.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Sequence
from typing import Generic, Protocol, TypeVar

import trio

from tts_trio.audio.formats import AudioChunk
from tts_trio.audio.output import EncodedOutput
from tts_trio.synthesis.pipeline import SentenceTimings, StreamError, StreamItem, StreamMetrics

Frame = TypeVar("Frame")
Frame_co = TypeVar("Frame_co", covariant=True)

#: Audio bytes held for one batch at most; a full batch goes out at once.
MAX_BATCH_BYTES = 512 * 1024
#: Seconds a pending frame may wait for company before it goes out alone.
LINGER = 0.02


class Writer(Protocol[Frame_co]):
    """A protocol's framing: what each thing the stream produces looks like on the wire.

    Methods are synchronous: they build frames, the relay's caller sends
    them. ``chunk_size`` caps a piece of audio (None: each encoded chunk is
    one piece); ``message_overhead`` is what each audio frame adds that the
    protocol counts as audio bytes (a WAV header per WebSocket message).
    """

    @property
    def chunk_size(self) -> int | None: ...

    @property
    def message_overhead(self) -> int: ...

    def audio(self, piece: bytes, index: int) -> Frame_co | None:
        """The frame for audio piece number ``index`` (from 1); None sends nothing."""
        ...

    def timings(self, timings: SentenceTimings) -> Frame_co | None: ...

    def error(self, error: StreamError) -> Frame_co | None: ...

    def finished(self, metrics: StreamMetrics) -> Sequence[Frame_co]:
        """The frames that end a complete stream (after the encoder's tail)."""
        ...


class Relay(Generic[Frame]):
    """Drains one stream's channel into frames; says afterwards how the stream ended.

    ``completed`` is True once the end frames (or an in-band error) were
    handed out; ``failure`` is the error the stream ended with, if any. A
    consumer that stops iterating early (the client went away) sees neither.
    ``tail_on_error`` flushes the encoder before the error frame, so a
    compressed stream cut by an error still ends on a whole frame.
    """

    def __init__(
        self,
        receive: trio.MemoryReceiveChannel[StreamItem],
        metrics: StreamMetrics,
        output: EncodedOutput,
        writer: Writer[Frame],
        *,
        tail_on_error: bool = False,
        linger: float = LINGER,
    ) -> None:
        self.receive = receive
        self.metrics = metrics
        self.output = output
        self.writer = writer
        self.tail_on_error = tail_on_error
        self.completed = False
        self.failure: StreamError | None = None
        self.linger = linger
        self._index = 0
        self._first_sent = False

    def _audio(self, data: bytes, frames: list[Frame]) -> None:
        if not data:
            return
        writer = self.writer
        size = writer.chunk_size
        overhead = writer.message_overhead
        metrics = self.metrics
        if size is None or len(data) <= size:
            pieces: Sequence[bytes] = (data,)
        else:
            pieces = [data[start : start + size] for start in range(0, len(data), size)]
        for piece in pieces:
            self._index += 1
            frame = writer.audio(piece, self._index)
            if frame is not None:
                frames.append(frame)
            metrics.audio_sent(len(piece) + overhead)

    async def _item(self, item: StreamItem, frames: list[Frame]) -> bool:
        """Frame one item; False when it ended the stream."""
        if isinstance(item, AudioChunk):
            self._audio(await self.output.encode(item.pcm), frames)
            return True
        if isinstance(item, SentenceTimings):
            frame = self.writer.timings(item)
            if frame is not None:
                frames.append(frame)
            return True
        self.failure = item
        if self.tail_on_error:
            self._audio(await self.output.finish(), frames)
        self.metrics.finish()
        frame = self.writer.error(item)
        if frame is not None:
            frames.append(frame)
        return False

    def _flush_now(self, item: StreamItem, pending_bytes: int) -> bool:
        """Whether what is pending goes out now: the first audio, a sentence's end, or a full batch."""
        if isinstance(item, SentenceTimings):
            return True
        return (self._index > 0 and not self._first_sent) or pending_bytes >= MAX_BATCH_BYTES

    async def batches(self) -> AsyncGenerator[list[Frame], None]:
        """Frames in batches until the stream ends; closes the channel when done."""
        receive = self.receive
        with receive:
            pending: list[Frame] = []
            pending_bytes = 0
            flush_at = math.inf
            while True:
                try:
                    if pending:
                        with trio.move_on_at(flush_at) as lingered:
                            item = await receive.receive()
                        if lingered.cancelled_caught:
                            yield pending
                            pending, flush_at, pending_bytes = [], math.inf, 0
                            continue
                    else:
                        item = await receive.receive()
                except trio.EndOfChannel:
                    break
                before = self.metrics.total_bytes
                if not await self._item(item, pending):
                    self.completed = True
                    if pending:
                        yield pending
                    return
                pending_bytes += self.metrics.total_bytes - before
                if pending and self._flush_now(item, pending_bytes):
                    self._first_sent = self._first_sent or self._index > 0
                    yield pending
                    pending, flush_at, pending_bytes = [], math.inf, 0
                elif pending and flush_at == math.inf:
                    flush_at = trio.current_time() + self.linger
            # The end goes out with whatever is still pending: one write.
            self._audio(await self.output.finish(), pending)
            self.metrics.finish()
            pending.extend(self.writer.finished(self.metrics))
            self.completed = True
            if pending:
                yield pending
