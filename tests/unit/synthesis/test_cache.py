"""The phrase cache: an LRU by bytes, commits only of complete streams, replays in the same shape."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

from tests.support.engines import FailingEngine, PacedEngine
from tts_trio.audio.formats import AudioChunk, AudioFormat, WordTiming
from tts_trio.engines.pool import EnginePool
from tts_trio.synthesis.cache import ENTRY_OVERHEAD, ITEM_OVERHEAD, CacheEntry, PhraseCache, cache_key
from tts_trio.synthesis.drain import Shutdown
from tts_trio.synthesis.pipeline import (
    SentenceTimings,
    Silence,
    Spoken,
    StreamError,
    StreamItem,
    StreamMetrics,
    SynthesisJob,
    open_audio_stream,
)

FMT = AudioFormat(sample_rate=16000)


def entry(size: int, voices: tuple[str, ...] = ()) -> CacheEntry:
    return CacheEntry((AudioChunk(bytes(size), 0),), 0.0, 1, frozenset(voices), size)


def make_job(pool: EnginePool, text: str = "One. Two. Three.", **fields: Any) -> SynthesisJob:
    fields.setdefault("shutdown", Shutdown())
    return SynthesisJob(pool=pool, text=text, voice=None, voice_parameters={"rate": 1}, **fields)


def looked_up(cache: PhraseCache, job: SynthesisJob, voices: tuple[str, ...] = ()) -> SynthesisJob:
    key = cache_key(job, engine=f"paced#{cache.pool_token(job.pool)}", generation=cache.generation)
    return attrs.evolve(job, cache=cache.lookup(key, voices))


async def run(job: SynthesisJob, sentences: Any = None) -> tuple[list[StreamItem], StreamMetrics]:
    items: list[StreamItem] = []
    async with trio.open_nursery() as nursery:
        receive, metrics = open_audio_stream(nursery, job, sentences)
        async for item in receive:
            items.append(item)
    return items, metrics


# -- the LRU -----------------------------------------------------------------
def test_the_least_recently_used_entries_go_first_when_the_bytes_run_out() -> None:
    cache = PhraseCache(4000)
    for key in "abc":
        assert cache.put(key, entry(1000))
    assert (len(cache), cache.bytes) == (3, 3000)
    assert cache.get("a") is not None  # now the most recently used
    assert cache.put("d", entry(1000))
    assert cache.put("e", entry(1000))  # 5000 > 4000: the oldest ("b") goes
    assert "b" not in cache and all(key in cache for key in "acde")
    assert cache.bytes == 4000
    assert cache.put("f", entry(1000))
    assert "c" not in cache and "a" in cache


def test_an_entry_larger_than_a_quarter_of_the_cache_is_not_kept() -> None:
    cache = PhraseCache(4000)
    assert not cache.put("big", entry(1001))
    assert cache.put("fits", entry(1000))
    assert (len(cache), cache.bytes) == (1, 1000)
    assert PhraseCache(4000, entry_fraction=1.0).put("big", entry(3000))


def test_replacing_a_key_counts_its_bytes_once() -> None:
    cache = PhraseCache(4000)
    cache.put("a", entry(800))
    cache.put("a", entry(900))
    assert (len(cache), cache.bytes) == (1, 900)


def test_a_cache_of_zero_bytes_is_off() -> None:
    cache = PhraseCache(0)
    assert not cache.enabled
    assert not cache.put("a", entry(1))
    recorder = cache.recorder("a")
    recorder.add(AudioChunk(b"xx", 0))
    assert not recorder.commit(0.0, 0)
    with pytest.raises(ValueError):
        PhraseCache(-1)


def test_a_recorder_counts_pcm_and_overheads_and_gives_up_on_a_stream_that_outgrows_an_entry() -> None:
    cache = PhraseCache(40_000)
    recorder = cache.recorder("k")
    recorder.add(AudioChunk(bytes(1000), 0))
    recorder.add(SentenceTimings(0, "Hi.", 0.0, 0.1, (WordTiming("Hi", 0.0, 0.1),)))
    assert recorder.commit(0.1, 1)
    stored = cache.get("k")
    assert stored is not None
    assert stored.size == ENTRY_OVERHEAD + 1000 + ITEM_OVERHEAD + ITEM_OVERHEAD + 3 + ITEM_OVERHEAD
    big = cache.recorder("big")
    for _ in range(11):
        big.add(AudioChunk(bytes(1000), 0))
    assert big.too_large  # 11 kB > 10 kB: nothing more is kept
    assert not big.commit(1.0, 1)
    assert "big" not in cache


def test_clear_drops_everything_and_a_recorder_from_before_commits_nothing() -> None:
    cache = PhraseCache(40_000)
    cache.put("a", entry(10))
    recorder = cache.lookup("b").recorder()
    recorder.add(AudioChunk(b"xx", 0))
    cache.clear()
    assert (len(cache), cache.bytes, cache.generation) == (0, 0, 1)
    assert not recorder.commit(0.0, 0)
    assert "b" not in cache


def test_invalidate_voice_drops_only_that_voices_entries() -> None:
    cache = PhraseCache(40_000)
    cache.put("mine", entry(10, ("v_0000000000000001",)))
    cache.put("default", entry(10, ("default", "v_0000000000000001")))
    cache.put("other", entry(10, ("v_0000000000000002",)))
    assert cache.invalidate_voice("v_0000000000000001") == 2
    assert list(key for key in ("mine", "default", "other") if key in cache) == ["other"]
    assert cache.bytes == 10
    assert cache.invalidate_voice("v_0000000000000001") == 0


def test_pool_tokens_tell_pools_apart() -> None:
    cache = PhraseCache(1000)
    a, b = EnginePool("paced", [PacedEngine()], FMT), EnginePool("paced", [PacedEngine()], FMT)
    assert cache.pool_token(a) == cache.pool_token(a) != cache.pool_token(b)
    token_b = cache.pool_token(b)
    del b
    assert cache.pool_token(EnginePool("paced", [PacedEngine()], FMT)) > token_b  # never reused


# -- the key ---------------------------------------------------------------
def test_the_key_changes_with_everything_that_changes_the_audio() -> None:
    pool = EnginePool("paced", [PacedEngine()], FMT)
    base = make_job(pool)

    def key(job: SynthesisJob, **kwargs: Any) -> str:
        return cache_key(job, **{"engine": "paced#1", "generation": 0, **kwargs})

    same = make_job(pool, shutdown=base.shutdown)
    assert key(base) == key(same)
    variants = [
        key(base, engine="paced#2"),
        key(base, generation=1),
        key(base, voice_identity="1:2:3:4"),
        key(make_job(pool, text="One. Two. Four.")),
        key(attrs.evolve(base, voice="en-gb")),
        key(attrs.evolve(base, voice_parameters={"rate": 2})),
        key(attrs.evolve(base, max_sentence_chars=100)),
        key(attrs.evolve(base, cut_first_sentence=True)),
        key(attrs.evolve(base, extra_key="lexicon:2")),
        key(attrs.evolve(base, script=(Spoken("One. Two. Three.", {"rate": 1}),))),
        key(attrs.evolve(base, script=(Spoken("One. Two. Three.", {"rate": 2}),))),
        key(attrs.evolve(base, script=(Spoken("One.", {"rate": 1}), Silence(0.5), Spoken("Two.", {"rate": 1})))),
        key(attrs.evolve(base, script=(Spoken("One.", {"rate": 1}), Silence(0.6), Spoken("Two.", {"rate": 1})))),
    ]
    assert len({key(base), *variants}) == len(variants) + 1


# -- the pipeline: record, commit, replay ---------------------------------------
async def test_a_miss_is_recorded_and_a_hit_replays_the_same_items_without_the_engine() -> None:
    engine = PacedEngine(chunks=3, interval=0)
    pool = EnginePool("paced", [engine], FMT)
    cache = PhraseCache(1 << 20)
    first = looked_up(cache, make_job(pool))
    assert first.cache_state == "miss"
    fresh, fresh_metrics = await run(first)
    assert fresh_metrics.cache == "miss" and len(cache) == 1
    calls = len(engine.voice_parameters)
    second = looked_up(cache, make_job(pool))
    assert second.cache_state == "hit"
    replayed, metrics = await run(second)
    assert replayed == fresh
    assert len(engine.voice_parameters) == calls  # no engine call
    assert metrics.cache == "hit"
    assert (metrics.sentences, metrics.audio_seconds) == (fresh_metrics.sentences, fresh_metrics.audio_seconds)
    assert (cache.hits, cache.misses) == (1, 1)
    assert pool.statistics().in_use == 0


async def test_silence_and_timings_are_replayed_in_place() -> None:
    pool = EnginePool("paced", [PacedEngine(chunks=1, interval=0)], FMT)
    cache = PhraseCache(1 << 20)
    script = (Spoken("One.", {"rate": 1}), Silence(0.25), Spoken("Two.", {"rate": 1}))
    fresh, _ = await run(looked_up(cache, make_job(pool, script=script)))
    replayed, metrics = await run(looked_up(cache, make_job(pool, script=script)))
    assert metrics.cache == "hit" and replayed == fresh
    assert [type(item).__name__ for item in replayed] == [
        "AudioChunk",
        "SentenceTimings",
        "AudioChunk",
        "AudioChunk",
        "SentenceTimings",
    ]


async def test_a_failed_stream_leaves_no_entry() -> None:
    pool = EnginePool("failing", [FailingEngine(chunks=1, interval=0)], FMT)
    cache = PhraseCache(1 << 20)
    items, metrics = await run(looked_up(cache, make_job(pool, text="Fine. Then boom. Never.")))
    assert isinstance(items[-1], StreamError)
    assert metrics.cache == "miss" and len(cache) == 0


async def test_a_stream_the_engine_did_not_complete_leaves_no_entry() -> None:
    class Incomplete(PacedEngine):
        def synthesize(self, text: str, sentence_count: int = 0) -> bool:
            super().synthesize(text)
            return False

    pool = EnginePool("incomplete", [Incomplete(chunks=1, interval=0)], FMT)
    cache = PhraseCache(1 << 20)
    await run(looked_up(cache, make_job(pool)))
    assert len(cache) == 0


async def test_a_cancelled_stream_leaves_no_entry() -> None:
    pool = EnginePool("paced", [PacedEngine(chunks=2, interval=0.01)], FMT)
    cache = PhraseCache(1 << 20)
    job = looked_up(cache, make_job(pool, text="One. Two. Three. Four. Five. Six."))
    async with trio.open_nursery() as nursery:
        receive, _ = open_audio_stream(nursery, job)
        assert isinstance(await receive.receive(), AudioChunk)
        nursery.cancel_scope.cancel()
    assert len(cache) == 0


async def test_a_stream_whose_reader_went_away_leaves_no_entry() -> None:
    pool = EnginePool("paced", [PacedEngine(chunks=2, interval=0.01)], FMT)
    cache = PhraseCache(1 << 20)
    job = looked_up(cache, make_job(pool, text="One. Two. Three. Four. Five. Six."))
    async with trio.open_nursery() as nursery:
        receive, _ = open_audio_stream(nursery, job)
        await receive.receive()
        await receive.aclose()
    assert len(cache) == 0


async def test_a_stream_cut_by_the_drain_leaves_no_entry() -> None:
    pool = EnginePool("paced", [PacedEngine(chunks=2, interval=0.02)], FMT)
    cache = PhraseCache(1 << 20)
    shutdown = Shutdown()
    shutdown.on_cut = lambda: None
    job = looked_up(cache, make_job(pool, text="One. Two. Three. Four. Five. Six.", shutdown=shutdown))
    items: list[StreamItem] = []
    async with trio.open_nursery() as nursery:
        receive, _ = open_audio_stream(nursery, job)
        items.append(await receive.receive())
        shutdown.begin(0)
        async for item in receive:
            items.append(item)
    assert isinstance(items[-1], StreamError) and items[-1].code == "shutting_down"
    assert len(cache) == 0


async def test_a_replay_is_cancelled_between_pieces() -> None:
    pool = EnginePool("paced", [PacedEngine(chunks=20, interval=0)], FMT)
    cache = PhraseCache(1 << 20)
    fresh, _ = await run(looked_up(cache, make_job(pool)))
    job = looked_up(cache, make_job(pool))
    assert job.cache_state == "hit"
    received = []
    async with trio.open_nursery() as nursery:
        receive, _ = open_audio_stream(nursery, job)
        received.append(await receive.receive())
        nursery.cancel_scope.cancel()
    assert len(received) < len(fresh)


async def test_a_replay_yields_to_other_tasks_between_pieces() -> None:
    pool = EnginePool("paced", [PacedEngine(chunks=20, interval=0)], FMT)
    cache = PhraseCache(1 << 20)
    await run(looked_up(cache, make_job(pool)))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        items, _ = await run(looked_up(cache, make_job(pool)))
        nursery.cancel_scope.cancel()
    assert ticks >= len(items) // 2


async def test_text_streamed_in_is_not_cached() -> None:
    pool = EnginePool("paced", [PacedEngine(chunks=1, interval=0)], FMT)
    cache = PhraseCache(1 << 20)
    job = looked_up(cache, make_job(pool, text=""))
    _, metrics = await run(job, ["One.", "Two."])
    assert metrics.cache == "off" and len(cache) == 0 and cache.misses == 0


async def test_a_job_without_a_lookup_is_off() -> None:
    pool = EnginePool("paced", [PacedEngine(chunks=1, interval=0)], FMT)
    job = make_job(pool)
    assert job.cache_state == "off"
    _, metrics = await run(job)
    assert metrics.cache == "off"


async def test_an_entry_held_by_a_job_replays_even_when_evicted_meanwhile() -> None:
    pool = EnginePool("paced", [PacedEngine(chunks=1, interval=0)], FMT)
    cache = PhraseCache(1 << 20)
    fresh, _ = await run(looked_up(cache, make_job(pool)))
    job = looked_up(cache, make_job(pool))
    cache.clear()
    replayed, metrics = await run(job)
    assert metrics.cache == "hit" and replayed == fresh
