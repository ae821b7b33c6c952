"""Slot accounting and cancellation in the engine pool, with deterministic engines."""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing

from tests.support.engines import FailingEngine, PacedEngine
from tests.support.live import eventually
from tts_trio.audio.formats import AudioChunk, AudioFormat
from tts_trio.engines.pool import EnginePool, PoolHooks, PoolPolicy
from tts_trio.errors import SynthesisFailed

FMT = AudioFormat(sample_rate=16000)


def make_pool(*engines: PacedEngine) -> EnginePool:
    return EnginePool("paced", engines, FMT)


async def drain(receive: trio.MemoryReceiveChannel[AudioChunk], into: list[AudioChunk]) -> None:
    async for chunk in receive:
        into.append(chunk)


async def test_pool_streams_take_turns_and_slots_return_to_zero() -> None:
    engines = [PacedEngine(chunks=2, interval=0.01) for _ in range(2)]
    pool = make_pool(*engines)
    received: list[AudioChunk] = []

    async def stream(name: str) -> None:
        send, receive = trio.open_memory_channel[AudioChunk](100)
        async with send:
            for index in range(3):
                await pool.synthesize(f"{name} {index}", sentence=index, voice="v", send=send)
        received.extend(receive.receive_nowait() for _ in range(6))

    async with trio.open_nursery() as nursery:
        for name in "abcde":
            nursery.start_soon(stream, name)
    assert max(engine.max_active for engine in engines) == 1  # one thread per instance
    assert len(received) == 5 * 3 * 2
    stats = pool.statistics()
    assert (stats.total, stats.in_use, stats.waiting) == (2, 0, 0)


async def test_pool_cancel_stops_engine_and_keeps_slot_until_thread_ends() -> None:
    engine = PacedEngine(chunks=6, interval=0.05, honour_stop=False)  # finishes its sentence regardless
    pool = make_pool(engine)
    send, receive = trio.open_memory_channel[AudioChunk](100)
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as scope:
            nursery.start_soon(drain, receive, [])
            nursery.start_soon(partial(pool.synthesize, "first sentence", sentence=0, voice="v", send=send))
            await trio.to_thread.run_sync(engine.started.wait)
            assert pool.statistics().in_use == 1
            scope.cancel()
        # The cancelled call returns only once the engine thread has really ended.
        nursery.cancel_scope.cancel()
    assert engine.stop_calls == 1
    assert engine.finished.is_set()
    assert pool.statistics().in_use == 0


async def test_pool_no_audio_of_a_cancelled_sentence_reaches_the_next_request() -> None:
    engine = PacedEngine(chunks=5, interval=0.02, honour_stop=False)
    pool = make_pool(engine)
    first_send, first_receive = trio.open_memory_channel[AudioChunk](100)
    with trio.move_on_after(0.03):
        await pool.synthesize("AAAA cancelled", sentence=0, voice="v", send=first_send)
    second_send, second_receive = trio.open_memory_channel[AudioChunk](100)
    async with second_send:
        await pool.synthesize("BBBB wanted", sentence=0, voice="v", send=second_send)
    second = [chunk.pcm async for chunk in second_receive]
    assert len(second) == 5
    assert all(pcm.startswith(b"BBBB") for pcm in second)
    first_send.close()
    first = [chunk.pcm async for chunk in first_receive]
    assert all(pcm.startswith(b"AAAA") for pcm in first)
    assert len(first) < 5  # the cancelled sentence's later chunks were dropped


async def test_pool_receiver_gone_ends_the_sentence_and_frees_the_slot() -> None:
    engine = PacedEngine(chunks=5, interval=0.01)
    pool = make_pool(engine)
    send, receive = trio.open_memory_channel[AudioChunk](100)
    receive.close()
    with pytest.raises(trio.BrokenResourceError):
        await pool.synthesize("nobody listens", sentence=0, voice="v", send=send)
    assert pool.statistics().in_use == 0


async def test_pool_engine_failure_is_translated_without_internal_detail() -> None:
    engine = FailingEngine()
    pool = make_pool(engine)
    send, _receive = trio.open_memory_channel[AudioChunk](100)
    with pytest.raises(SynthesisFailed) as info:
        await pool.synthesize("boom", sentence=0, voice="v", send=send)
    assert "secret" not in info.value.message
    assert pool.statistics().in_use == 0
    # The instance is back and usable.
    await pool.synthesize("fine", sentence=1, voice="v", send=send)


async def test_pool_slow_reader_does_not_hold_a_slot() -> None:
    engine = PacedEngine(chunks=4, interval=0.001)
    pool = make_pool(engine)
    send, receive = trio.open_memory_channel[AudioChunk](1)  # room for one chunk, nobody reading yet
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(pool.synthesize, "slow reader", sentence=0, voice="v", send=send))
        await trio.to_thread.run_sync(engine.finished.wait)
        # The sentence is synthesized and the slot comes free while the rest waits for the reader
        # (the engine thread's result reaches the event loop a moment after the engine finished).
        await eventually(lambda: pool.statistics().in_use == 0)
        assert receive.statistics().current_buffer_used == 1  # nothing was read meanwhile
        got = [await receive.receive() for _ in range(4)]
    assert len(got) == 4


async def test_pool_close_refuses_new_work() -> None:
    engine = PacedEngine(chunks=1, interval=0.001)
    pool = make_pool(engine)
    await pool.aclose()
    send, _receive = trio.open_memory_channel[AudioChunk](10)
    with pytest.raises(Exception, match="shutting down"):
        await pool.synthesize("late", sentence=0, voice="v", send=send)


async def test_pool_cancel_before_the_engine_thread_starts_does_not_hang() -> None:
    engine = PacedEngine(chunks=1, interval=0.001)
    pool = make_pool(engine)
    threads = trio.to_thread.current_default_thread_limiter()
    saved = threads.total_tokens
    threads.total_tokens = 1
    try:
        async with threads:  # no worker thread can start while we hold the only token
            send, _receive = trio.open_memory_channel[AudioChunk](10)
            with trio.fail_after(5), trio.move_on_after(0.05) as scope:
                await pool.synthesize("never started", sentence=0, voice="v", send=send)
            assert scope.cancelled_caught
            assert pool.statistics().in_use == 0
            assert not engine.started.is_set()
    finally:
        threads.total_tokens = saved
    # The instance is still usable afterwards.
    send, receive = trio.open_memory_channel[AudioChunk](10)
    await pool.synthesize("afterwards", sentence=0, voice="v", send=send)
    assert receive.receive_nowait().pcm.startswith(b"afterwards")


async def test_pool_sentence_deadline_ends_a_hung_engine_and_marks_it_unhealthy() -> None:
    hung = PacedEngine(chunks=1, interval=2.0, honour_stop=False)  # ignores stop() for 2 s
    healthy = PacedEngine(chunks=1, interval=0.001)
    failures: list[str] = []
    pool = EnginePool(  # the idle list is a stack: hung goes first
        "paced",
        [healthy, hung],
        FMT,
        policy=PoolPolicy(sentence_timeout=0.2, stop_grace=0.1),
        hooks=PoolHooks(on_failure=failures.append),
    )
    send, _receive = trio.open_memory_channel[AudioChunk](100)
    with pytest.raises(SynthesisFailed) as info:
        with trio.fail_after(2):
            await pool.synthesize("this one hangs", sentence=0, voice="v", send=send)
    assert info.value.code == "engine_timeout"
    assert hung.stop_calls == 1
    assert failures == ["paced"]
    assert not pool.healthy
    # The stuck instance and its slot are out of service; the other one still speaks.
    assert pool.statistics().total == 1
    await pool.synthesize("the healthy one", sentence=1, voice="v", send=send)
    assert pool.healthy
    # When the hung thread finally ends, its instance comes back (its thread's last act
    # schedules that on the Trio thread; no nursery of ours is involved).
    await trio.to_thread.run_sync(hung.finished.wait)
    await eventually(lambda: pool.statistics().total == 2, within=5)
    assert pool.statistics().in_use == 0


async def test_pool_reports_each_sentence_to_its_hooks_by_engine_name() -> None:
    sentences: list[tuple[str, float]] = []
    pool = EnginePool(
        "paced",
        [PacedEngine(chunks=1, interval=0.001)],
        FMT,
        hooks=PoolHooks(on_sentence=lambda engine, seconds: sentences.append((engine, seconds))),
    )
    send, _receive = trio.open_memory_channel[AudioChunk](10)
    await pool.synthesize("one", sentence=0, voice="v", send=send)
    await pool.synthesize("two", sentence=1, voice="v", send=send, voice_parameters={"temperature": 1.5})
    assert [engine for engine, _ in sentences] == ["paced", "paced"]
    assert all(seconds >= 0 for _, seconds in sentences)
    assert pool.engines[0].voice_parameters == [{"temperature": 1.5}]  # type: ignore[attr-defined]
