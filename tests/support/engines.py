"""Deterministic engines for tests that must control timing.

They follow the RealtimeTTS ``BaseEngine`` contract like the real engine, so
the pool treats them exactly the same. Every chunk carries the sentence's
text, so a test can tell whose audio it received.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import attrs
from RealtimeTTS.engines.base_engine import BaseEngine

from tests.support.live import LiveServer
from tts_trio.engines.pool import EnginePool, PoolPolicy

#: Short enough that a hung test engine fails a test in well under a second.
TEST_POLICY = PoolPolicy(sentence_timeout=0.5, stop_grace=0.2)


class PacedEngine(BaseEngine):  # type: ignore[misc]
    """Puts ``chunks`` chunks per sentence, one every ``interval`` seconds; honours stop()."""

    def __init__(self, chunks: int = 5, interval: float = 0.05, honour_stop: bool = True) -> None:
        self.chunks = chunks
        self.interval = interval
        self.honour_stop = honour_stop
        self.started = threading.Event()
        self.finished = threading.Event()
        self.stop_calls = 0
        #: Every ``set_voice_parameters`` call, in order (what a request's parameters became).
        self.voice_parameters: list[dict[str, Any]] = []
        self.active = 0
        self.max_active = 0
        self._active_lock = threading.Lock()

    def get_stream_info(self) -> tuple[int, int, int]:
        return 8, 1, 16000

    def set_voice(self, voice: Any) -> None:
        self.voice = voice

    def set_voice_parameters(self, **voice_parameters: Any) -> None:
        self.voice_parameters.append(voice_parameters)

    def stop(self) -> None:
        self.stop_calls += 1
        super().stop()

    def synthesize(self, text: str, sentence_count: int = 0) -> bool:
        super().synthesize(text)
        self.finished.clear()
        with self._active_lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.started.set()
        try:
            for _ in range(self.chunks):
                if self.honour_stop and self.stop_synthesis_event.is_set():
                    return False
                time.sleep(self.interval)
                self.queue.put(text.encode()[:32].ljust(32, b"."))
            return True
        finally:
            with self._active_lock:
                self.active -= 1
            self.finished.set()


class FailingEngine(PacedEngine):
    """Fails on any sentence containing ``boom`` after one chunk."""

    def synthesize(self, text: str, sentence_count: int = 0) -> bool:
        if "boom" in text:
            self.queue.put(b"x" * 32)
            raise RuntimeError("secret internal detail /usr/lib/engine.so")
        return super().synthesize(text)


def use_engine(server: LiveServer, pool: EnginePool, policy: PoolPolicy = TEST_POLICY) -> EnginePool:
    """Make ``pool``'s engines the server's current engine (as a switch would), and return the pool that serves.

    A pool is wired when it is built, so the engines are put in a new pool
    with ``pool``'s name and format, built the way the service builds its own
    (reporting to the server's metrics), under ``policy``.
    """
    service = server.service
    serving = EnginePool(
        pool.name,
        pool.engines,
        pool.audio_format,
        device=pool.device,
        policy=policy,
        hooks=service.pool_hooks(service.metrics),
    )
    service.engine = attrs.evolve(service.engine, pool=serving, voices={}, variants=frozenset(), default_voice=None)
    return serving
