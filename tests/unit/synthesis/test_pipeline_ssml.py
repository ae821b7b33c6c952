"""The pipeline with an SSML script: silence in the stream and the timings, speed per sentence, cancellation."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.support.engines import PacedEngine
from tts_trio.audio.formats import AudioChunk, AudioFormat
from tts_trio.engines.pool import EnginePool
from tts_trio.synthesis.drain import Shutdown
from tts_trio.synthesis.pipeline import (
    ScriptItem,
    SentenceTimings,
    Silence,
    Spoken,
    StreamError,
    StreamItem,
    StreamMetrics,
    SynthesisJob,
    open_audio_stream,
    produce_audio,
)

FMT = AudioFormat(sample_rate=16000)
BYTES_PER_SECOND = 32000
#: What one PacedEngine sentence produces with chunks=1: 32 bytes, 1 ms.
SENTENCE_BYTES = 32


def make_job(
    engine: PacedEngine, text: str = "-", script: tuple[ScriptItem, ...] | None = None, **fields: Any
) -> SynthesisJob:
    pool = EnginePool("paced", [engine], FMT)
    return SynthesisJob(
        pool=pool, text=text, voice=None, shutdown=Shutdown(), script=script, voice_parameters={"rate": 1}, **fields
    )


async def run(job: SynthesisJob) -> tuple[list[StreamItem], StreamMetrics]:
    items: list[StreamItem] = []
    async with trio.open_nursery() as nursery:
        receive, metrics = open_audio_stream(nursery, job)
        async for item in receive:
            items.append(item)
    return items, metrics


async def test_a_break_is_zero_samples_between_the_sentences_and_shifts_the_timings() -> None:
    engine = PacedEngine(chunks=1, interval=0)
    script = (Spoken("One. Two.", {"rate": 10}), Silence(0.5), Spoken("Three.", {"rate": 20}))
    items, metrics = await run(make_job(engine, script=script))
    kinds = [(type(item).__name__, item.index if isinstance(item, SentenceTimings) else None) for item in items]
    assert kinds == [
        ("AudioChunk", None),
        ("SentenceTimings", 0),
        ("AudioChunk", None),
        ("SentenceTimings", 1),
        ("AudioChunk", None),  # the silence
        ("AudioChunk", None),
        ("SentenceTimings", 2),
    ]
    silence = items[4]
    assert isinstance(silence, AudioChunk)
    assert silence.pcm == bytes(BYTES_PER_SECOND // 2)
    timings = [item for item in items if isinstance(item, SentenceTimings)]
    assert [t.text for t in timings] == ["One.", "Two.", "Three."]
    assert timings[2].start == pytest.approx(timings[1].end + 0.5)
    assert metrics.audio_seconds == pytest.approx(3 * SENTENCE_BYTES / BYTES_PER_SECOND + 0.5)
    assert metrics.sentences == 3
    # Each sentence got its own fragment's parameters, set for every sentence.
    assert engine.voice_parameters == [{"rate": 10}, {"rate": 10}, {"rate": 20}]


async def test_long_silence_is_sent_in_pieces_of_at_most_a_second() -> None:
    engine = PacedEngine(chunks=1, interval=0)
    items, _ = await run(make_job(engine, script=(Silence(2.5), Spoken("Hi.", {}))))
    sizes = [len(item.pcm) for item in items if isinstance(item, AudioChunk)]
    assert sizes == [BYTES_PER_SECOND, BYTES_PER_SECOND, BYTES_PER_SECOND // 2, SENTENCE_BYTES]
    timings = [item for item in items if isinstance(item, SentenceTimings)]
    assert timings[0].start == pytest.approx(2.5)


async def test_a_plain_job_speaks_its_text_with_its_parameters_as_before() -> None:
    engine = PacedEngine(chunks=1, interval=0)
    items, metrics = await run(make_job(engine, text="One. Two. Three."))
    assert [item.text for item in items if isinstance(item, SentenceTimings)] == ["One.", "Two.", "Three."]
    assert engine.voice_parameters == [{"rate": 1}] * 3
    assert "ssml_warnings" not in metrics.to_dict()


async def test_the_first_spoken_sentence_of_a_script_is_cut_like_a_plain_one() -> None:
    engine = PacedEngine(chunks=1, interval=0)
    long = "This first sentence is rather long, with a clause that ends here; and then it goes on for a while more."
    script = (Silence(0.1), Spoken(long, {"rate": 5}), Spoken(long, {"rate": 6}))
    items, _ = await run(make_job(engine, script=script, cut_first_sentence=True))
    texts = [item.text for item in items if isinstance(item, SentenceTimings)]
    assert texts == [
        "This first sentence is rather long, with a clause that ends here; ",
        "and then it goes on for a while more.",
        long,
    ]
    assert engine.voice_parameters == [{"rate": 5}, {"rate": 5}, {"rate": 6}]


async def test_long_fragments_are_split_into_sentences_lazily() -> None:
    engine = PacedEngine(chunks=1, interval=0)
    text = " ".join(["word"] * 60)
    items, _ = await run(make_job(engine, script=(Spoken(text, {}),), max_sentence_chars=50))
    assert len([item for item in items if isinstance(item, SentenceTimings)]) > 4


async def test_warnings_are_in_the_metrics() -> None:
    engine = PacedEngine(chunks=1, interval=0)
    job = make_job(engine, script=(Spoken("Hi.", {}),), warnings=("a phoneme was spoken as its text",))
    _, metrics = await run(job)
    assert metrics.to_dict()["ssml_warnings"] == ["a phoneme was spoken as its text"]


async def test_a_receiver_that_goes_away_during_silence_ends_the_stream_quietly() -> None:
    engine = PacedEngine(chunks=1, interval=0)
    job = make_job(engine, script=(Silence(10.0), Spoken("never", {})))
    send, receive = trio.open_memory_channel[StreamItem](0)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce_audio, job, send, StreamMetrics())
            first = await receive.receive()
            assert isinstance(first, AudioChunk)
            receive.close()
    assert engine.voice_parameters == []  # nothing after the silence was spoken


async def test_cancelling_during_silence_ends_the_producer_at_once() -> None:
    engine = PacedEngine(chunks=1, interval=0)
    job = make_job(engine, script=(Silence(10.0), Spoken("never", {})))
    send, receive = trio.open_memory_channel[StreamItem](0)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce_audio, job, send, StreamMetrics())
            await receive.receive()
            nursery.cancel_scope.cancel()
    assert engine.voice_parameters == []


async def test_a_drain_cut_during_silence_is_reported_in_band() -> None:
    engine = PacedEngine(chunks=1, interval=0)
    job = make_job(engine, script=(Silence(10.0), Spoken("never", {})))
    send, receive = trio.open_memory_channel[StreamItem](0)
    items: list[StreamItem] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce_audio, job, send, StreamMetrics())
            items.append(await receive.receive())
            job.shutdown.begin(0)
            await trio.sleep(0.05)
            async for item in receive:
                items.append(item)
    assert isinstance(items[-1], StreamError) and items[-1].code == "shutting_down"
    assert len(items) < 10
