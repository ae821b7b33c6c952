"""The relay: one stream's channel in, framed batches out, with in-memory channels and a recording writer."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import cast

import attrs
import pytest
import trio

from tts_trio.audio.encoding import EncodingChoice
from tts_trio.audio.formats import AudioChunk, AudioFormat
from tts_trio.audio.output import EncodedOutput
from tts_trio.synthesis.pipeline import SentenceTimings, StreamError, StreamItem, StreamMetrics
from tts_trio.synthesis.relay import MAX_BATCH_BYTES, Relay

FMT = AudioFormat(sample_rate=16000)
Frame = tuple[str, object]


@attrs.define
class Recording:
    """Frames as tuples, so a test reads what each thing became and in which order."""

    chunk_size: int | None = None
    message_overhead: int = 0
    fail_on_audio: int | None = None

    def audio(self, piece: bytes, index: int) -> Frame:
        if index == self.fail_on_audio:
            raise RuntimeError("the writer failed")
        return ("audio", (index, piece))

    def timings(self, timings: SentenceTimings) -> Frame:
        return ("timings", timings.index)

    def error(self, error: StreamError) -> Frame:
        return ("error", error.code)

    def finished(self, metrics: StreamMetrics) -> Sequence[Frame]:
        return (("metrics", metrics.chunk_count), ("done", None))


def timings(index: int) -> SentenceTimings:
    return SentenceTimings(index, f"sentence {index}", 0.0, 1.0, ())


def make_relay(
    items: list[StreamItem], writer: Recording, *, output_format: str = "pcm", tail_on_error: bool = False
) -> tuple[Relay[Frame], trio.MemorySendChannel[StreamItem]]:
    send, receive = trio.open_memory_channel[StreamItem](len(items) + 8)
    for item in items:
        send.send_nowait(item)
    output = EncodedOutput(FMT, EncodingChoice(output_format, FMT.sample_rate))
    return Relay(receive, StreamMetrics(), output, writer, tail_on_error=tail_on_error), send


async def collect(relay: Relay[Frame]) -> list[list[Frame]]:
    return [batch async for batch in relay.batches()]


async def test_events_in_order_audio_then_timings_then_the_end() -> None:
    items: list[StreamItem] = [AudioChunk(b"a" * 10, 0), AudioChunk(b"b" * 10, 0), timings(0), AudioChunk(b"c" * 4, 1)]
    relay, send = make_relay(items, Recording())
    send.close()
    frames = [frame for batch in await collect(relay) for frame in batch]
    assert frames == [
        ("audio", (1, b"a" * 10)),
        ("audio", (2, b"b" * 10)),
        ("timings", 0),
        ("audio", (3, b"c" * 4)),
        ("metrics", 3),
        ("done", None),
    ]
    assert relay.completed and relay.failure is None
    assert relay.metrics.total_bytes == 24 and relay.metrics.finished is not None


async def test_pieces_never_exceed_chunk_size_and_indexes_run_on_across_chunks() -> None:
    relay, send = make_relay([AudioChunk(bytes(250), 0), AudioChunk(bytes(30), 0)], Recording(chunk_size=100))
    send.close()
    pieces = [
        cast(tuple[int, bytes], value) for batch in await collect(relay) for kind, value in batch if kind == "audio"
    ]
    assert [(index, len(piece)) for index, piece in pieces] == [(1, 100), (2, 100), (3, 50), (4, 30)]


async def test_wav_header_leaves_with_the_first_piece_and_overhead_is_counted() -> None:
    relay, send = make_relay([AudioChunk(bytes(100), 0)], Recording(message_overhead=44), output_format="wav")
    send.close()
    pieces = [
        cast(tuple[int, bytes], value) for batch in await collect(relay) for kind, value in batch if kind == "audio"
    ]
    (index, piece), *_ = pieces
    assert index == 1 and piece.startswith(b"RIFF") and len(piece) == 144
    assert relay.metrics.total_bytes == 144 + 44 and relay.metrics.chunk_count == 1


async def test_an_error_comes_in_band_after_the_audio_before_it_and_ends_the_stream() -> None:
    items: list[StreamItem] = [AudioChunk(b"x" * 8, 0), timings(0), StreamError("synthesis_failed", "boom")]
    relay, send = make_relay([*items, AudioChunk(b"late", 1)], Recording())
    frames = [frame for batch in await collect(relay) for frame in batch]
    assert frames == [("audio", (1, b"x" * 8)), ("timings", 0), ("error", "synthesis_failed")]
    assert relay.completed and relay.failure == StreamError("synthesis_failed", "boom")
    with pytest.raises(trio.BrokenResourceError):
        send.send_nowait(timings(1))  # the relay let go of the channel: the producer ends


async def test_tail_on_error_flushes_the_encoder_before_the_error() -> None:
    relay, _ = make_relay([StreamError("shutting_down", "bye")], Recording(), output_format="wav", tail_on_error=True)
    frames = [frame for batch in await collect(relay) for frame in batch]
    # Nothing was encoded yet, so the tail is the pending header, then the error.
    assert [kind for kind, _ in frames] == ["audio", "error"]
    assert frames[0][1][1].startswith(b"RIFF")  # type: ignore[index]


async def test_first_audio_goes_alone_then_batches_close_at_sentence_ends() -> None:
    items: list[StreamItem] = [AudioChunk(b"1", 0), AudioChunk(b"2", 0), AudioChunk(b"3", 0), timings(0)]
    items += [AudioChunk(b"4", 1), AudioChunk(b"5", 1), timings(1), AudioChunk(b"6", 2)]
    relay, send = make_relay(items, Recording())
    send.close()
    batches = [[kind for kind, _ in batch] for batch in await collect(relay)]
    assert batches == [
        ["audio"],
        ["audio", "audio", "timings"],
        ["audio", "audio", "timings"],
        ["audio", "metrics", "done"],  # the end goes out with what was pending
    ]


async def test_a_full_batch_goes_out_without_waiting_for_the_sentence_end() -> None:
    relay, send = make_relay([], Recording())
    async with contextlib.aclosing(relay.batches()) as batches:
        await send.send(AudioChunk(b"first", 0))
        assert len(await batches.__anext__()) == 1
        big = AudioChunk(bytes(MAX_BATCH_BYTES // 2), 0)
        await send.send(big)
        await send.send(big)
        assert len(await batches.__anext__()) == 2


async def test_a_pending_frame_waits_at_most_the_linger_time() -> None:
    relay, send = make_relay([], Recording())
    async with contextlib.aclosing(relay.batches()) as batches:
        await send.send(AudioChunk(b"first", 0))
        await batches.__anext__()
        await send.send(AudioChunk(b"second", 0))
        # No sentence end and no more audio: the linger deadline lets it go.
        assert await batches.__anext__() == [("audio", (2, b"second"))]


async def test_an_item_arriving_alone_is_handed_out_at_once() -> None:
    relay, send = make_relay([], Recording())
    async with contextlib.aclosing(relay.batches()) as batches:
        await send.send(AudioChunk(b"first", 0))
        assert await batches.__anext__() == [("audio", (1, b"first"))]
        await send.send(timings(0))
        assert await batches.__anext__() == [("timings", 0)]


async def test_a_writer_that_raises_propagates_and_releases_the_channel() -> None:
    relay, send = make_relay([AudioChunk(b"1", 0), AudioChunk(b"2", 0)], Recording(fail_on_audio=2))
    with pytest.raises(RuntimeError, match="the writer failed"):
        await collect(relay)
    assert not relay.completed
    with pytest.raises(trio.BrokenResourceError):
        send.send_nowait(timings(0))


async def test_a_consumer_cancelled_mid_stream_is_not_counted_as_complete() -> None:
    relay, send = make_relay([AudioChunk(b"1", 0)], Recording())
    with trio.CancelScope() as scope:
        async with contextlib.aclosing(relay.batches()) as batches:
            async for _ in batches:
                scope.cancel()
                await trio.lowlevel.checkpoint()
    assert scope.cancelled_caught and not relay.completed and relay.failure is None
    with pytest.raises(trio.BrokenResourceError):
        send.send_nowait(timings(0))
