"""The real ``system`` engine (espeak-ng in a worker process), through the RealtimeTTS contract."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.live import PARAGRAPH
from tts_trio.engines.espeak import EngineFailure, EspeakEngine


@pytest.fixture
def engine() -> Iterator[EspeakEngine]:
    engine = EspeakEngine()
    engine.start()
    try:
        yield engine
    finally:
        engine.shutdown()


def take_all(q: queue.Queue[bytes]) -> bytes:
    data = b""
    while not q.empty():
        data += q.get_nowait()
    return data


def test_espeak_reports_format_and_voices(engine: EspeakEngine) -> None:
    assert engine.get_stream_info() == (8, 1, 22050)
    ids = {voice["id"] for voice in engine.get_voices()}
    assert {"en-us", "de", "fr-fr"} <= ids


def test_espeak_synthesizes_pcm_and_word_timings(engine: EspeakEngine) -> None:
    assert engine.synthesize("Hello brave new world.") is True
    pcm = take_all(engine.queue)
    assert len(pcm) > 22050  # more than half a second of 16-bit audio
    assert len(pcm) % 2 == 0
    words = [engine.timings.get_nowait() for _ in range(engine.timings.qsize())]
    assert [word.word for word in words] == ["Hello", "brave", "new", "world"]
    assert all(a.start_time < b.start_time for a, b in itertools.pairwise(words))


def test_espeak_instances_in_parallel_threads_do_not_mix(engine: EspeakEngine) -> None:
    # espeak-ng adds small random variation, so compare lengths and words, not bytes.
    other = EspeakEngine()
    other.start()
    try:
        pairs = [(engine, "Short one."), (other, "A much longer sentence that takes far more time to say out loud.")]
        solo = []
        for instance, text in pairs:
            instance.synthesize(text)
            solo.append(len(take_all(instance.queue)))
            instance.timings = queue.Queue()
        threads = [threading.Thread(target=instance.synthesize, args=(text,)) for instance, text in pairs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for (instance, text), expected in zip(pairs, solo, strict=True):
            assert abs(len(take_all(instance.queue)) - expected) < expected * 0.05
            words = [instance.timings.get_nowait().word for _ in range(instance.timings.qsize())]
            expected_words = text.rstrip(".").split()
            # espeak may fold a word into its neighbour's event, never invent one.
            assert set(words) <= set(expected_words)
            assert len(words) >= len(expected_words) - 3
    finally:
        other.shutdown()


def test_espeak_stop_ends_a_long_sentence_promptly_and_keeps_the_worker(engine: EspeakEngine) -> None:
    engine.synthesize("warm up.")
    take_all(engine.queue)
    pid = engine._worker.process.pid  # type: ignore[union-attr]
    long_sentence = " ".join(PARAGRAPH.replace(".", ",").replace("?", ",").replace("!", ",") for _ in range(20))
    result: list[bool] = []
    first_chunk = threading.Event()

    class Probe(queue.Queue[bytes]):
        def put(self, item: bytes, block: bool = True, timeout: float | None = None) -> None:
            first_chunk.set()
            super().put(item)

    engine.queue = Probe()
    thread = threading.Thread(target=lambda: result.append(engine.synthesize(long_sentence)))
    thread.start()
    assert first_chunk.wait(5)
    started = time.monotonic()
    engine.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 1.0
    assert result == [False]
    assert engine._worker.process.pid == pid  # type: ignore[union-attr]
    # The next sentence gets only its own audio.
    engine.queue = queue.Queue()
    assert engine.synthesize("Short.") is True
    short = take_all(engine.queue)
    assert 0 < len(short) < 22050 * 2 * 2


def test_espeak_unknown_voice_is_a_failure_and_the_engine_recovers(engine: EspeakEngine) -> None:
    engine.set_voice("no-such-voice")
    with pytest.raises(EngineFailure, match="unknown voice"):
        engine.synthesize("Hello.")
    engine.set_voice("en-us")
    assert engine.synthesize("Hello.") is True


def test_espeak_worker_killed_from_outside_fails_once_then_recovers(engine: EspeakEngine) -> None:
    assert engine._worker is not None
    engine._worker.process.kill()
    engine._worker.process.wait()
    # A dead idle worker is replaced before use.
    assert engine.synthesize("Back again.") is True
    assert len(take_all(engine.queue)) > 0
